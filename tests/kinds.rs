//! Customer.io's data model end to end, kind by kind: which endpoint each operation reaches
//! in batches and one a request, what the sandbox keeps, and the order kept where it matters.

mod common;

use std::path::Path;

use cio_import::sandbox::Received;
use common::{Server, write};

/// Every request but the preflight's GET, in arrival order.
fn sent(server: &Server) -> Vec<Received> {
    server
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect()
}

/// Imports `text` from the file `name` in `dir` with `args`, expecting success.
fn import(server: &Server, dir: &Path, name: &str, text: &str, args: &[&str]) {
    let input = write(dir, name, text);
    let out = server.cmd(dir).arg(&input).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn anonymous_events_go_to_the_v1_events_endpoint_in_batch_mode_too() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,anonymous_id,name,timestamp\n\
               1,,signed_up,1709632800\n\
               ,anon-1,viewed,1709632801\n\
               2,,signed_up,1709632802\n\
               ,anon-2,viewed,1709632803\n";
    import(
        &server,
        dir.path(),
        "events.csv",
        csv,
        &["--action", "event", "--batch", "100"],
    );
    let requests = sent(&server);
    let anonymous: Vec<&Received> = requests
        .iter()
        .filter(|r| r.path == "/api/v1/events")
        .collect();
    assert_eq!(anonymous.len(), 2, "{requests:#?}");
    for r in &anonymous {
        assert_eq!(r.status, Some(200), "{r:?}");
        let body = r.body.as_ref().unwrap();
        assert!(
            body["anonymous_id"].is_string() && body.get("type").is_none(),
            "{body}"
        );
    }
    // The people's events still share a batch, and no batch holds an anonymous one.
    let batches: Vec<&Received> = requests
        .iter()
        .filter(|r| r.path == "/api/v2/batch")
        .collect();
    let ops: Vec<&serde_json::Value> = batches
        .iter()
        .flat_map(|r| r.body.as_ref().unwrap()["batch"].as_array().unwrap())
        .collect();
    assert_eq!(ops.len(), 2, "{batches:#?}");
    assert!(ops.iter().all(|op| op["identifiers"]["id"].is_string()));
    assert_eq!(requests.len(), anonymous.len() + batches.len());
    let stats = server.sandbox.stats();
    assert_eq!((stats.events, stats.invalid_ops), (4, 0));
}

#[test]
fn a_persons_events_share_a_batch_and_their_identifies_do_not() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let events =
        "id,name,timestamp\n1,a,1709632800\n1,b,1709632801\n1,c,1709632802\n2,a,1709632803\n";
    import(
        &server,
        dir.path(),
        "events.csv",
        events,
        &["--action", "event", "--batch", "100"],
    );
    let batches = |server: &Server| -> Vec<usize> {
        sent(server)
            .iter()
            .filter(|r| r.path == "/api/v2/batch")
            .map(|r| r.body.as_ref().unwrap()["batch"].as_array().unwrap().len())
            .collect()
    };
    assert_eq!(batches(&server), [4]);
    // Changes of one person keep their order: one a batch, each after the one before.
    let people = "id,plan\n1,free\n1,pro\n1,enterprise\n";
    import(
        &server,
        dir.path(),
        "people.csv",
        people,
        &["--batch", "100"],
    );
    assert_eq!(batches(&server), [4, 1, 1, 1]);
    let plan = server.sandbox.person("1").unwrap()["plan"].clone();
    assert_eq!(plan, "enterprise");
}

/// The text of the repository's fixture `name`.
fn fixture(name: &str) -> String {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read_to_string(from).unwrap()
}

#[test]
fn page_and_screen_views_reach_their_endpoints_in_batches_and_one_a_request() {
    for batch in ["1", "100"] {
        let server = Server::plain();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, action) in [("pages.csv", "page"), ("screens.csv", "screen")] {
            let text = fixture(name);
            import(
                &server,
                d,
                name,
                &text,
                &["--action", action, "--batch", batch],
            );
        }
        let stats = server.sandbox.stats();
        assert_eq!(
            (stats.page_views, stats.screen_views, stats.events),
            (3, 3, 0),
            "--batch {batch}"
        );
        assert_eq!(
            stats.invalid_ops + stats.rejected_4xx.values().sum::<u64>(),
            0
        );
        let mut routes: Vec<(String, Option<String>)> = sent(&server)
            .iter()
            .flat_map(|r| {
                let body = r.body.clone().unwrap();
                let kinds: Vec<Option<String>> = match body["batch"].as_array() {
                    Some(ops) => ops
                        .iter()
                        .map(|op| op["action"].as_str().map(str::to_owned))
                        .collect(),
                    None => vec![
                        body["action"]
                            .as_str()
                            .or(body["type"].as_str())
                            .map(str::to_owned),
                    ],
                };
                let path = r.path.clone();
                kinds.into_iter().map(move |k| (path.clone(), k))
            })
            .collect();
        routes.sort();
        let route = |path: &str, kind: &str| (path.to_owned(), Some(kind.to_owned()));
        let expected = if batch == "1" {
            vec![
                route("/api/v1/customers/1001/events", "page"),
                route("/api/v1/customers/1002/events", "page"),
                route("/api/v1/events", "page"),
                route("/api/v1/events", "screen"),
                // v1 has no shape for a person's screen view.
                route("/api/v2/entity", "screen"),
                route("/api/v2/entity", "screen"),
            ]
        } else {
            vec![
                route("/api/v1/events", "page"),
                route("/api/v1/events", "screen"),
                route("/api/v2/batch", "page"),
                route("/api/v2/batch", "page"),
                route("/api/v2/batch", "screen"),
                route("/api/v2/batch", "screen"),
            ]
        };
        assert_eq!(routes, expected, "--batch {batch}");
        let kinds: Vec<&str> = server.sandbox.events().iter().map(|e| e.kind).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "page").count(), 3);
        assert!(
            server
                .sandbox
                .summary_line()
                .contains(", 3 page views, 3 screen views, "),
            "{}",
            server.sandbox.summary_line()
        );
    }
}
