//! Events and the other actions, end to end: what reaches which endpoint, what the sandbox
//! holds after, event ids stable across runs, and failures files that replay each action.

use crate::common;

use std::path::Path;

use cio_import::sandbox::Received;
use common::{Server, read_ndjson, refused_into_one, write};
use serde_json::{Value, json};
use ulid::Ulid;

fn sent(server: &Server) -> Vec<Received> {
    server.sent()
}

/// Imports `csv` from the file `name` in `dir` with `args`, expecting success; returns every
/// request sent so far.
fn import(server: &Server, dir: &Path, name: &str, csv: &str, args: &[&str]) -> Vec<Received> {
    let input = write(dir, name, csv);
    server.cmd(dir).arg(&input).args(args).assert().success();
    sent(server)
}

/// The body without its `id`, after checking the id is a ULID; and the id.
fn split_id(body: &Value) -> (Value, String) {
    let mut body = body.clone();
    let id = body
        .as_object_mut()
        .unwrap()
        .remove("id")
        .unwrap_or_else(|| panic!("no event id in {body}"));
    let id = id.as_str().unwrap().to_owned();
    Ulid::from_string(&id).unwrap_or_else(|e| panic!("{id} is not a ULID: {e}"));
    (body, id)
}

#[test]
fn person_events_reach_the_customers_events_endpoint_with_unix_times_and_data() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let given = Ulid::from_parts(1_709_632_800_000, 42).to_string();
    let csv = format!(
        "id,name,timestamp,event_id,plan\n\
         1,signed_up,2024-03-05T10:00:00Z,,pro\n\
         2,,1709632800,{},free\n",
        given.to_lowercase()
    );
    let args = ["--action", "event", "--event-name", "fallback"];
    let requests = import(&server, dir.path(), "events.csv", &csv, &args);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let one = requests.iter().find(|r| r.path.contains("/1/")).unwrap();
    assert_eq!(
        (one.method.as_str(), one.path.as_str()),
        ("POST", "/api/v1/customers/1/events")
    );
    let (body, derived) = split_id(one.body.as_ref().unwrap());
    assert_eq!(
        body,
        json!({"name": "signed_up", "timestamp": 1_709_632_800, "data": {"plan": "pro"}})
    );
    let two = requests.iter().find(|r| r.path.contains("/2/")).unwrap();
    assert_eq!(two.path, "/api/v1/customers/2/events");
    let (body, id) = split_id(two.body.as_ref().unwrap());
    // An empty name cell falls back to --event-name; a given event_id is sent, canonical.
    assert_eq!(
        body,
        json!({"name": "fallback", "timestamp": 1_709_632_800, "data": {"plan": "free"}})
    );
    assert_eq!(id, given);

    let mut stored = server.sandbox.events();
    stored.sort_by(|a, b| a.person.cmp(&b.person));
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].person.as_deref(), Some("1"));
    assert_eq!(stored[0].id.as_deref(), Some(derived.as_str()));
    assert_eq!(stored[0].timestamp, Some(1_709_632_800));
    assert_eq!(stored[1].id.as_deref(), Some(given.as_str()));
}

#[test]
fn event_name_flag_names_every_row_of_a_file_without_a_name_column() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let requests = import(
        &server,
        dir.path(),
        "events.csv",
        "email,timestamp,amount\na@x.io,2024-03-05T10:00:00+01:00,9.5\nb@x.io,1709632800,3\n",
        &[
            "--action",
            "event",
            "--event-name",
            "purchase",
            "--type",
            "amount=number",
        ],
    );
    assert_eq!(requests.len(), 2);
    let by_email = |email: &str| {
        let r = requests
            .iter()
            .find(|r| r.identifier.as_deref() == Some(email))
            .unwrap();
        split_id(r.body.as_ref().unwrap()).0
    };
    assert_eq!(
        by_email("a@x.io"),
        json!({"name": "purchase", "timestamp": 1_709_629_200, "data": {"amount": 9.5}})
    );
    assert_eq!(
        by_email("b@x.io"),
        json!({"name": "purchase", "timestamp": 1_709_632_800, "data": {"amount": 3}})
    );
    assert!(
        requests
            .iter()
            .all(|r| r.method == "POST" && r.path.ends_with("/events"))
    );
}

#[test]
fn anonymous_events_reach_the_events_endpoint_with_their_anonymous_id() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let requests = import(
        &server,
        dir.path(),
        "views.csv",
        "anonymous_id,page\nanon-1,/home\nanon-2,/pricing\n",
        &["--action", "event", "--event-name", "viewed"],
    );
    assert_eq!(requests.len(), 2);
    for (anon, page) in [("anon-1", "/home"), ("anon-2", "/pricing")] {
        let r = requests
            .iter()
            .find(|r| r.body.as_ref().unwrap()["anonymous_id"] == anon)
            .unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/api/v1/events")
        );
        assert_eq!(
            split_id(r.body.as_ref().unwrap()).0,
            json!({"name": "viewed", "anonymous_id": anon, "data": {"page": page}})
        );
    }
    let stored = server.sandbox.events();
    assert_eq!(stored.len(), 2);
    assert!(
        stored
            .iter()
            .all(|e| e.person.is_none() && e.anonymous_id.is_some())
    );
    assert_eq!(server.sandbox.people_count(), 0);
}

#[test]
fn an_event_of_a_known_person_is_sent_for_the_person_and_its_anonymous_id_told_once() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "views.csv",
        "id,anonymous_id,page\n7,anon-1,/home\n8,anon-2,/pricing\n,anon-3,/about\n",
    );
    let out = server
        .cmd(dir.path())
        .arg(&input)
        .args(["--action", "event", "--event-name", "viewed"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "views.csv line 2: this event is of the person in column \"id\" and has an \
             anonymous id too, in column \"anonymous_id\": an event names one person, so it is \
             sent without it."
        ),
        "{stderr}"
    );
    assert_eq!(stderr.matches("anonymous id too").count(), 1, "{stderr}");
    let mut stored: Vec<(Option<String>, Option<String>)> = server
        .sandbox
        .events()
        .into_iter()
        .map(|e| (e.person, e.anonymous_id))
        .collect();
    stored.sort();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        stored,
        [(None, some("anon-3")), (some("7"), None), (some("8"), None)]
    );
}

#[test]
fn delete_suppress_and_unsuppress_reach_their_endpoints_without_a_body() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    import(
        &server,
        dir.path(),
        "people.csv",
        "id,plan\n1,pro\n2,pro\n3,pro\n",
        &[],
    );
    assert_eq!(server.sandbox.people_count(), 3);

    let run = |file: &str, ids: &str, action: &str| {
        import(
            &server,
            dir.path(),
            file,
            &format!("id\n{ids}"),
            &["--action", action, "--yes"],
        );
    };
    run("delete.csv", "1\n", "delete");
    run("suppress.csv", "2\n3\n", "suppress");
    run("unsuppress.csv", "3\n", "unsuppress");

    let mut calls: Vec<(String, String)> = sent(&server)
        .into_iter()
        .filter(|r| r.method != "PUT")
        .map(|r| {
            assert_eq!(r.body, None, "{r:?}");
            assert_eq!(r.status, Some(200), "{r:?}");
            (r.method, r.path)
        })
        .collect();
    calls.sort();
    let expected: Vec<(String, String)> = [
        ("DELETE", "/api/v1/customers/1"),
        ("POST", "/api/v1/customers/2/suppress"),
        ("POST", "/api/v1/customers/3/suppress"),
        ("POST", "/api/v1/customers/3/unsuppress"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(calls, expected);

    assert_eq!(server.sandbox.person("1"), None);
    assert_eq!(server.sandbox.person("2"), None);
    assert!(server.sandbox.is_suppressed("2"));
    assert!(!server.sandbox.is_suppressed("3"));
    assert_eq!(server.sandbox.stats().deleted, 1);
}

#[test]
fn the_same_events_sent_twice_carry_the_same_ids_and_are_deduplicated() {
    const N: usize = 20;
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,name,timestamp,n\n");
    for i in 0..N {
        csv.push_str(&format!("u{},clicked,{},{i}\n", i % 4, 1_709_632_800 + i));
    }
    let input = write(dir.path(), "events.csv", &csv);
    let ids = |requests: &[Received]| {
        let mut ids: Vec<String> = requests
            .iter()
            .map(|r| r.body.as_ref().unwrap()["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    for _ in 0..2 {
        server
            .cmd(dir.path())
            .arg(&input)
            .args(["--action", "event"])
            .assert()
            .success();
    }
    let requests = sent(&server);
    assert_eq!(requests.len(), 2 * N);
    let (first, second) = requests.split_at(N);
    let first_ids = ids(first);
    first_ids.windows(2).for_each(|w| assert_ne!(w[0], w[1]));
    assert_eq!(first_ids, ids(second));
    let stats = server.sandbox.stats();
    assert_eq!(stats.events, N as u64);
    assert_eq!(stats.duplicate_events, N as u64);
}

#[test]
fn an_event_that_repeats_an_earlier_one_is_told() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "events.csv",
        "id,name,timestamp\nu1,viewed,2024-06-04\nu2,viewed,2024-06-04\nu1,viewed,2024-06-04\n",
    );
    let out = server
        .cmd(dir.path())
        .arg(&input)
        .args(["--action", "event"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("events.csv line 4: the same event as line 2"),
        "{stderr}"
    );
    assert!(!stderr.contains("line 3: the same event"), "{stderr}");
    assert_eq!(server.sandbox.stats().duplicate_events, 1);
}

#[test]
fn an_event_id_given_to_another_event_is_invalid_not_accepted_and_dropped() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "dupid.csv",
        "id,name,event_id,timestamp,amt\n1,pay,ch_1,2024-01-01,5\n2,pay,ch_1,2024-01-02,7\n\
         1,refund,ch_1,2024-01-03,5\n",
    );
    let out = server
        .cmd(d)
        .args(["dupid.csv", "--action", "event", "--summary", "-"])
        .assert()
        .code(3);
    let out = out.get_output();
    let s = common::summary(out);
    assert_eq!(
        (&s["accepted"], &s["invalid"]),
        (&json!(1), &json!(2)),
        "{s}"
    );
    // Only the first was sent, and kept.
    let events = server.sandbox.events();
    let kept: Vec<(&str, &Value)> = events
        .iter()
        .map(|e| (&e.name[..], &e.data["amt"]))
        .collect();
    assert_eq!(kept, [("pay", &json!("5"))]);
    assert_eq!(server.sandbox.stats().duplicate_events, 0);
    let lines = read_ndjson(&d.join("dupid.failures.ndjson"));
    let told: Vec<(&Value, &Value, &Value)> = lines
        .iter()
        .map(|l| {
            (
                &l["_error"]["line"],
                &l["_error"]["column"],
                &l["_error"]["message"],
            )
        })
        .collect();
    let message = json!(
        "event id \"ch_1\" (column \"event_id\") was given to another event at line 2; \
         Customer.io keeps only the first event of an id and would drop this one as a \
         duplicate: give each event an id of its own"
    );
    assert_eq!(
        told,
        [
            (&json!(3), &json!("event_id"), &message),
            (&json!(4), &json!("event_id"), &message)
        ]
    );
    let e = common::stderr(out);
    assert!(!e.contains("the same event"), "{e}");
}

#[test]
fn the_same_event_again_under_its_event_id_is_accepted_and_dropped_as_seen() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let row = "1,pay,ch_1,2024-01-01,5\n";
    write(
        d,
        "again.csv",
        &format!("id,name,event_id,timestamp,amt\n{row}{row}"),
    );
    for run in 1..=2 {
        let out = server
            .cmd(d)
            .args(["again.csv", "--action", "event", "--summary", "-"])
            .assert()
            .success();
        let out = out.get_output();
        assert_eq!(common::summary(out)["accepted"], json!(2));
        let e = common::stderr(out);
        assert!(
            e.contains(
                "again.csv line 3: the same event as line 2 (same event_id \"ch_1\", person, \
                 name, timestamp and data); Customer.io keeps one\n"
            ),
            "{e}"
        );
        let stats = server.sandbox.stats();
        // Run again, as a resume or a replay would: dropped as seen, as meant.
        assert_eq!((stats.events, stats.duplicate_events), (1, 2 * run - 1));
    }
}

#[test]
fn a_failures_file_of_mixed_actions_replays_each_with_its_own_action() {
    let dir = tempfile::tempdir().unwrap();
    // Each action's run fails every record into its own failures file.
    let runs = [
        (
            "people.csv",
            "id,plan\n1,pro\n2,free\n3,pro\n".into(),
            vec!["--action", "identify"],
        ),
        (
            "events.csv",
            "id,name,timestamp,anonymous_id\n1,signed_up,1709632800,\n,viewed,1709632801,anon-9\n"
                .into(),
            vec!["--action", "event"],
        ),
        (
            "delete.csv",
            "id\n2\n".into(),
            vec!["--action", "delete", "--yes"],
        ),
        (
            "suppress.csv",
            "id\n3\n".into(),
            vec!["--action", "suppress", "--yes"],
        ),
    ];
    let mixed = refused_into_one(dir.path(), &runs);
    let lines = read_ndjson(&mixed);
    assert_eq!(lines.len(), 3 + 2 + 1 + 1);
    let event_ids: Vec<String> = lines
        .iter()
        .filter(|l| l["action"] == "event")
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(event_ids.len(), 2);

    // Replayed with the default action (identify), each line keeps its own.
    let healthy = Server::plain();
    healthy
        .cmd(dir.path())
        .arg(&mixed)
        .arg("--yes")
        .assert()
        .success();
    let mut calls: Vec<(String, String)> = sent(&healthy)
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    calls.sort();
    let expected: Vec<(String, String)> = [
        ("DELETE", "/api/v1/customers/2"),
        ("POST", "/api/v1/customers/1/events"),
        ("POST", "/api/v1/customers/3/suppress"),
        ("POST", "/api/v1/events"),
        ("PUT", "/api/v1/customers/1"),
        ("PUT", "/api/v1/customers/2"),
        ("PUT", "/api/v1/customers/3"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(calls, expected);

    let sb = &healthy.sandbox;
    assert_eq!(sb.person("1").unwrap()["plan"], "pro");
    // Each person's lines keep their order: identified, then deleted or suppressed.
    assert_eq!(sb.person("2"), None);
    assert_eq!(sb.person("3"), None);
    assert!(sb.is_suppressed("3"));
    let mut stored: Vec<String> = sb.events().into_iter().filter_map(|e| e.id).collect();
    stored.sort();
    let mut expected_ids = event_ids;
    expected_ids.sort();
    assert_eq!(stored, expected_ids, "replayed events keep their ids");
}
