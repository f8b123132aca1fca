//! Batch mode: many operations a request through /api/v2/batch.

use crate::common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use cio_import::sandbox::SandboxOptions;
use common::{Server, aimed, bin, read_ndjson, write};
use serde_json::{Value, json};

/// The batch requests the sandbox received, as (body size, operations).
fn batches(server: &Server) -> Vec<(usize, Vec<Value>)> {
    server
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v2/batch")
        .map(|r| {
            let body = r.body.unwrap();
            // We send compact JSON with sorted keys, so re-encoding gives the bytes sent.
            let size = serde_json::to_vec(&body).unwrap().len();
            (size, body["batch"].as_array().unwrap().clone())
        })
        .collect()
}

#[test]
fn wide_rows_are_batched_under_500_kb_and_all_arrive_once() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    // 20 attributes of 900 bytes: about 18 KB an operation, so 100 would be 1.8 MB.
    let cols: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    let mut text = format!("id,{}\n", cols.join(","));
    let cell = "x".repeat(900);
    for i in 0..150 {
        text.push_str(&format!("{i},{}\n", vec![cell.as_str(); 20].join(",")));
    }
    let input = write(dir.path(), "wide.csv", &text);
    server
        .cmd(dir.path())
        .arg(&input)
        .args(["--batch", "100"])
        .assert()
        .success();
    let batches = batches(&server);
    assert!(batches.len() >= 6, "{} batches", batches.len());
    for (size, _) in &batches {
        assert!(*size < 500_000, "a batch of {size} bytes");
    }
    // Batches are filled, not sent one by one.
    assert!(batches.iter().any(|(size, _)| *size > 400_000));
    let mut ids: Vec<String> = batches
        .iter()
        .flat_map(|(_, ops)| {
            ops.iter()
                .map(|o| o["identifiers"]["id"].as_str().unwrap().to_owned())
        })
        .collect();
    ids.sort_by_key(|i| i.parse::<u32>().unwrap());
    assert_eq!(ids, (0..150).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(server.sandbox.people_count(), 150);
}

#[test]
fn exactly_the_operations_a_207_names_go_to_the_failures_file() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    // Sent as strings, these created_at values are refused by Customer.io (not integers);
    // the client has been told to send them as strings, so only the server can refuse them.
    let input = write(
        dir.path(),
        "users.csv",
        "id,created_at\n1,\n2,yesterday\n3,\n4,\n5,last week\n6,\n",
    );
    server
        .cmd(dir.path())
        .arg(&input)
        .args(["--batch", "10", "--type", "created_at=string"])
        .assert()
        .code(3);
    let batches = batches(&server);
    assert_eq!(batches.len(), 1, "all six fit in one request");
    let failures = read_ndjson(&dir.path().join("users.failures.ndjson"));
    let mut failed: Vec<&str> = failures
        .iter()
        .map(|f| f["identifiers"]["id"].as_str().unwrap())
        .collect();
    failed.sort();
    assert_eq!(failed, ["2", "5"]);
    for f in &failures {
        assert_eq!(f["_error"]["status"], 207);
        assert!(
            f["_error"]["message"]
                .as_str()
                .unwrap()
                .contains("created_at"),
            "{f}"
        );
        assert_eq!(f["action"], "identify");
    }
    for id in ["1", "3", "4", "6"] {
        assert!(server.sandbox.person(id).is_some(), "{id} was not stored");
    }
    assert!(server.sandbox.person("2").is_none());
}

/// A Track API stand-in that refuses a whole batch with 400 when any operation in it is for
/// the person "bad", answers 207 with a body that names nothing when one is for "mute", and
/// records the operations of the batches it accepts.
struct Refuser {
    base: String,
    accepted: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

impl Refuser {
    fn start() -> Refuser {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let seen = accepted.clone();
        let app = Router::new()
            .route(
                "/api/v1/accounts/region",
                get(|| async { axum::Json(json!({"region": "us"})) }),
            )
            .route(
                "/api/v2/batch",
                post(move |axum::Json(body): axum::Json<Value>| {
                    let seen = seen.clone();
                    async move {
                        let ids: Vec<String> = body["batch"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|o| o["identifiers"]["id"].as_str().unwrap().to_owned())
                            .collect();
                        if ids.iter().any(|i| i == "bad") {
                            return (
                                StatusCode::BAD_REQUEST,
                                r#"{"meta":{"errors":["bad person"]}}"#,
                            );
                        }
                        if ids.iter().any(|i| i == "mute") {
                            return (StatusCode::MULTI_STATUS, "upstream timeout");
                        }
                        seen.lock().unwrap().extend(ids);
                        (StatusCode::OK, "{}")
                    }
                }),
            );
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Refuser {
            base,
            accepted,
            _rt: rt,
        }
    }
}

/// Imports 16 people, 0 to 15 with `odd` in place of 11, in one batch; checks that every
/// other one was accepted exactly once and `odd` alone failed; returns the failures file.
fn import_16_with(server: &Refuser, odd: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,n\n");
    for i in 0..16 {
        let id = if i == 11 {
            odd.to_owned()
        } else {
            i.to_string()
        };
        text.push_str(&format!("{id},{i}\n"));
    }
    let input = write(dir.path(), "users.csv", &text);
    aimed(dir.path(), &server.base, 1000)
        .arg(&input)
        .args(["--batch", "16"])
        .assert()
        .code(3);
    let mut accepted = server.accepted.lock().unwrap().clone();
    accepted.sort_by_key(|i| i.parse::<u32>().unwrap());
    let want: Vec<String> = (0..16)
        .filter(|i| *i != 11)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(accepted, want, "every good operation accepted exactly once");
    let failures = read_ndjson(&dir.path().join("users.failures.ndjson"));
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["identifiers"]["id"], odd);
    failures
}

#[test]
fn a_batch_refused_whole_is_split_until_the_bad_operation_is_alone() {
    let failures = import_16_with(&Refuser::start(), "bad");
    assert_eq!(failures[0]["_error"]["status"], 400);
    assert!(
        failures[0]["_error"]["message"]
            .as_str()
            .unwrap()
            .contains("bad person")
    );
}

#[test]
fn a_207_that_names_no_operation_is_split_like_a_refusal() {
    let failures = import_16_with(&Refuser::start(), "mute");
    assert_eq!(failures[0]["_error"]["status"], 207);
    let message = failures[0]["_error"]["message"].as_str().unwrap();
    assert!(message.contains("did not say which"), "{message}");
}

#[test]
fn a_persons_rows_never_share_a_batch_and_arrive_in_file_order() {
    let server = Server::start(SandboxOptions {
        limit: None,
        fail_rate: 0.2,
        seed: Some(11),
        ..SandboxOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,seq\n");
    for i in 0..60 {
        text.push_str(&format!("p,{i}\nq{i},{i}\n"));
    }
    let input = write(dir.path(), "users.csv", &text);
    server
        .cmd(dir.path())
        .arg(&input)
        .args([
            "--batch",
            "20",
            "--concurrency",
            "4",
            "--no-preflight",
            "--max-retries",
            "20",
        ])
        .assert()
        .success();
    let mut seen_p = Vec::new();
    for r in server.sandbox.requests() {
        if r.path != "/api/v2/batch" || r.status != Some(200) {
            continue;
        }
        let ops = r.body.unwrap()["batch"].as_array().unwrap().clone();
        let p: Vec<i64> = ops
            .iter()
            .filter(|o| o["identifiers"]["id"] == "p")
            .map(|o| o["attributes"]["seq"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(p.len() <= 1, "two of p's rows in one batch: {p:?}");
        seen_p.extend(p);
    }
    assert_eq!(seen_p, (0..60).collect::<Vec<_>>());
    assert_eq!(server.sandbox.person("p").unwrap()["seq"], "59");
    assert_eq!(server.sandbox.people_count(), 61);
}

#[test]
fn an_operation_over_32_kb_is_invalid_in_a_batch_but_goes_alone_through_v1() {
    let dir = tempfile::tempdir().unwrap();
    let cols: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
    let cell = "x".repeat(900);
    let text = format!(
        "id,{}\nbig,{}\nsmall,{}\n",
        cols.join(","),
        vec![cell.as_str(); 40].join(","),
        vec!["y"; 40].join(",")
    );
    let input = write(dir.path(), "users.csv", &text);

    let server = Server::plain();
    server
        .cmd(dir.path())
        .arg(&input)
        .args(["--batch", "10"])
        .assert()
        .code(3);
    let failures = read_ndjson(&dir.path().join("users.failures.ndjson"));
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["id"], "big");
    assert_eq!(failures[0]["_error"]["stage"], "invalid");
    assert!(
        failures[0]["_error"]["message"]
            .as_str()
            .unwrap()
            .contains("--batch 1")
    );
    assert!(server.sandbox.person("big").is_none());
    assert!(server.sandbox.person("small").is_some());

    let server = Server::plain();
    server.cmd(dir.path()).arg(&input).assert().success();
    assert_eq!(server.sandbox.person("big").unwrap().len(), 40);
}

#[test]
fn a_dry_run_holds_operations_to_the_batch_limit_as_a_batch_import_does() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    // 34 attributes of 950 bytes: about 33 KB, over the 32,000-byte limit an operation. 30
    // are about 29 KB, under it, though a quick bound of the size (escaping's worst case)
    // is over it, so that row is measured exactly.
    let cols: Vec<String> = (0..34).map(|i| format!("c{i}")).collect();
    let mut text = format!("id,{}\n", cols.join(","));
    let cell = "x".repeat(950);
    text.push_str(&format!("over,{}\n", vec![cell.as_str(); 34].join(",")));
    let under = [vec![cell.as_str(); 30], vec![""; 4]].concat();
    text.push_str(&format!("under,{}\n", under.join(",")));
    let input = write(dir.path(), "wide.csv", &text);
    let failures = dir.path().join("wide.failures.ndjson");

    let invalid = |failures: &std::path::Path| -> Vec<(Value, Value)> {
        read_ndjson(failures)
            .iter()
            .map(|l| (l["id"].clone(), l["_error"]["message"].clone()))
            .collect()
    };
    bin(dir.path())
        .arg(&input)
        .arg("--dry-run")
        .assert()
        .code(3);
    let dry = invalid(&dir.path().join("wide.dry-run.failures.ndjson"));
    assert_eq!(dry.len(), 1, "{dry:?}");
    assert_eq!(dry[0].0, "over");
    let message = dry[0].1.as_str().unwrap();
    assert!(
        message.starts_with("the operation is 3")
            && message.ends_with(
                " bytes; a batch takes at most 32000 bytes an operation (send it alone with \
                 --batch 1)"
            ),
        "{message}"
    );

    server
        .cmd(dir.path())
        .arg(&input)
        .args(["--batch", "100"])
        .assert()
        .code(3);
    assert_eq!(invalid(&failures), dry, "the import refused other rows");
    assert!(server.sandbox.person("under").is_some());
    // Sent alone, an operation has no such limit.
    bin(dir.path())
        .arg(&input)
        .args(["--dry-run", "--batch", "1"])
        .assert()
        .success();
}
