//! Shared test plumbing: a sandbox on 127.0.0.1:0 in a runtime of its own, a scripted server
//! for the answers the sandbox cannot give, and the binary pointed at either; what a sandbox
//! received read as operations (`received`), and a `redis-server` (`redis_server`).

mod received;
pub mod redis_server;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use cio_import::sandbox::{Sandbox, SandboxOptions};

pub use received::{accepted, operations};

pub const SITE_ID: &str = "test-site";
pub const API_KEY: &str = "sk-test-9f8e7d6c5b4a";

/// A running sandbox; it stops when dropped.
pub struct Server {
    pub sandbox: Sandbox,
    // Declared after the sandbox so it outlives it while dropping.
    _rt: tokio::runtime::Runtime,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

impl Server {
    pub fn start(opts: SandboxOptions) -> Server {
        let rt = runtime();
        let sandbox = rt
            .block_on(Sandbox::start(SandboxOptions {
                site_id: SITE_ID.into(),
                api_key: API_KEY.into(),
                keep_requests: true,
                ..opts
            }))
            .unwrap();
        Server { sandbox, _rt: rt }
    }

    /// A sandbox with no rate limit and no misbehaviour.
    pub fn plain() -> Server {
        Server::start(SandboxOptions {
            limit: None,
            ..SandboxOptions::default()
        })
    }

    /// A sandbox with no rate limit answering after 30 ms, so that a run at 100 requests/s
    /// can be stopped part-way.
    pub fn slow() -> Server {
        Server::start(SandboxOptions {
            limit: None,
            latency: Duration::from_millis(30),
            ..SandboxOptions::default()
        })
    }

    /// A sandbox with no rate limit answering every request 503.
    pub fn refusing() -> Server {
        Server::start(SandboxOptions {
            limit: None,
            fail_rate: 1.0,
            ..SandboxOptions::default()
        })
    }

    /// Every request the sandbox received but the preflight's GET, in arrival order.
    pub fn sent(&self) -> Vec<cio_import::sandbox::Received> {
        let requests = self.sandbox.requests().into_iter();
        requests.filter(|r| r.method != "GET").collect()
    }

    /// The binary, credentials in its environment, aimed at this server, run in `dir`.
    pub fn cmd(&self, dir: &Path) -> Command {
        aimed(dir, &self.sandbox.base_url(), 1000)
    }

    /// [`Server::cmd`] paced at `rate` requests per second.
    pub fn cmd_at(&self, dir: &Path, rate: u32) -> Command {
        aimed(dir, &self.sandbox.base_url(), rate)
    }
}

/// The binary with credentials in its environment, aimed at `base_url` at `rate` requests per
/// second, run in `dir`.
pub fn aimed(dir: &Path, base_url: &str, rate: u32) -> Command {
    let mut c = bounded(killable(dir, base_url));
    c.args(["--rate", &rate.to_string()])
        // One record a request, so tests see v1 requests; batch tests pass their own --batch.
        .args(["--batch", "1"]);
    c
}

/// The binary as a std Command, one a test can spawn, signal and kill: credentials in its
/// environment, aimed at `endpoint` without the progress display, run in `dir`. Its rate,
/// batch and stdio are the caller's.
pub fn killable(dir: &Path, endpoint: &str) -> std::process::Command {
    let mut c = clean(dir);
    c.env("CUSTOMERIO_SITE_ID", SITE_ID)
        .env("CUSTOMERIO_TRACK_API_KEY", API_KEY)
        .args(["--endpoint", endpoint, "--progress", "never"]);
    c
}

/// One request a [`Scripted`] server received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    /// Its place among every request the server received, from 0.
    pub n: usize,
    /// How many requests with the same method and path came before it.
    pub earlier: usize,
    pub at: Instant,
}

impl Hit {
    /// The `{identifier}` of a `/api/v1/customers/{identifier}...` path, as sent.
    pub fn id(&self) -> Option<&str> {
        let rest = self.path.strip_prefix("/api/v1/customers/")?;
        rest.split('/').next()
    }
}

/// What a [`Scripted`] server answers to one request.
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
    /// How long the answer takes.
    pub delay: Duration,
    /// Other headers of the answer, as (name, value).
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// `status` with an error body in the Track API's shape (`{}` for a success).
    pub fn status(status: u16) -> Reply {
        let body = if status < 300 {
            "{}".to_owned()
        } else {
            format!(r#"{{"meta":{{"errors":["scripted {status}"]}}}}"#)
        };
        Reply {
            status,
            retry_after: None,
            body,
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    pub fn after(self, delay: Duration) -> Reply {
        Reply { delay, ..self }
    }

    pub fn retry_after(self, value: impl Into<String>) -> Reply {
        Reply {
            retry_after: Some(value.into()),
            ..self
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(self, body: impl Into<String>) -> Reply {
        Reply {
            body: body.into(),
            ..self
        }
    }
}

type Script = Arc<dyn Fn(&Hit) -> Reply + Send + Sync>;

/// A server on 127.0.0.1:0 that answers each request as its script says and records what it
/// received: for the statuses and headers the sandbox never gives. It stops when dropped.
pub struct Scripted {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    _rt: tokio::runtime::Runtime,
}

impl Scripted {
    pub fn start(script: impl Fn(&Hit) -> Reply + Send + Sync + 'static) -> Scripted {
        let rt = runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state((Arc::new(script) as Script, hits.clone()));
        rt.spawn(async move { axum::serve(listener, app).await });
        Scripted { url, hits, _rt: rt }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The binary aimed at this server, without the preflight (the script answers records).
    pub fn cmd(&self, dir: &Path) -> Command {
        let mut c = aimed(dir, &self.url, 1000);
        c.arg("--no-preflight");
        c
    }
}

async fn answer(
    State((script, hits)): State<(Script, Arc<Mutex<Vec<Hit>>>)>,
    request: Request,
) -> Response {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let hit = {
        let mut hits = hits.lock().unwrap();
        let (method, path) = (parts.method.to_string(), parts.uri.path().to_owned());
        let earlier = hits
            .iter()
            .filter(|h| h.method == method && h.path == path)
            .count();
        let hit = Hit {
            method,
            path,
            body,
            n: hits.len(),
            earlier,
            at,
        };
        hits.push(hit.clone());
        hit
    };
    let reply = script(&hit);
    tokio::time::sleep(reply.delay).await;
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    if let Some(v) = reply.retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_str(&v).unwrap());
    }
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).unwrap());
    }
    response
}

/// Held by the tests whose assertions measure pacing (requests counted in a second, how
/// stale a checkpoint is at a kill), in whichever module they are: all run in one process
/// now, and two of them side by side on two cores would add the jitter they measure.
pub fn timed() -> MutexGuard<'static, ()> {
    static TIMED: Mutex<()> = Mutex::new(());
    TIMED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The binary with a clean environment, run in `dir`.
pub fn bin(dir: &Path) -> Command {
    bounded(clean(dir))
}

/// `command` as an assert_cmd Command that a hung run cannot keep past two minutes.
fn bounded(command: std::process::Command) -> Command {
    let mut c = Command::from_std(command);
    c.timeout(Duration::from_secs(120));
    c
}

/// The binary with none of the credentials of the environment the tests run in, and no
/// colour, run in `dir`.
fn clean(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cio-import"));
    c.current_dir(dir)
        .env_remove("CUSTOMERIO_SITE_ID")
        .env_remove("CUSTOMERIO_TRACK_API_KEY")
        .env("NO_COLOR", "1");
    c
}

/// A run's `--summary -` as JSON; a run that printed none panics with its stderr.
pub fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no summary ({e}): {}", stderr(out)))
}

/// What a run printed on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The failures file's lines as JSON.
pub fn read_ndjson(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The text of the repository's fixture `name`.
pub fn fixture(name: &str) -> String {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read_to_string(from).unwrap()
}

/// A run of the binary: the name of its input, the input's text, and its flags.
pub type Run = (&'static str, String, Vec<&'static str>);

/// Each of `runs` in `dir` against a sandbox refusing every request, never retried, its
/// failures file gathered into one, `dir/mixed.ndjson`: its path.
pub fn refused_into_one(dir: &Path, runs: &[Run]) -> PathBuf {
    let refusing = Server::refusing();
    let mut mixed = String::new();
    for (name, text, args) in runs {
        let input = write(dir, name, text);
        let failures = dir.join(format!("{name}.failures.ndjson"));
        refusing
            .cmd(dir)
            .arg(&input)
            .args(args)
            .args(["--max-retries", "0", "--no-preflight", "--failures"])
            .arg(&failures)
            .assert()
            .code(3);
        mixed.push_str(&std::fs::read_to_string(&failures).unwrap());
    }
    write(dir, "mixed.ndjson", &mixed)
}

/// The runs that take a sandbox through every kind but events, in an order it accepts whole
/// (people first: merges need their primaries).
pub fn every_kind() -> Vec<Run> {
    vec![
        ("users.csv", fixture("users.csv"), vec![]),
        (
            "phones.csv",
            fixture("phones.csv"),
            vec!["--id-column", "phone"],
        ),
        (
            "devices.csv",
            fixture("devices.csv"),
            vec!["--action", "add-device"],
        ),
        (
            "companies.csv",
            fixture("companies.csv"),
            vec!["--entity", "object", "--object-type", "1"],
        ),
        (
            "memberships.csv",
            fixture("memberships.csv"),
            vec!["--action", "add-relationships", "--object-type", "1"],
        ),
        (
            "merges.csv",
            fixture("merges.csv"),
            vec!["--action", "merge", "--yes"],
        ),
        (
            "gone-device.csv",
            "id,device_id\n1002,dGhpcyBpcyBhbiBGQ00gdG9rZW4gZm9yIGEgdGVzdCBkZXZpY2U\n".into(),
            vec!["--action", "delete-device"],
        ),
        (
            "gone-membership.csv",
            "id,object_id\n1002,globex\n".into(),
            vec!["--action", "delete-relationships", "--object-type", "1"],
        ),
    ]
}
