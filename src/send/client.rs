//! The HTTP client for the Track API: reqwest set up once (no redirect followed, no proxy
//! that could read the credentials), one attempt at a v1 or a batch request read into an
//! [`Answer`], and the credentials and region check before a run, retried like a record.

use std::net::IpAddr;
use std::sync::Once;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::answer::{Answer, Body, Redact, Reply, body_cap, classify};
use super::wait::{RetryPolicy, parse_retry_after};
use crate::record::{Method, Operation};
use crate::track::{Region, Secret};

/// The Track API, one client for the whole run (its connection pool is reused).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: HeaderValue,
    redact: Redact,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// What `GET /api/v1/accounts/region` says.
#[derive(Debug, Deserialize)]
pub struct RegionInfo {
    pub region: String,
}

const REGION_PATH: &str = "/api/v1/accounts/region";

impl Client {
    pub fn new(
        base: &str,
        site_id: &str,
        api_key: &Secret,
        timeout: Duration,
        concurrency: usize,
    ) -> anyhow::Result<Client> {
        static PROVIDER: Once = Once::new();
        // reqwest is built without a default crypto provider; ring is the one we ship.
        PROVIDER.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let token = Secret::new(
            base64::engine::general_purpose::STANDARD
                .encode(format!("{site_id}:{}", api_key.expose())),
        );
        let mut auth = HeaderValue::from_str(&format!("Basic {}", token.expose()))
            .context("the site id holds characters that cannot go in an HTTP header")?;
        // Keeps the header out of reqwest's and hyper's Debug output.
        auth.set_sensitive(true);
        let url = Url::parse(base).with_context(|| format!("{base:?} is not a URL"))?;
        let mut http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(concurrency)
            .user_agent(concat!("cio-import/", env!("CARGO_PKG_VERSION")))
            // A redirect answers for the records it turned away; see `describe_redirect`.
            .redirect(reqwest::redirect::Policy::none());
        if !may_use_proxy(&url) {
            http = http.no_proxy();
        }
        Ok(Client {
            http: http.build().context("cannot set up the HTTP client")?,
            base: base.trim_end_matches('/').to_owned(),
            auth,
            redact: Redact::new(api_key, &token),
        })
    }

    /// The API's address, as requests go to it.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// Checks the credentials and the workspace's region before anything is sent. What a
    /// record would retry (5xx, 429, a timeout, a reset) is retried under `policy`.
    pub async fn preflight(&self, expected: Region, policy: &RetryPolicy) -> anyhow::Result<()> {
        let mut attempts = 0;
        let info = loop {
            attempts += 1;
            let answer = match self
                .attempt(reqwest::Method::GET, REGION_PATH, None, true)
                .await
            {
                Ok(reply) if reply.status.is_success() => break region_info(&reply.body)?,
                Ok(reply) => classify(&reply, &self.redact),
                Err(e) => network_trouble(&e),
            };
            let (retry_after, message, status) = match answer {
                Answer::Unauthorized { status } => anyhow::bail!(credentials_message(status)),
                Answer::RateLimited { retry_after } => {
                    (retry_after, "429 Too Many Requests".to_owned(), Some(429))
                }
                Answer::Retry {
                    status,
                    retry_after,
                    message,
                } => (retry_after, message, status),
                Answer::Rejected { message, .. } => anyhow::bail!(preflight_refused(&message, "")),
                Answer::Accepted | Answer::Partial(_) => unreachable!("a success is read above"),
            };
            if policy.spent(attempts) {
                let after = policy.after(attempts);
                match status {
                    Some(_) => anyhow::bail!(preflight_refused(&message, &format!(" {after}"))),
                    None => anyhow::bail!(
                        "the credentials check could not reach Customer.io: check the network, a \
                         proxy (HTTPS_PROXY) and --region/--endpoint; nothing was sent: cannot \
                         reach {}: {message} {after}",
                        self.base
                    ),
                }
            }
            tokio::time::sleep(policy.wait(attempts, retry_after)).await;
        };
        let want = expected.as_str();
        if !info.region.eq_ignore_ascii_case(want) {
            anyhow::bail!(
                "this workspace is in the {} region, but requests would go to the {} host: pass --region {}",
                info.region.to_uppercase(),
                want.to_uppercase(),
                info.region.to_lowercase()
            );
        }
        Ok(())
    }

    /// One attempt at one operation through its v1 endpoint.
    pub async fn send_one(&self, op: &Operation) -> Answer {
        let req = op.one_request();
        let method = match req.method {
            Method::Put => reqwest::Method::PUT,
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
        };
        let body = match req.body.map(|b| serde_json::to_vec(&b)).transpose() {
            Ok(body) => body,
            Err(e) => {
                return Answer::Rejected {
                    status: 0,
                    message: format!("cannot encode the body: {e}"),
                };
            }
        };
        self.execute(method, &req.path, body).await
    }

    /// One attempt at a `/api/v2/batch` request whose body is already encoded.
    pub async fn send_batch(&self, body: Vec<u8>) -> Answer {
        self.execute(reqwest::Method::POST, "/api/v2/batch", Some(body))
            .await
    }

    async fn execute(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> Answer {
        match self.attempt(method, path, body, false).await {
            Ok(reply) => classify(&reply, &self.redact),
            Err(e) => network_trouble(&e),
        }
    }

    /// One request, its answer read as far as it matters: the body of a plain success only
    /// when `read_success` (a record's only says "ok", and one that fails to arrive is still
    /// a success).
    async fn attempt(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        read_success: bool,
    ) -> Result<Reply, reqwest::Error> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(body) = body {
            rb = rb.header(CONTENT_TYPE, "application/json").body(body);
        }
        let resp = rb.send().await?;
        let status = resp.status();
        let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok());
        let retry_after = header(RETRY_AFTER).and_then(|v| parse_retry_after(v, SystemTime::now()));
        let location = status
            .is_redirection()
            .then(|| header(LOCATION).map(str::to_owned))
            .flatten();
        let body = if status.is_success() && status != StatusCode::MULTI_STATUS && !read_success {
            Body::default()
        } else {
            read_body(resp, body_cap(status)).await
        };
        Ok(Reply {
            status,
            retry_after,
            location,
            body,
        })
    }
}

/// Whether requests to `base` may go through a proxy named in the environment (HTTPS_PROXY,
/// ALL_PROXY, HTTP_PROXY). Never to a loopback address, which a proxy does not share. Never
/// over plain http: the proxy would read the credentials (http is allowed only to loopback
/// anyway). Over https, reqwest tunnels through the proxy (CONNECT), which sees only
/// encrypted bytes.
fn may_use_proxy(base: &Url) -> bool {
    let host = base.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    base.scheme() == "https" && !loopback
}

/// Reads at most `cap` bytes of a body. One that breaks off is read as none, as an
/// unreadable body always was.
async fn read_body(mut resp: reqwest::Response, cap: usize) -> Body {
    let announced = resp.content_length().unwrap_or(0);
    let mut bytes = Vec::with_capacity(usize::try_from(announced).unwrap_or(cap).min(cap));
    let cut = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    break true;
                }
            }
            Ok(None) => break false,
            Err(_) => return Body::default(),
        }
    };
    let text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Body { text, cut }
}

fn region_info(body: &Body) -> anyhow::Result<RegionInfo> {
    serde_json::from_str(&body.text).context("the credentials check answered something unreadable")
}

/// The preflight's message for an answer it cannot go on from.
fn preflight_refused(message: &str, after: &str) -> String {
    format!(
        "the credentials check (GET {REGION_PATH}) answered {message}{after}; nothing was sent \
         (--no-preflight skips this check if an endpoint does not answer it)"
    )
}

fn network_trouble(e: &reqwest::Error) -> Answer {
    Answer::Retry {
        status: None,
        retry_after: None,
        message: describe_error(e),
    }
}

pub fn credentials_message(status: u16) -> String {
    format!(
        "Customer.io answered {status}: the credentials were refused; check CUSTOMERIO_SITE_ID (or --site-id) \
         and CUSTOMERIO_TRACK_API_KEY (or --api-key-file): it must be the workspace's Track API key, \
         and --region must match the workspace"
    )
}

fn describe_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out (see --timeout)".to_owned()
    } else if e.is_connect() {
        format!("could not connect: {}", root_cause(e))
    } else {
        format!("connection failed: {}", root_cause(e))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_is_used_only_over_https_off_loopback() {
        let may = |url: &str| may_use_proxy(&Url::parse(url).unwrap());
        assert!(may("https://track.customer.io"));
        assert!(may("https://track-eu.customer.io/"));
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:9",
            "http://[::1]:9",
            "https://127.0.0.1:8443",
            "https://LocalHost",
            "https://[::1]",
            "http://track.customer.io",
        ] {
            assert!(!may(url), "{url}");
        }
    }
}
