//! Customer.io's data model end to end, kind by kind: which endpoint each operation reaches
//! in batches and one a request, what the sandbox keeps, and the order kept where it matters.

use crate::common;

use std::path::Path;

use cio_import::sandbox::{Received, Sandbox};
use common::{Server, every_kind, fixture, read_ndjson, refused_into_one, write};

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
    let requests = server.sent();
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
        server
            .sent()
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
        let mut routes: Vec<(String, Option<String>)> = server
            .sent()
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

/// What the sandbox holds after the runs of `every_kind`, none of their operations refused.
fn holds_every_kind(sb: &Sandbox, at: &str) {
    let stats = sb.stats();
    let at = format!("{at}: {}", sb.summary_line());
    let refused = stats.invalid_ops + stats.rejected_4xx.values().sum::<u64>();
    assert_eq!(refused, 0, "{at}");
    let kept = (
        stats.devices,
        stats.objects,
        stats.relationships,
        stats.merges,
    );
    assert_eq!(kept, (1, 2, 2, 2), "{at}");
    assert_eq!(sb.person("+14155552671").unwrap()["first_name"], "Ada");
    let devices = sb.devices("1001");
    assert_eq!(devices.len(), 1, "{at}");
    assert_eq!(devices[0].1["platform"], "ios");
    assert_eq!(sb.object("1", "acme").unwrap()["name"], "Acme Corp");
    let role = |person, object| {
        sb.relationship(person, "1", object)
            .map(|r| r["role"].clone())
    };
    assert_eq!(role("1001", "acme").unwrap(), "admin");
    assert_eq!(role("1003", "acme").unwrap(), "owner");
    assert_eq!(role("1002", "globex"), None, "{at}");
    let line = sb.summary_line();
    assert!(
        line.contains(", 1 device, 2 objects, 2 relationships, 2 merges, "),
        "{at}"
    );
}

#[test]
fn every_kind_reaches_the_sandbox_in_batches_and_one_a_request() {
    for batch in ["1", "100"] {
        let server = Server::plain();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, text, args) in every_kind() {
            let mut args = args.clone();
            args.extend(["--batch", batch]);
            import(&server, d, name, &text, &args);
        }
        let at = format!("--batch {batch}");
        holds_every_kind(&server.sandbox, &at);
        let paths: std::collections::BTreeSet<String> = server
            .sent()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        let expected: &[&str] = if batch == "1" {
            &[
                "DELETE /api/v1/customers/1002/devices/dGhpcyBpcyBhbiBGQ00gdG9rZW4gZm9yIGEgdGVzdCBkZXZpY2U",
                "POST /api/v2/entity",
                "PUT /api/v1/customers/1001",
                "PUT /api/v1/customers/1001/devices",
            ]
        } else {
            &["POST /api/v2/batch"]
        };
        for path in expected {
            assert!(paths.contains(*path), "{at}: {paths:?}");
        }
        if batch == "100" {
            assert_eq!(paths.len(), 1, "{paths:?}");
        }
    }
}

#[test]
fn a_failures_file_of_every_kind_replays_to_the_same_sandbox_state() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut runs = every_kind();
    runs.extend([
        ("pages.csv", fixture("pages.csv"), vec!["--action", "page"]),
        (
            "screens.csv",
            fixture("screens.csv"),
            vec!["--action", "screen"],
        ),
    ]);
    let mixed = refused_into_one(d, &runs);
    let lines = read_ndjson(&mixed);
    assert!(lines.iter().all(|l| l["_error"]["stage"] == "send"));

    // Replayed with none of the runs' flags, each line keeps its kind.
    for batch in ["1", "100"] {
        let healthy = Server::plain();
        import(
            &healthy,
            d,
            "replay.ndjson",
            &std::fs::read_to_string(&mixed).unwrap(),
            &["--batch", batch, "--yes"],
        );
        let sb = &healthy.sandbox;
        let at = format!("--batch {batch}");
        holds_every_kind(sb, &at);
        let stats = sb.stats();
        assert_eq!((stats.page_views, stats.screen_views), (3, 3), "{at}");
        assert_eq!(sb.person("+442071838750").unwrap()["plan"], "free", "{at}");
        assert_eq!(sb.object("1", "globex").unwrap()["plan"], "pro", "{at}");
    }
}

#[test]
fn a_run_that_cannot_be_undone_is_refused_without_yes_and_sends_nothing() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "users.csv", "id\n1\n2\n");
    let merges = write(d, "merges.csv", "primary_id,secondary_id\n1,2\n");
    for action in ["delete", "suppress", "merge"] {
        let out = server
            .cmd(d)
            .arg(if action == "merge" { &merges } else { &input })
            .args(["--action", action])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{action}: {stderr}");
        assert!(
            stderr.contains(&format!("--action {action} "))
                && stderr.contains("cannot be undone: pass --yes"),
            "{stderr}"
        );
    }
    assert!(
        server.sandbox.requests().is_empty(),
        "nothing was sent, not even the preflight"
    );
    // Confirmed, or in a dry run, it goes.
    server
        .cmd(d)
        .arg(&input)
        .args(["--action", "delete", "--yes"])
        .assert()
        .success();
    common::bin(d)
        .arg(&input)
        .args(["--action", "delete", "--dry-run"])
        .assert()
        .success();
    assert_eq!(server.sandbox.stats().deleted, 2);
}

#[test]
fn the_summary_counts_the_events_that_can_still_trigger_campaigns() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let csv = format!(
        "id,name,timestamp\n1,old,1709632800\n2,recent,{}\n3,untimed,\n",
        now - 3600
    );
    let input = write(d, "events.csv", &csv);
    let runs = [
        (server.cmd(d), "were", "can trigger"),
        (common::bin(d), "are", "would be able to trigger"),
    ];
    for (mut cmd, are, can) in runs {
        if are == "are" {
            cmd.arg("--dry-run");
        }
        let out = cmd
            .arg(&input)
            .args(["--action", "event", "--summary", "summary.json"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "2 events {are} from the last 72 hours or without a time: they {can} campaigns"
            )),
            "{stderr}"
        );
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["recent_events"], 2, "{summary}");
    }
}

#[test]
fn a_replayed_line_that_cannot_be_undone_waits_for_yes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broken = Server::refusing();
    let input = write(d, "gone.csv", "id\n1\n");
    broken
        .cmd(d)
        .arg(&input)
        .args([
            "--action",
            "delete",
            "--yes",
            "--max-retries",
            "0",
            "--no-preflight",
        ])
        .assert()
        .code(3);
    let healthy = Server::plain();
    healthy.cmd(d).arg("gone.failures.ndjson").assert().code(3);
    assert_eq!(healthy.sandbox.stats().deleted, 0);
    let refused = read_ndjson(&d.join("gone.failures-2.ndjson"));
    let message = refused[0]["_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot be undone: replay the file with --yes"),
        "{message}"
    );
    healthy
        .cmd(d)
        .arg("gone.failures.ndjson")
        .arg("--yes")
        .assert()
        .success();
    assert_eq!(healthy.sandbox.stats().deleted, 1);
}

#[test]
fn the_data_model_flags_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "users.csv", "id\n1\n");
    for (args, says) in [
        (
            &["--entity", "object", "--action", "event"][..],
            "--entity object takes --action identify or delete, not event",
        ),
        (
            &["--entity", "object", "--object-type", "0"],
            "--object-type \"0\": an object type id",
        ),
        (
            &["--object-type", "1"],
            "--object-type names the objects of --entity object",
        ),
        (
            &["--only-existing", "--action", "event"],
            "--only-existing updates people who exist: it goes with --action identify",
        ),
    ] {
        let out = common::bin(d)
            .arg("users.csv")
            .args(args)
            .arg("--dry-run")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn one_recent_event_is_told_in_the_singular() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "one.csv", "id,name\n1,untimed\n");
    let out = common::bin(d)
        .args(["one.csv", "--action", "event", "--dry-run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "1 event is from the last 72 hours or without a time: it would be able to trigger \
             campaigns"
        ),
        "{stderr}"
    );
}

#[test]
fn one_a_request_a_person_a_v1_path_would_misread_goes_through_v2() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    // Customer.io reads a v1 path's kind from the value: `12345` as an id, `cio_…` as a
    // cio_id, one with an `@` as an email.
    import(
        &server,
        dir.path(),
        "emails.csv",
        "email,plan\n12345,pro\ncio_abc,free\nann@x.io,pro\n",
        &["--batch", "1"],
    );
    import(
        &server,
        dir.path(),
        "ids.csv",
        "id,plan\nweird@x.com,pro\ncio_03000001,free\n7,pro\n",
        &["--batch", "1"],
    );
    let mut sent: Vec<(String, String, Option<serde_json::Value>)> = server
        .sent()
        .into_iter()
        .map(|r| {
            let ids = r.body.as_ref().map(|b| b["identifiers"].clone());
            (r.method, r.path, ids.filter(|i| !i.is_null()))
        })
        .collect();
    sent.sort_by_key(|r| format!("{r:?}"));
    let entity =
        |ids: serde_json::Value| ("POST".to_owned(), "/api/v2/entity".to_owned(), Some(ids));
    let path = |p: &str| ("PUT".to_owned(), format!("/api/v1/customers/{p}"), None);
    use serde_json::json;
    let mut expected = vec![
        entity(json!({"email": "12345"})),
        entity(json!({"email": "cio_abc"})),
        entity(json!({"id": "weird@x.com"})),
        entity(json!({"id": "cio_03000001"})),
        path("ann%40x.io"),
        path("7"),
    ];
    expected.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(sent, expected);
}
