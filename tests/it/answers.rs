//! What the importer makes of answers the Track API should not give but a server, a proxy or
//! a network can: 207s that do not attribute their errors, redirects, proxies in the
//! environment, huge bodies, a preflight that fails once, 413s, and credentials echoed back.

use crate::common;

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{API_KEY, Hit, Reply, SITE_ID, Scripted, aimed, read_ndjson, stderr, summary, write};
use serde_json::{Value, json};

/// `id,plan` rows for `ids`.
fn people(dir: &Path, ids: &[String]) -> std::path::PathBuf {
    let rows: String = ids.iter().map(|id| format!("{id},p-{id}\n")).collect();
    write(dir, "users.csv", &format!("id,plan\n{rows}"))
}

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{i}")).collect()
}

/// The person ids of a batch request, in order.
fn batch_ids(hit: &Hit) -> Vec<String> {
    let body: Value = serde_json::from_slice(&hit.body).unwrap_or_default();
    body["batch"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| o["identifiers"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn is_region(hit: &Hit) -> bool {
    hit.path == "/api/v1/accounts/region"
}

fn us() -> Reply {
    Reply::status(200).body(r#"{"region":"us"}"#)
}

/// The failures file as (id, status, message), sorted by id.
fn failures(dir: &Path) -> Vec<(String, Value, String)> {
    let path = dir.join("users.failures.ndjson");
    if !path.exists() {
        return Vec::new();
    }
    let mut lines: Vec<_> = read_ndjson(&path)
        .into_iter()
        .map(|l| {
            let id = l["identifiers"]["id"]
                .as_str()
                .or(l["id"].as_str())
                .unwrap()
                .to_owned();
            let message = l["_error"]["message"].as_str().unwrap().to_owned();
            (id, l["_error"]["status"].clone(), message)
        })
        .collect();
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    lines
}

/// Imports `ids` through `server` in batches of up to `batch`, some of them failing: the
/// summary's (accepted, failed).
fn import_failing(server: &Scripted, dir: &Path, ids: &[String], batch: &str) -> (u64, u64) {
    let out = server
        .cmd(dir)
        .arg(people(dir, ids))
        .args(["--batch", batch, "--summary", "-"])
        .assert()
        .code(3);
    let s = summary(out.get_output());
    (
        s["accepted"].as_u64().unwrap(),
        s["failed"].as_u64().unwrap(),
    )
}

#[test]
fn a_207_item_without_a_usable_index_splits_the_batch_and_fails_only_the_refused() {
    // u3 is refused with a usable index; u50 to u59 with an index of the given form.
    // Each form of an index, from the operation's place and the batch's size.
    type Form = fn(usize, usize) -> Value;
    let forms: [(&str, Form); 4] = [
        ("string", |i, _| json!(i.to_string())),
        ("float", |i, _| json!(i as f64)),
        ("past the batch", |i, n| json!(i + n)),
        ("negative", |i, _| json!(-(i as i64) - 1)),
    ];
    for (form, index) in forms {
        let server = Scripted::start(move |hit| {
            let ids = batch_ids(hit);
            let errors: Vec<Value> = ids
                .iter()
                .enumerate()
                .filter_map(|(i, id)| {
                    let n: usize = id[1..].parse().unwrap();
                    match n {
                        3 => Some(json!({"batch_index": i, "reason": "invalid"})),
                        50..=59 => Some(json!({"batch_index": index(i, ids.len()), "reason": "x"})),
                        _ => None,
                    }
                })
                .collect();
            if errors.is_empty() {
                Reply::status(200)
            } else {
                Reply::status(207).body(json!({ "errors": errors }).to_string())
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let ids = numbered(100);
        let counts = import_failing(&server, dir.path(), &ids, "100");
        assert_eq!(counts, (89, 11), "{form}");

        let failed = failures(dir.path());
        let want: BTreeSet<String> = std::iter::once(3)
            .chain(50..60)
            .map(|n| format!("u{n}"))
            .collect();
        let got: BTreeSet<String> = failed.iter().map(|f| f.0.clone()).collect();
        assert_eq!(got, want, "{form}");
        for (id, status, message) in &failed {
            assert_eq!(*status, 207, "{form} {id}");
            let want = if id == "u3" {
                "invalid"
            } else {
                "did not say which"
            };
            assert!(message.contains(want), "{form} {id}: {message}");
        }
        // Each operation refused without a usable index was sent alone before it was written
        // as failed, and every other one was in a request whose answer did not refuse it.
        let hits = server.hits();
        let unusable: Vec<&String> = want.iter().filter(|id| *id != "u3").collect();
        for id in &unusable {
            assert!(
                hits.iter().any(|h| batch_ids(h) == [id.as_str()]),
                "{form}: {id} never sent alone"
            );
        }
        let accepting = |h: &Hit| batch_ids(h).iter().all(|i| !unusable.contains(&i));
        for id in ids.iter().filter(|id| !want.contains(*id)) {
            assert!(
                hits.iter()
                    .any(|h| batch_ids(h).contains(id) && accepting(h)),
                "{form}: {id} never sent in a request that accepted it"
            );
        }
    }
}

#[test]
fn a_redirect_is_not_followed_and_fails_its_records_naming_where_it_pointed() {
    for status in [301, 302, 303, 307, 308] {
        let elsewhere = Scripted::start(|_| Reply::status(200));
        let target = format!("{}/api/v2/batch", elsewhere.url());
        let server = Scripted::start(move |_| Reply::status(status).header("location", &target));
        let dir = tempfile::tempdir().unwrap();
        let counts = import_failing(&server, dir.path(), &numbered(3), "10");
        assert_eq!(counts, (0, 3), "{status}");
        assert_eq!(
            elsewhere.hits().len(),
            0,
            "{status}: the redirect was followed"
        );
        // One request: a redirect is neither retried nor split.
        let hits = server.hits();
        assert_eq!(hits.len(), 1, "{status}");
        assert_eq!(batch_ids(&hits[0]), numbered(3));
        let failed = failures(dir.path());
        assert_eq!(failed.len(), 3, "{status}");
        for (_, got, message) in failed {
            assert_eq!(got, status);
            assert!(message.starts_with(&status.to_string()), "{message}");
            assert!(
                message.contains(&format!("{}/api/v2/batch", elsewhere.url())),
                "{message}"
            );
            assert!(message.contains("--endpoint"), "{message}");
            assert!(message.contains("proxy"), "{message}");
        }
    }
}

#[test]
fn a_redirect_of_the_preflight_is_fatal_naming_where_it_pointed() {
    let elsewhere = Scripted::start(|_| us());
    let target = format!("{}/api/v1/accounts/region", elsewhere.url());
    let server = Scripted::start(move |hit| {
        if is_region(hit) {
            Reply::status(302).header("location", &target)
        } else {
            Reply::status(200)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let out = aimed(dir.path(), &server.url(), 1000)
        .arg(people(dir.path(), &numbered(2)))
        .assert()
        .code(1);
    let err = stderr(out.get_output());
    assert!(err.contains("302"), "{err}");
    assert!(err.contains(&elsewhere.url()), "{err}");
    assert!(err.contains("--endpoint"), "{err}");
    assert_eq!(elsewhere.hits().len(), 0);
    let hits = server.hits();
    assert_eq!(hits.len(), 1, "not retried, nothing sent");
    assert!(is_region(&hits[0]));
    assert!(failures(dir.path()).is_empty());
}

#[test]
fn proxy_variables_are_not_used_for_a_loopback_endpoint() {
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
    ] {
        // The proxy would answer everything well: only what it received tells.
        let proxy = Scripted::start(|hit| {
            if is_region(hit) {
                us()
            } else {
                Reply::status(200)
            }
        });
        let server = Scripted::start(|hit| {
            if is_region(hit) {
                us()
            } else {
                Reply::status(200)
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let out = aimed(dir.path(), &server.url(), 1000)
            .env(var, proxy.url())
            .arg(people(dir.path(), &numbered(3)))
            .args(["--summary", "-"])
            .assert()
            .success();
        assert_eq!(summary(out.get_output())["accepted"], 3);
        assert_eq!(
            proxy.hits().len(),
            0,
            "{var}: the proxy saw the credentials"
        );
        let hits = server.hits();
        assert_eq!(hits.len(), 4, "{var}: the preflight and three records");
        assert!(is_region(&hits[0]));
    }
}

/// A plain TCP server that answers every request with `status` and a body it announces as
/// 1 GiB, writes up to 64 MiB of it and then holds the connection open. It counts the bytes
/// it managed to write.
struct Endless {
    url: String,
    written: Arc<AtomicUsize>,
}

impl Endless {
    const MOST: usize = 64 << 20;

    fn start(status: &'static str) -> Endless {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let written = Arc::new(AtomicUsize::new(0));
        let count = written.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let (mut conn, count) = (conn.unwrap(), count.clone());
                std::thread::spawn(move || {
                    // The request's head and body, read far enough to answer.
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
                        1u64 << 30
                    );
                    if conn.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    let chunk = vec![b'x'; 64 << 10];
                    while count.load(Ordering::Relaxed) < Self::MOST {
                        if conn.write_all(&chunk).is_err() {
                            return;
                        }
                        count.fetch_add(chunk.len(), Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_secs(60));
                });
            }
        });
        Endless { url, written }
    }
}

#[test]
fn an_endless_error_body_is_read_no_further_than_64_kib() {
    let server = Endless::start("500 Internal Server Error");
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = aimed(dir.path(), &server.url, 1000)
        .arg(people(dir.path(), &numbered(1)))
        .args(["--no-preflight", "--max-retries", "0", "--timeout", "5"])
        .args(["--summary", "-"])
        .assert()
        .code(3);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "it waited for the body"
    );
    assert_eq!(summary(out.get_output())["failed"], 1);
    let failed = failures(dir.path());
    assert_eq!(failed.len(), 1);
    let (_, status, message) = &failed[0];
    assert_eq!(*status, 500);
    assert!(
        message.starts_with(
            "gave up after 1 attempt (--max-retries 0): 500 Internal Server Error: xxx"
        ),
        "{message}"
    );
    assert!(message.ends_with("xxx [cut at 64 KiB]"), "{message}");
    assert!(message.len() < 1000, "{}", message.len());
    assert!(
        server.written.load(Ordering::Relaxed) < Endless::MOST,
        "the whole body was read"
    );
}

#[test]
fn a_207_body_past_16_mib_is_split_like_one_that_names_none() {
    // The pair's 207 names u0 at the head of a body too long to be read whole; alone, u0 is
    // refused in a short one and u1 accepted.
    let server = Scripted::start(|hit| match batch_ids(hit).as_slice() {
        [_, _] => Reply::status(207).body(format!(
            r#"{{"errors":[{{"batch_index":0,"reason":"{}"}}]}}"#,
            "x".repeat(17 << 20)
        )),
        [id] if id == "u0" => {
            Reply::status(207).body(r#"{"errors":[{"batch_index":0,"reason":"required"}]}"#)
        }
        _ => Reply::status(200),
    });
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        import_failing(&server, dir.path(), &numbered(2), "10"),
        (1, 1)
    );
    let sent: Vec<Vec<String>> = server.hits().iter().map(batch_ids).collect();
    assert_eq!(sent, [numbered(2), vec!["u0".into()], vec!["u1".into()]]);
    assert_eq!(
        failures(dir.path()),
        [("u0".to_owned(), json!(207), "required".to_owned())]
    );
}

#[test]
fn a_preflight_that_fails_once_is_tried_again() {
    // A 503, then a timeout: each is retried, and the run goes on.
    let first: [fn() -> Reply; 2] = [|| Reply::status(503), || us().after(Duration::from_secs(3))];
    for first in first {
        let server = Scripted::start(move |hit| match (is_region(hit), hit.earlier) {
            (true, 0) => first(),
            (true, _) => us(),
            _ => Reply::status(200),
        });
        let dir = tempfile::tempdir().unwrap();
        let out = aimed(dir.path(), &server.url(), 1000)
            .arg(people(dir.path(), &numbered(2)))
            .args(["--timeout", "1", "--summary", "-"])
            .assert()
            .success();
        assert_eq!(summary(out.get_output())["accepted"], 2);
        let hits = server.hits();
        assert_eq!(hits.len(), 4, "two preflights and two records");
        assert!(is_region(&hits[0]) && is_region(&hits[1]));
        assert!(failures(dir.path()).is_empty());
    }
}

#[test]
fn a_preflight_that_keeps_failing_gives_up_after_the_retries_with_the_last_error() {
    let server = Scripted::start(|hit| match hit.earlier {
        0 => Reply::status(500),
        _ => Reply::status(503).retry_after("0"),
    });
    let dir = tempfile::tempdir().unwrap();
    let out = aimed(dir.path(), &server.url(), 1000)
        .arg(people(dir.path(), &numbered(2)))
        .args(["--max-retries", "2"])
        .assert()
        .code(1);
    let err = stderr(out.get_output());
    assert!(
        err.contains("503 Service Unavailable: scripted 503"),
        "{err}"
    );
    assert!(err.contains("3 attempts (--max-retries 2)"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    let hits = server.hits();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(is_region));
    assert!(failures(dir.path()).is_empty());
}

#[test]
fn a_413_batch_is_split_until_it_fits_and_an_operation_too_large_alone_fails() {
    // More than 10 operations, or the one called "huge", is too large.
    let server = Scripted::start(|hit| {
        let ids = batch_ids(hit);
        if ids.len() > 10 || ids.iter().any(|i| i == "huge") {
            Reply::status(413)
        } else {
            Reply::status(200)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut ids = numbered(39);
    ids.insert(20, "huge".into());
    assert_eq!(import_failing(&server, dir.path(), &ids, "40"), (39, 1));
    let failed = failures(dir.path());
    assert_eq!(failed.len(), 1);
    let (id, status, message) = &failed[0];
    assert_eq!((id.as_str(), status), ("huge", &json!(413)));
    assert!(message.contains("too large"), "{message}");
    // Every other operation was accepted exactly once, and "huge" tried alone once.
    let hits = server.hits();
    let mut accepted: Vec<String> = hits
        .iter()
        .map(batch_ids)
        .filter(|b| b.len() <= 10 && !b.contains(&"huge".to_owned()))
        .flatten()
        .collect();
    accepted.sort();
    let mut want = numbered(39);
    want.sort();
    assert_eq!(accepted, want);
    assert_eq!(hits.iter().filter(|h| batch_ids(h) == ["huge"]).count(), 1);
}

#[test]
fn credentials_echoed_in_an_answer_are_redacted_from_every_message() {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{SITE_ID}:{API_KEY}"));
    let secrets = [API_KEY.to_owned(), token.clone()];
    // The key escaped in JSON, as a server may echo it.
    let escaped_key = format!("\\u{:04x}{}", API_KEY.as_bytes()[0], &API_KEY[1..]);
    let echo = format!("you sent Authorization: Basic {token} for {SITE_ID}:{API_KEY}");
    let json_echo = format!(r#"{{"meta":{{"errors":["key {escaped_key} refused"]}}}}"#);
    let (echo, json_echo) = (Arc::new(echo), Arc::new(json_echo));
    let server = Scripted::start(move |hit| {
        let ids = batch_ids(hit);
        match hit.id().or(ids.first().map(String::as_str)) {
            Some("plain") => Reply::status(400).body(echo.as_str()),
            Some("json") => Reply::status(500).body(json_echo.as_str()),
            _ => Reply::status(207).body(
                json!({"errors": [{"batch_index": 0, "reason": "bad", "message": echo.as_str()}]})
                    .to_string(),
            ),
        }
    });
    for (ids, extra) in [
        (vec!["plain", "json"], &["--batch", "1"]),
        (vec!["batched"], &["--batch", "10"]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
        let out = server
            .cmd(dir.path())
            .arg(people(dir.path(), &ids))
            .args(extra)
            .args(["-vv", "--max-retries", "1", "--summary", "summary.json"])
            .assert()
            .code(3);
        let failed = failures(dir.path());
        assert_eq!(failed.len(), ids.len());
        for (id, _, message) in &failed {
            assert!(message.contains("[redacted]"), "{id}: {message}");
        }
        let mut places = vec![stderr(out.get_output())];
        for file in ["users.failures.ndjson", "summary.json"] {
            places.push(std::fs::read_to_string(dir.path().join(file)).unwrap());
        }
        for text in places {
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "{secret} in:\n{text}");
            }
        }
    }
}
