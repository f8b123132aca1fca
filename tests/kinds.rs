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
