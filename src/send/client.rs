//! The HTTP client for the Track API: reqwest set up once, one attempt at a v1 or a batch
//! request read into an [`Answer`], and the credentials and region check before a run.

use std::sync::Once;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Deserialize;

use super::answer::{Answer, classify, describe_status};
use super::wait::parse_retry_after;
use crate::record::{Method, Operation};
use crate::track::{Region, Secret};

/// The Track API, one client for the whole run (its connection pool is reused).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: HeaderValue,
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
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{site_id}:{}", api_key.expose()));
        let mut auth = HeaderValue::from_str(&format!("Basic {token}"))
            .context("the site id holds characters that cannot go in an HTTP header")?;
        // Keeps the header out of reqwest's and hyper's Debug output.
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(concurrency)
            .user_agent(concat!("cio-import/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    /// The API's address, as requests go to it.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// Checks the credentials and the workspace's region before anything is sent.
    pub async fn preflight(&self, expected: Region) -> anyhow::Result<()> {
        let url = format!("{}/api/v1/accounts/region", self.base);
        let resp = self
            .http
            .get(&url)
            .header(AUTHORIZATION, self.auth.clone())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {}: {}", self.base, describe_error(&e)))
            .context(
                "the credentials check could not reach Customer.io: check the network, a proxy \
                 (HTTPS_PROXY) and --region/--endpoint; nothing was sent",
            )?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            anyhow::bail!(credentials_message(status.as_u16()));
        }
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            anyhow::bail!(
                "the credentials check (GET /api/v1/accounts/region) answered {}; nothing was sent \
                 (--no-preflight skips this check if an endpoint does not answer it)",
                describe_status(status, &body)
            );
        }
        let info: RegionInfo = resp
            .json()
            .await
            .context("the credentials check answered something unreadable")?;
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
        let req = op.v1_request();
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
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(body) = body {
            rb = rb.header(CONTENT_TYPE, "application/json").body(body);
        }
        match rb.send().await {
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                // The body only matters for errors and 207s; a body that fails to arrive on
                // a plain success is still a success.
                let body = if status.is_success() && status != StatusCode::MULTI_STATUS {
                    String::new()
                } else {
                    resp.text().await.unwrap_or_default()
                };
                classify(status, retry_after, &body)
            }
            Err(e) => Answer::Retry {
                status: None,
                retry_after: None,
                message: describe_error(&e),
            },
        }
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
