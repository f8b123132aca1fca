//! The sandbox: a local stand-in for Customer.io's Track API (v1 and v2) served
//! over real HTTP on 127.0.0.1, keeping every kind of its data model (people,
//! events, page and screen views, devices, objects, relationships, merges),
//! enforcing the documented auth, limits and validation, with a sliding-window rate limit
//! and optional misbehaviour (latency, 503s, stray 429s, stalls, dropped connections) for
//! `--sandbox` and the tests.
//!
//! Per request, in order: auth (401), misbehaviour dice (drop / 503 / 429 / stall),
//! rate limit (429), routing (404 / 405), validation (400 / 207), apply, then the
//! answer waits out `latency` (plus `stall_for` when stalled). Dropped requests
//! are never applied; stalled and slow ones are applied before the wait, so a
//! client that times out has still changed the store, as with the real API.

mod conn;
mod store;
#[cfg(test)]
mod tests;
mod ties;
mod validate;

use std::{
    io,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::{Body, HttpBody},
    extract::{ConnectInfo, Request, State as AxumState},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use conn::{KillSwitch, KillableListener};
use store::{Fate, Rates, State};
pub use store::{Received, Stats, StoredEvent};

use crate::track::Region;
use validate::{Invalid, Op, Who};

/// An `/api/v2/entity` body, and every v1 body, may be at most this long (32 KiB).
pub const MAX_ENTITY_BYTES: usize = 32 * 1024;
/// An `/api/v2/batch` body must be shorter than this ("under 500 KB", read as KiB).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// Each operation of a batch, serialised compactly, may be at most this long.
pub const MAX_OP_BYTES: usize = 32 * 1024;
/// v1 documents no body limit (its largest valid body, 300 attributes of 1,000 bytes, is
/// about 350 KB); bodies as long as a whole batch are refused, to bound memory.
pub const MAX_V1_BYTES: usize = MAX_BATCH_BYTES - 1;
/// Bodies beyond this are not even drained: the connection is closed after a 400.
const MAX_DRAIN_BYTES: usize = 8 * 1024 * 1024;

/// How the sandbox behaves; `Default` is a well-behaved US workspace limited
/// to 100 requests/s with credentials `sandbox:sandbox`.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Credentials accepted (HTTP Basic `site_id:api_key`).
    pub site_id: String,
    pub api_key: String,
    pub region: Region,
    /// Requests admitted per sliding second; `None` = unlimited.
    pub limit: Option<u32>,
    /// Whether 429s carry `Retry-After` (delay-seconds).
    pub retry_after: bool,
    /// Added to every answer.
    pub latency: Duration,
    /// Share of requests answered 503 (no `Retry-After`).
    pub fail_rate: f64,
    /// Share of requests answered 429 at random, whatever the limit (with `Retry-After: 1`
    /// when `retry_after` is set): stray 429s, as a throttle in front of an API may give.
    pub stray_429_rate: f64,
    /// Share of requests whose connection is cut without an answer.
    pub drop_rate: f64,
    /// Share of requests held for `stall_for` before their answer.
    pub stall_rate: f64,
    pub stall_for: Duration,
    /// Keep every request for [`Sandbox::requests`]; off for big imports so memory stays flat.
    pub keep_requests: bool,
    /// Seed for the misbehaviour dice; `None` = random.
    pub seed: Option<u64>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            site_id: "sandbox".into(),
            api_key: "sandbox".into(),
            region: Region::Us,
            limit: Some(100),
            retry_after: true,
            latency: Duration::ZERO,
            fail_rate: 0.0,
            stray_429_rate: 0.0,
            drop_rate: 0.0,
            stall_rate: 0.0,
            stall_for: Duration::ZERO,
            keep_requests: false,
            seed: None,
        }
    }
}

/// A running sandbox. Dropping it stops accepting connections; [`Sandbox::shutdown`]
/// also waits (briefly) for requests in flight.
pub struct Sandbox {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

struct Shared {
    opts: SandboxOptions,
    rates: Rates,
    /// `site_id:api_key`, compared with the decoded Basic credentials.
    credentials: Vec<u8>,
    base_url: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, but never let poison take the server down.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sandbox {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start(opts: SandboxOptions) -> io::Result<Sandbox> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let share = |x: f64| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
        let shared = Arc::new(Shared {
            rates: Rates {
                drop: share(opts.drop_rate),
                fail: share(opts.fail_rate),
                limited: share(opts.stray_429_rate),
                stall: share(opts.stall_rate),
            },
            credentials: format!("{}:{}", opts.site_id, opts.api_key).into_bytes(),
            base_url,
            state: Mutex::new(State::new(opts.seed, opts.keep_requests)),
            opts,
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = axum::serve(
            KillableListener(listener),
            app.into_make_service_with_connect_info::<KillSwitch>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        let task = tokio::spawn(async move {
            // axum's serve never returns an error; there is nothing to report.
            let _ = server.await;
        });
        Ok(Sandbox {
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats()
    }

    /// A stored person's attributes, by identifier as addressed (id, email or
    /// `cio_…`; emails match case-insensitively).
    pub fn person(&self, id: &str) -> Option<Map<String, Value>> {
        self.shared.lock().person(&validate::person_key(id))
    }

    pub fn people_count(&self) -> usize {
        self.shared.lock().people_count()
    }

    /// Whether an identifier is suppressed (its identifies and events are ignored).
    pub fn is_suppressed(&self, id: &str) -> bool {
        self.shared.lock().is_suppressed(&validate::person_key(id))
    }

    /// A person's devices (by identifier as addressed), each its token and what else it has
    /// (platform, last_used, attributes).
    pub fn devices(&self, id: &str) -> Vec<(String, Map<String, Value>)> {
        self.shared.lock().devices_of(&validate::person_key(id))
    }

    /// A stored object's attributes.
    pub fn object(&self, type_id: &str, id: &str) -> Option<Map<String, Value>> {
        self.shared
            .lock()
            .object(&(type_id.to_owned(), id.to_owned()))
    }

    /// The attributes of a person's relationship to an object, if they are related.
    pub fn relationship(
        &self,
        person: &str,
        type_id: &str,
        id: &str,
    ) -> Option<Map<String, Value>> {
        let object = (type_id.to_owned(), id.to_owned());
        self.shared
            .lock()
            .relationship(&validate::person_key(person), &object)
    }

    /// Stored events in arrival order (duplicates excluded).
    pub fn events(&self) -> Vec<StoredEvent> {
        self.shared.lock().events()
    }

    /// Every request so far, when started with `keep_requests`; empty otherwise.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.lock().requests()
    }

    /// One line for the end of a `--sandbox` run, e.g.
    /// `sandbox: 1,000 people stored, 20 events (2 duplicates), 3 suppressed, 1 deleted; 1,031 requests (12 rate-limited)`.
    pub fn summary_line(&self) -> String {
        let s = self.stats();
        let plural = |n: u64, one: &str, many: &str| {
            format!("{} {}", thousands(n), if n == 1 { one } else { many })
        };
        // The other kinds are told only when there are some.
        let kinds: String = [
            (s.page_views, "page view", "page views"),
            (s.screen_views, "screen view", "screen views"),
            (s.devices, "device", "devices"),
            (s.objects, "object", "objects"),
            (s.relationships, "relationship", "relationships"),
            (s.merges, "merge", "merges"),
        ]
        .into_iter()
        .filter(|(n, ..)| *n > 0)
        .map(|(n, one, many)| format!(", {}", plural(n, one, many)))
        .collect();
        let mut line = format!(
            "sandbox: {} stored, {} ({}){kinds}, {} suppressed, {} deleted; {}",
            plural(s.people, "person", "people"),
            plural(s.events, "event", "events"),
            plural(s.duplicate_events, "duplicate", "duplicates"),
            thousands(s.suppressed),
            thousands(s.deleted),
            plural(s.requests, "request", "requests"),
        );
        let rejected: u64 = s.rejected_4xx.values().sum();
        let trouble: Vec<String> = [
            (s.rejected_429, "rate-limited"),
            (rejected, "rejected"),
            (s.invalid_ops, "invalid operations"),
            (s.failed_5xx, "failed"),
            (s.dropped, "dropped"),
            (s.stalled, "stalled"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{} {what}", thousands(n)))
        .collect();
        if !trouble.is_empty() {
            line.push_str(&format!(" ({})", trouble.join(", ")));
        }
        line
    }

    /// Stops accepting, lets requests in flight finish (up to 2 s), then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn thousands(n: u64) -> String {
    indicatif::HumanCount(n).to_string()
}

/// A request body, read in full (so the client always gets to read our answer)
/// but kept only when it could be acceptable somewhere.
struct Payload {
    len: usize,
    body: PayloadBody,
}

enum PayloadBody {
    Empty,
    Json(Value),
    NotJson,
    /// Too long for any endpoint, or broken off by the client: not kept.
    Unusable,
}

impl Payload {
    async fn read(mut body: Body) -> Payload {
        let mut kept = Vec::new();
        let mut len = 0usize;
        let mut broken = false;
        loop {
            match std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
                None => break,
                Some(Err(_)) => {
                    broken = true;
                    break;
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    len += data.len();
                    if len < MAX_BATCH_BYTES {
                        kept.extend_from_slice(&data);
                    } else if len > MAX_DRAIN_BYTES {
                        break;
                    }
                }
            }
        }
        let body = if broken || len >= MAX_BATCH_BYTES {
            PayloadBody::Unusable
        } else if kept.trim_ascii().is_empty() {
            PayloadBody::Empty
        } else {
            serde_json::from_slice(&kept).map_or(PayloadBody::NotJson, PayloadBody::Json)
        };
        Payload { len, body }
    }

    fn json(&self) -> Option<&Value> {
        match &self.body {
            PayloadBody::Json(v) => Some(v),
            _ => None,
        }
    }

    fn too_long(&self, limit: usize) -> Result<(), Invalid> {
        if self.len > limit {
            return Err(Invalid::new(
                "too_large",
                "",
                format!("request body is {} bytes, more than {limit}", self.len),
            ));
        }
        Ok(())
    }

    /// A v1 body: a JSON object of at most [`MAX_V1_BYTES`]; no body at all counts as `{}`.
    fn v1_object(self) -> Result<Map<String, Value>, Invalid> {
        self.too_long(MAX_V1_BYTES)?;
        match self.body {
            PayloadBody::Empty => Ok(Map::new()),
            PayloadBody::Json(Value::Object(map)) => Ok(map),
            PayloadBody::Json(_) => Err(not_object()),
            PayloadBody::NotJson | PayloadBody::Unusable => Err(not_json()),
        }
    }
}

fn not_object() -> Invalid {
    Invalid::new("invalid", "", "request body must be a JSON object".into())
}

fn not_json() -> Invalid {
    Invalid::new("invalid", "", "request body is not valid JSON".into())
}

/// The endpoints the sandbox serves; identifiers are still percent-encoded.
enum Endpoint<'a> {
    Region,
    Identify(&'a str),
    Delete(&'a str),
    Suppress(&'a str),
    Unsuppress(&'a str),
    Event(&'a str),
    AnonymousEvent,
    AddDevice(&'a str),
    /// The person, and the device's token.
    DeleteDevice(&'a str, &'a str),
    Merge,
    Entity,
    Batch,
}

impl<'a> Endpoint<'a> {
    fn route(method: &Method, path: &'a str) -> Result<Endpoint<'a>, StatusCode> {
        let only = |allowed: Method, endpoint: Endpoint<'a>| {
            if *method == allowed {
                Ok(endpoint)
            } else {
                Err(StatusCode::METHOD_NOT_ALLOWED)
            }
        };
        let segments: Vec<&'a str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        match segments.as_slice() {
            ["api", "v1", "accounts", "region"] => only(Method::GET, Endpoint::Region),
            ["api", "v1", "customers", id] if *method == Method::DELETE => Ok(Endpoint::Delete(id)),
            ["api", "v1", "customers", id] => only(Method::PUT, Endpoint::Identify(id)),
            ["api", "v1", "customers", id, "events"] => only(Method::POST, Endpoint::Event(id)),
            ["api", "v1", "customers", id, "suppress"] => {
                only(Method::POST, Endpoint::Suppress(id))
            }
            ["api", "v1", "customers", id, "unsuppress"] => {
                only(Method::POST, Endpoint::Unsuppress(id))
            }
            ["api", "v1", "events"] => only(Method::POST, Endpoint::AnonymousEvent),
            ["api", "v1", "customers", id, "devices"] => only(Method::PUT, Endpoint::AddDevice(id)),
            ["api", "v1", "customers", id, "devices", token] => {
                only(Method::DELETE, Endpoint::DeleteDevice(id, token))
            }
            ["api", "v1", "merge_customers"] => only(Method::POST, Endpoint::Merge),
            ["api", "v2", "entity"] => only(Method::POST, Endpoint::Entity),
            ["api", "v2", "batch"] => only(Method::POST, Endpoint::Batch),
            _ => Err(StatusCode::NOT_FOUND),
        }
    }

    /// The raw identifier segment, for the paths that carry one.
    fn raw_identifier(path: &str) -> Option<&str> {
        let rest = path.strip_prefix("/api/v1/customers/")?;
        Some(rest.split('/').next().unwrap_or(rest))
    }
}

/// Percent-decodes a path identifier ('+' stays '+') and checks it.
fn decode_identifier(raw: &str) -> Result<String, Invalid> {
    let id = percent_decode_str(raw).decode_utf8().map_err(|_| {
        Invalid::new(
            "invalid",
            "identifier",
            "identifier is not UTF-8 once percent-decoded".into(),
        )
    })?;
    validate::identifier(&id, "identifier")?;
    Ok(validate::person_key(&id))
}

/// What to answer; `None` in [`Reply`] means cut the connection instead.
struct Answer {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer {
            status: StatusCode::OK,
            body,
            retry_after: None,
        }
    }

    fn error(status: StatusCode, message: &str) -> Answer {
        Answer {
            status,
            body: json!({"meta": {"errors": [message]}}),
            retry_after: None,
        }
    }

    fn invalid(invalid: Invalid) -> Answer {
        Answer::error(StatusCode::BAD_REQUEST, &invalid.message)
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

struct Reply {
    answer: Option<Answer>,
    stalled: bool,
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    ConnectInfo(switch): ConnectInfo<KillSwitch>,
    request: Request,
) -> Response {
    let arrived = Instant::now();
    shared.lock().arrive(arrived);
    let (parts, body) = request.into_parts();
    let payload = Payload::read(body).await;
    let reply = shared.respond(&parts, payload, arrived);
    let mut delay = shared.opts.latency;
    if reply.stalled {
        delay += shared.opts.stall_for;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match reply.answer {
        Some(answer) => answer.into_response(),
        None => {
            // hyper fails to write this, gives up the connection and closes it.
            switch.trip();
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

impl Shared {
    /// Decides and applies; the store and counters are updated before any waiting.
    fn respond(&self, parts: &Parts, payload: Payload, arrived: Instant) -> Reply {
        let path = parts.uri.path();
        let mut log = {
            let state = self.lock();
            state.keeps_requests().then(|| Received {
                method: parts.method.to_string(),
                path: path.to_owned(),
                identifier: Endpoint::raw_identifier(path)
                    .map(|raw| percent_decode_str(raw).decode_utf8_lossy().into_owned()),
                body: payload.json().cloned(),
                status: None,
                at: state.since_start(arrived),
            })
        };
        let (reply, invalid_ops) = self.decide(parts, payload, arrived);
        let status = reply.answer.as_ref().map(|a| a.status);
        if let Some(log) = log.as_mut() {
            log.status = status.map(|s| s.as_u16());
        }
        self.lock().finish(status, invalid_ops, log);
        reply
    }

    fn decide(&self, parts: &Parts, payload: Payload, arrived: Instant) -> (Reply, usize) {
        let answer = |answer: Answer| Reply {
            answer: Some(answer),
            stalled: false,
        };
        if let Err(message) = self.authorise(&parts.headers) {
            return (answer(Answer::error(StatusCode::UNAUTHORIZED, message)), 0);
        }
        let (fate, admitted) = {
            let mut state = self.lock();
            let fate = state.fate(self.rates);
            // A request that is dropped, failed or limited at random never reaches the
            // limiter; one limited at random is told to wait a second.
            let admitted = match fate {
                Fate::Normal | Fate::Stall => state.admit(arrived, self.opts.limit),
                Fate::Limited => Err(1),
                Fate::Drop | Fate::Fail => Ok(()),
            };
            (fate, admitted)
        };
        match fate {
            Fate::Drop => {
                let reply = Reply {
                    answer: None,
                    stalled: false,
                };
                return (reply, 0);
            }
            Fate::Fail => {
                let failed = Answer::error(StatusCode::SERVICE_UNAVAILABLE, "service unavailable");
                return (answer(failed), 0);
            }
            Fate::Normal | Fate::Stall | Fate::Limited => {}
        }
        let stalled = fate == Fate::Stall;
        let (result, invalid_ops) = match admitted {
            Err(wait) => {
                let mut limited =
                    Answer::error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
                limited.retry_after = self.opts.retry_after.then_some(wait);
                (limited, 0)
            }
            Ok(()) => match Endpoint::route(&parts.method, parts.uri.path()) {
                Err(StatusCode::METHOD_NOT_ALLOWED) => (
                    Answer::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
                    0,
                ),
                Err(_) => (Answer::error(StatusCode::NOT_FOUND, "not found"), 0),
                Ok(endpoint) => match self.execute(endpoint, payload) {
                    Ok(done) => done,
                    Err(invalid) => (Answer::invalid(invalid), 0),
                },
            },
        };
        let reply = Reply {
            answer: Some(result),
            stalled,
        };
        (reply, invalid_ops)
    }

    fn authorise(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or("Unauthorized request: missing Authorization header")?;
        let value = value
            .to_str()
            .map_err(|_| "Unauthorized request: malformed Authorization header")?;
        let (scheme, token) = value
            .trim()
            .split_once(' ')
            .ok_or("Unauthorized request: malformed Authorization header")?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err("Unauthorized request: expected Basic credentials");
        }
        match BASE64.decode(token.trim()) {
            Ok(given) if given == self.credentials => Ok(()),
            _ => Err("Unauthorized request: wrong site id or API key"),
        }
    }

    /// Runs one routed, admitted request: the answer and how many ops a 207 refused.
    fn execute(
        &self,
        endpoint: Endpoint<'_>,
        payload: Payload,
    ) -> Result<(Answer, usize), Invalid> {
        let op = match endpoint {
            Endpoint::Region => {
                let region = json!({
                    "url": self.base_url,
                    "region": self.opts.region.as_str(),
                    "environment_id": 1,
                });
                return Ok((Answer::ok(region), 0));
            }
            Endpoint::Identify(raw) => {
                let person = decode_identifier(raw)?;
                validate::identify(person, payload.v1_object()?)?
            }
            Endpoint::Event(raw) => {
                let person = decode_identifier(raw)?;
                let body = payload.v1_object()?;
                validate::event(validate::v1_kind(&body)?, Who::Person(person), body, "data")?
            }
            Endpoint::AnonymousEvent => {
                let body = payload.v1_object()?;
                let anonymous_id = validate::anonymous_id(body.get("anonymous_id"))?;
                let kind = validate::v1_kind(&body)?;
                validate::event(kind, Who::Anonymous(anonymous_id), body, "data")?
            }
            Endpoint::AddDevice(raw) => {
                let person = decode_identifier(raw)?;
                let body = payload.v1_object()?;
                ties::add_device(person, body.get("device"), "id")?
            }
            Endpoint::DeleteDevice(raw, token) => {
                let person = decode_identifier(raw)?;
                let token = percent_decode_str(token)
                    .decode_utf8()
                    .map_err(|_| Invalid::new("invalid", "device_id", "not UTF-8".into()))?;
                Op::DeleteDevice {
                    person,
                    token: token.into_owned(),
                }
            }
            Endpoint::Merge => ties::merge(&payload.v1_object()?)?,
            Endpoint::Delete(raw) => Op::Delete(decode_identifier(raw)?),
            Endpoint::Suppress(raw) => Op::Suppress(decode_identifier(raw)?),
            Endpoint::Unsuppress(raw) => Op::Unsuppress(decode_identifier(raw)?),
            Endpoint::Entity => {
                payload.too_long(MAX_ENTITY_BYTES)?;
                match payload.body {
                    PayloadBody::Json(value) => validate::v2_op(value)?,
                    PayloadBody::Empty | PayloadBody::NotJson | PayloadBody::Unusable => {
                        return Err(not_json());
                    }
                }
            }
            Endpoint::Batch => return self.batch(payload),
        };
        self.lock().apply(op)?;
        Ok((Answer::ok(json!({})), 0))
    }

    /// `/api/v2/batch`: a malformed request is a 400; invalid ops are listed in
    /// a 207 while every valid op is applied.
    fn batch(&self, payload: Payload) -> Result<(Answer, usize), Invalid> {
        if payload.len >= MAX_BATCH_BYTES {
            return Err(Invalid::new(
                "too_large",
                "",
                format!(
                    "batch body is {} bytes; it must be under {MAX_BATCH_BYTES}",
                    payload.len
                ),
            ));
        }
        let ops = match payload.body {
            PayloadBody::Json(Value::Object(mut body)) => match body.remove("batch") {
                Some(Value::Array(ops)) => ops,
                _ => {
                    return Err(Invalid::new(
                        "required",
                        "batch",
                        "request body must be {\"batch\": [operations]}".into(),
                    ));
                }
            },
            PayloadBody::Json(_) => return Err(not_object()),
            PayloadBody::Empty | PayloadBody::NotJson | PayloadBody::Unusable => {
                return Err(not_json());
            }
        };
        let mut errors: Vec<(usize, Invalid)> = Vec::new();
        let mut valid = Vec::with_capacity(ops.len());
        for (index, op) in ops.into_iter().enumerate() {
            let len = validate::json_len(&op);
            let checked = if len > MAX_OP_BYTES {
                Err(Invalid::new(
                    "too_large",
                    "",
                    format!("operation is {len} bytes, more than {MAX_OP_BYTES}"),
                ))
            } else {
                validate::v2_op(op)
            };
            match checked {
                Ok(op) => valid.push((index, op)),
                Err(invalid) => errors.push((index, invalid)),
            }
        }
        {
            let mut state = self.lock();
            for (index, op) in valid {
                if let Err(invalid) = state.apply(op) {
                    errors.push((index, invalid));
                }
            }
        }
        if errors.is_empty() {
            return Ok((Answer::ok(json!({})), 0));
        }
        errors.sort_by_key(|(index, _)| *index);
        let count = errors.len();
        let errors: Vec<Value> = errors
            .into_iter()
            .map(|(index, invalid)| {
                json!({
                    "batch_index": index,
                    "reason": invalid.reason,
                    "field": invalid.field,
                    "message": invalid.message,
                })
            })
            .collect();
        let answer = Answer {
            status: StatusCode::MULTI_STATUS,
            body: json!({ "errors": errors }),
            retry_after: None,
        };
        Ok((answer, count))
    }
}
