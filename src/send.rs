//! Sending: the HTTP client for the Track API, what each answer means, and the retry loop
//! that takes one operation to a settled outcome.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::limit::{Pacer, backoff, parse_retry_after};
use crate::record::{Method, Operation};
use crate::report::{Counters, Reporter};
use crate::track::{Region, Secret};

/// What one answer from the API means for the record.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Accepted,
    /// 207 to a batch: the operations listed were invalid, all the others were accepted.
    Partial(Vec<BatchError>),
    /// 429: everyone slows down; the record is tried again.
    RateLimited {
        retry_after: Option<Duration>,
    },
    /// 408, 5xx gateways and network trouble: worth trying again.
    Retry {
        status: Option<u16>,
        retry_after: Option<Duration>,
        message: String,
    },
    /// Any other 4xx: the record itself is wrong and is never retried.
    Rejected {
        status: u16,
        message: String,
    },
    /// 401 or 403: the credentials are wrong; the whole run stops.
    Unauthorized {
        status: u16,
    },
}

/// One invalid operation named in a 207.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchError {
    pub index: usize,
    pub message: String,
}

/// Reads a 207 body, `{"errors": [{"batch_index", "reason", "field", "message"}]}`. It has
/// been seen to arrive as a JSON string holding that JSON, so both are read.
fn batch_errors(body: &str) -> Vec<BatchError> {
    let mut value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if let serde_json::Value::String(inner) = &value {
        value = serde_json::from_str(inner).unwrap_or_default();
    }
    let text =
        |e: &serde_json::Value, k: &str| e.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    value
        .get("errors")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let index = usize::try_from(e.get("batch_index")?.as_u64()?).ok()?;
            let mut message = [text(e, "reason"), text(e, "message")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            if let Some(field) = text(e, "field") {
                message.push_str(&format!(" (field {field})"));
            }
            Some(BatchError { index, message })
        })
        .collect()
}

/// Statuses worth retrying besides 429 (Customer.io's own clients use the same list).
const RETRY_STATUSES: [u16; 7] = [408, 500, 502, 503, 504, 522, 524];

/// Sorts a response into an [`Answer`]. `body` is the response text, used for messages.
pub fn classify(status: StatusCode, retry_after: Option<Duration>, body: &str) -> Answer {
    let code = status.as_u16();
    if code == 207 {
        Answer::Partial(batch_errors(body))
    } else if status.is_success() {
        Answer::Accepted
    } else if code == 429 {
        Answer::RateLimited { retry_after }
    } else if code == 401 || code == 403 {
        Answer::Unauthorized { status: code }
    } else if RETRY_STATUSES.contains(&code) || status.is_server_error() {
        Answer::Retry {
            status: Some(code),
            retry_after,
            message: describe_status(status, body),
        }
    } else {
        Answer::Rejected {
            status: code,
            message: describe_status(status, body),
        }
    }
}

/// "400 Bad Request: <the API's error messages>".
fn describe_status(status: StatusCode, body: &str) -> String {
    #[derive(Deserialize)]
    struct Meta {
        meta: Errors,
    }
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<serde_json::Value>,
    }
    let detail = serde_json::from_str::<Meta>(body)
        .ok()
        .map(|m| {
            m.meta
                .errors
                .iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_else(|| body.chars().take(300).collect());
    let detail = detail.trim();
    if detail.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {detail}")
    }
}

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

/// One operation on its way: the operation and its batch encoding.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub op: Operation,
    pub encoded: Vec<u8>,
}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Accepted,
    /// Settled as a failure: written to the failures file.
    Failed {
        status: Option<u16>,
        attempts: u32,
        message: String,
    },
    /// The run is stopping: the operation was not settled and a resume sends it again.
    Unsent,
}

/// How a request ended after its retries.
enum Settled {
    Answered(Answer, u32),
    GaveUp {
        status: Option<u16>,
        attempts: u32,
        message: String,
    },
    Unsent,
}

/// Why the whole run had to stop.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Halt {
    #[error("{}", credentials_message(*.0))]
    Credentials(u16),
    #[error(
        "{streak} requests in a row to {base} failed with 5xx or network errors (last: {last}; \
         --max-consecutive-failures); the endpoint looks down. Unsent records were not written \
         as failures: run again with --resume"
    )]
    DeadEndpoint {
        streak: u32,
        base: String,
        last: String,
    },
}

/// What the retry loop needs from the command line.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub max_retry_after: Duration,
    pub max_consecutive_failures: u32,
}

/// Everything the workers share.
pub struct Sender {
    client: Client,
    pacer: Arc<Pacer>,
    counters: Arc<Counters>,
    reporter: Reporter,
    policy: RetryPolicy,
    /// Send through `/api/v2/batch` (else one v1 request an operation).
    batch: bool,
    /// Cancelled on Ctrl-C and on a halt: no new attempt starts.
    pub stop: CancellationToken,
    halt: std::sync::Mutex<Option<Halt>>,
    streak: AtomicU32,
    warned: AtomicBool,
}

/// Failures in a row after which the user is told the endpoint is in trouble.
const WARN_STREAK: u32 = 10;

impl Sender {
    pub fn new(
        client: Client,
        pacer: Arc<Pacer>,
        counters: Arc<Counters>,
        reporter: Reporter,
        policy: RetryPolicy,
        batch: bool,
        stop: CancellationToken,
    ) -> Sender {
        Sender {
            client,
            pacer,
            counters,
            reporter,
            policy,
            batch,
            stop,
            halt: std::sync::Mutex::new(None),
            streak: AtomicU32::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// Why the run halted, if it did.
    pub fn halted(&self) -> Option<Halt> {
        self.halt.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn halt(&self, why: Halt) {
        self.halt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(why);
        self.stop.cancel();
    }

    /// Takes operations to settled outcomes, one per operation, in order: one v1 request,
    /// or one batch request (split when Customer.io refuses it whole).
    pub async fn deliver(&self, items: &[&Outgoing]) -> Vec<Delivery> {
        if !self.batch {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let label = || {
                    let r = item.op.v1_request();
                    format!("{:?} {}", r.method, r.path)
                };
                let settled = self
                    .until_settled(&label, || self.client.send_one(&item.op))
                    .await;
                out.push(match settled {
                    Settled::Answered(Answer::Partial(errors), attempts) => {
                        // A 207 to a v1 request is not expected; read it as a refusal.
                        Delivery::Failed {
                            status: Some(207),
                            attempts,
                            message: join_errors(&errors),
                        }
                    }
                    other => whole(other),
                });
            }
            return out;
        }
        self.deliver_batch(items).await
    }

    async fn split_batch(&self, items: &[&Outgoing]) -> Vec<Delivery> {
        let (left, right) = items.split_at(items.len() / 2);
        let mut out = Box::pin(self.deliver_batch(left)).await;
        out.extend(Box::pin(self.deliver_batch(right)).await);
        out
    }

    async fn deliver_batch(&self, items: &[&Outgoing]) -> Vec<Delivery> {
        let body = batch_body(items);
        let label = || format!("batch of {} ({} bytes)", items.len(), body.len());
        let settled = self
            .until_settled(&label, || self.client.send_batch(body.clone()))
            .await;
        match settled {
            // A 207 means some operations were refused; one that names none of them (a body
            // cut off or not the documented shape) is split like a refusal, down to single
            // operations, rather than taken for a success.
            Settled::Answered(Answer::Partial(errors), attempts)
                if !errors.iter().any(|e| e.index < items.len()) =>
            {
                if items.len() > 1 {
                    return self.split_batch(items).await;
                }
                vec![
                    Delivery::Failed {
                        status: Some(207),
                        attempts,
                        message: "Customer.io answered 207 (some operations refused) but did \
                                  not say which"
                            .to_owned(),
                    };
                    items.len()
                ]
            }
            Settled::Answered(Answer::Partial(errors), attempts) => {
                let mut out = vec![Delivery::Accepted; items.len()];
                for e in errors {
                    if let Some(slot) = out.get_mut(e.index) {
                        let message = match slot {
                            Delivery::Failed { message, .. } => format!("{message}; {}", e.message),
                            _ => e.message,
                        };
                        *slot = Delivery::Failed {
                            status: Some(207),
                            attempts,
                            message,
                        };
                    }
                }
                out
            }
            // Refused whole: split it to find the bad operations and send the good ones.
            Settled::Answered(Answer::Rejected { status: 400, .. }, _) if items.len() > 1 => {
                self.split_batch(items).await
            }
            other => {
                let d = whole(other);
                vec![d; items.len()]
            }
        }
    }

    /// Sends one request until it gets an answer that is not worth retrying, under the
    /// pacing rules.
    /// `label` names the request in -v logs.
    async fn until_settled<F, Fut>(&self, label: &(dyn Fn() -> String + Sync), send: F) -> Settled
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Answer>,
    {
        let mut attempts = 0u32;
        let mut history: Vec<String> = Vec::new();
        loop {
            let permit = tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Settled::Unsent,
                p = self.pacer.acquire() => p,
            };
            attempts += 1;
            Counters::add(&self.counters.requests, 1);
            // An attempt under way is allowed to finish (bounded by --timeout) even when the
            // run is stopping, so its outcome is settled rather than sent twice.
            let answer = send().await;
            if self.reporter.verbose() > 0 {
                self.reporter
                    .log(format!("{} attempt {attempts}: {answer:?}", label()));
            }
            let (status, message, wait) = match answer {
                Answer::Accepted | Answer::Partial(_) | Answer::Rejected { .. } => {
                    if !matches!(answer, Answer::Rejected { .. }) {
                        self.streak.store(0, Ordering::Relaxed);
                        self.pacer.on_accepted();
                    }
                    return Settled::Answered(answer, attempts);
                }
                Answer::Unauthorized { status } => {
                    self.halt(Halt::Credentials(status));
                    return Settled::Unsent;
                }
                Answer::RateLimited { retry_after } => {
                    Counters::add(&self.counters.rate_limited, 1);
                    let retry_after = retry_after.map(|d| d.min(self.policy.max_retry_after));
                    // The pacer pauses everyone, this request included: no wait of its own.
                    self.pacer.on_rate_limited(permit, retry_after);
                    (
                        Some(429),
                        "429 Too Many Requests".to_owned(),
                        Duration::ZERO,
                    )
                }
                Answer::Retry {
                    status,
                    retry_after,
                    message,
                } => {
                    let streak = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
                    self.pacer.on_trouble(streak);
                    if streak >= WARN_STREAK && !self.warned.swap(true, Ordering::Relaxed) {
                        self.reporter.warn(format!(
                            "{streak} requests in a row failed (last: {message}); slowing down"
                        ));
                    }
                    if streak >= self.policy.max_consecutive_failures {
                        self.halt(Halt::DeadEndpoint {
                            streak,
                            base: self.client.base.clone(),
                            last: message,
                        });
                        return Settled::Unsent;
                    }
                    let wait = retry_after
                        .map(|d| d.min(self.policy.max_retry_after))
                        .unwrap_or_else(|| backoff(attempts, &mut rand::rng()));
                    (status, message, wait)
                }
            };
            history.push(message);
            if attempts > self.policy.max_retries {
                return Settled::GaveUp {
                    status,
                    attempts,
                    message: format!(
                        "gave up after {} (--max-retries {}): {}",
                        crate::report::counted(u64::from(attempts), "attempt"),
                        self.policy.max_retries,
                        history.join("; ")
                    ),
                };
            }
            Counters::add(&self.counters.retries, 1);
            if self.reporter.verbose() > 1 {
                self.reporter.log(format!(
                    "{}: waiting {wait:?} before retry {attempts}",
                    label()
                ));
            }
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Settled::Unsent,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The same outcome for every operation a request carried.
fn whole(settled: Settled) -> Delivery {
    match settled {
        Settled::Answered(Answer::Accepted, _) => Delivery::Accepted,
        Settled::Answered(Answer::Rejected { status, message }, attempts) => Delivery::Failed {
            status: Some(status),
            attempts,
            message,
        },
        Settled::Answered(other, attempts) => Delivery::Failed {
            status: None,
            attempts,
            message: format!("unexpected answer: {other:?}"),
        },
        Settled::GaveUp {
            status,
            attempts,
            message,
        } => Delivery::Failed {
            status,
            attempts,
            message,
        },
        Settled::Unsent => Delivery::Unsent,
    }
}

fn join_errors(errors: &[BatchError]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// `{"batch":[op,op,...]}` from operations already encoded.
pub fn batch_body(items: &[&Outgoing]) -> Vec<u8> {
    let mut body = Vec::with_capacity(batch_body_len(items.iter().map(|i| i.encoded.len())));
    body.extend_from_slice(BATCH_OPEN);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&item.encoded);
    }
    body.extend_from_slice(BATCH_CLOSE);
    body
}

const BATCH_OPEN: &[u8] = br#"{"batch":["#;
const BATCH_CLOSE: &[u8] = b"]}";

/// The exact size of a batch body holding operations of these encoded sizes.
pub fn batch_body_len(sizes: impl Iterator<Item = usize>) -> usize {
    let (n, sum) = sizes.fold((0usize, 0usize), |(n, sum), len| (n + 1, sum + len));
    BATCH_OPEN.len() + BATCH_CLOSE.len() + sum + n.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_class_is_sorted() {
        let s = |c| StatusCode::from_u16(c).unwrap();
        assert_eq!(classify(s(200), None, ""), Answer::Accepted);
        assert_eq!(classify(s(204), None, ""), Answer::Accepted);
        assert_eq!(
            classify(s(429), Some(Duration::from_secs(2)), ""),
            Answer::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        for code in [401, 403] {
            assert_eq!(
                classify(s(code), None, ""),
                Answer::Unauthorized { status: code }
            );
        }
        for code in [408, 500, 502, 503, 504, 522, 524, 599] {
            assert!(
                matches!(classify(s(code), None, ""), Answer::Retry { .. }),
                "{code}"
            );
        }
        for code in [400, 404, 409, 413, 422] {
            assert!(
                matches!(classify(s(code), None, ""), Answer::Rejected { .. }),
                "{code}"
            );
        }
    }

    #[test]
    fn a_207_names_its_invalid_operations_even_as_a_json_string() {
        let body = r#"{"errors":[{"batch_index":2,"reason":"invalid","field":"attributes.created_at","message":"not an integer"},{"batch_index":0,"reason":"required"}]}"#;
        let want = vec![
            BatchError {
                index: 2,
                message: "invalid: not an integer (field attributes.created_at)".into(),
            },
            BatchError {
                index: 0,
                message: "required".into(),
            },
        ];
        let s = StatusCode::MULTI_STATUS;
        assert_eq!(classify(s, None, body), Answer::Partial(want.clone()));
        let as_string = serde_json::to_string(body).unwrap();
        assert_eq!(classify(s, None, &as_string), Answer::Partial(want));
        assert_eq!(classify(s, None, "garbage"), Answer::Partial(vec![]));
    }

    #[test]
    fn batch_body_length_is_counted_exactly() {
        let ops: Vec<Outgoing> = ["{\"a\":1}", "{}", "{\"b\":\"x\"}"]
            .iter()
            .map(|j| Outgoing {
                op: serde_json::from_str(
                    r#"{"type":"person","action":"delete","identifiers":{"id":"1"}}"#,
                )
                .unwrap(),
                encoded: j.as_bytes().to_vec(),
            })
            .collect();
        for n in 0..=ops.len() {
            let refs: Vec<&Outgoing> = ops[..n].iter().collect();
            let body = batch_body(&refs);
            assert_eq!(
                body.len(),
                batch_body_len(refs.iter().map(|o| o.encoded.len()))
            );
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["batch"].as_array().unwrap().len(), n);
        }
    }

    #[test]
    fn rejection_messages_carry_the_apis_reasons() {
        let a = classify(
            StatusCode::BAD_REQUEST,
            None,
            r#"{"meta":{"errors":["attribute value too long"]}}"#,
        );
        assert_eq!(
            a,
            Answer::Rejected {
                status: 400,
                message: "400 Bad Request: attribute value too long".into()
            }
        );
    }
}
