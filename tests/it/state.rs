//! Incremental syncs (`--state`) against the sandbox on 127.0.0.1, asserting what it received:
//! a second run of the same export sends nothing, a changed row exactly itself, a refused row
//! again, `--missing delete` exactly who left (and nothing past `--max-missing`), and a run
//! killed with SIGKILL and resumed leaves the state as the server has it.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cio_import::sandbox::SandboxOptions;
use common::{API_KEY, SITE_ID, Server, accepted, operations, read_ndjson, summary, write};
use serde_json::Value;

const ROWS: u64 = 10_000;

/// The export: people `0..ROWS` but those in `left`, with the plan of those in `changed`
/// changed.
fn export(dir: &Path, left: &BTreeSet<u64>, changed: &BTreeSet<u64>) {
    let mut text = String::from("id,plan,age\n");
    for i in (0..ROWS).filter(|i| !left.contains(i)) {
        let plan = if changed.contains(&i) { "gold" } else { "free" };
        text.push_str(&format!("{i},{plan},{}\n", i % 90));
    }
    write(dir, "users.csv", &text);
}

/// Every `step`th person from `from`.
fn every(step: u64, from: u64) -> BTreeSet<u64> {
    (from..ROWS).step_by(step as usize).collect()
}

/// A run of `input` in `dir` with the state state.db (ages as numbers), its summary on
/// stdout, then `flags`.
fn sync(server: &Server, dir: &Path, input: &str, flags: &[&str]) -> Output {
    server
        .cmd(dir)
        .args([input, "--state", "state.db", "--type", "age=number"])
        .args(["--summary", "-"])
        .args(flags)
        .output()
        .unwrap()
}

/// A sync of users.csv in batches of 100.
fn import(server: &Server, dir: &Path, extra: &[&str]) -> Output {
    let flags = [&["--batch", "100"], extra].concat();
    sync(server, dir, "users.csv", &flags)
}

/// Removes who left, confirmed.
const DELETE_MISSING: &[&str] = &["--missing", "delete", "--yes"];

/// What the server received after its first `from` requests: (action, person id) of every
/// operation, one a request or many in a batch.
fn received(server: &Server, from: usize) -> Vec<(String, String)> {
    let sent = server.sent().into_iter().skip(from);
    sent.flat_map(|request| operations(&request)).collect()
}

fn ids(ops: &[(String, String)], action: &str) -> BTreeSet<u64> {
    ops.iter()
        .filter(|(a, _)| a == action)
        .map(|(_, id)| id.parse().unwrap())
        .collect()
}

#[test]
fn a_second_run_of_the_same_export_sends_no_request_and_a_changed_row_is_sent_alone() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    export(dir.path(), &BTreeSet::new(), &BTreeSet::new());
    let first = import(&server, dir.path(), &[]);
    assert_eq!(first.status.code(), Some(0), "{}", summary(&first));
    assert_eq!(summary(&first)["accepted"], ROWS);
    let after_first = server.sent().len();
    assert_eq!(received(&server, 0).len(), ROWS as usize);

    let second = import(&server, dir.path(), &[]);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(
        server.sent().len(),
        after_first,
        "the second run sent nothing"
    );
    let s = summary(&second);
    assert_eq!(
        (s["unchanged"].as_u64(), s["accepted"].as_u64()),
        (Some(ROWS), Some(0))
    );
    assert_eq!(s["requests"], 0);

    // 1% of the rows change: exactly those are sent.
    let changed = every(100, 7);
    export(dir.path(), &BTreeSet::new(), &changed);
    // A dry run says so first, without writing the state.
    let before = std::fs::read(dir.path().join("state.db")).unwrap();
    let dry = common::bin(dir.path())
        .args(["users.csv", "--state", "state.db", "--type", "age=number"])
        .args(["--dry-run", "--summary", "-"])
        .output()
        .unwrap();
    let s = summary(&dry);
    assert_eq!(
        (s["accepted"].as_u64(), s["unchanged"].as_u64()),
        (Some(100), Some(ROWS - 100))
    );
    assert_eq!(std::fs::read(dir.path().join("state.db")).unwrap(), before);

    let third = import(&server, dir.path(), &[]);
    assert_eq!(third.status.code(), Some(0));
    let sent = received(&server, after_first);
    assert_eq!(sent.len(), 100, "exactly the changed rows");
    assert_eq!(ids(&sent, "identify"), changed);
    let s = summary(&third);
    assert_eq!(
        (s["accepted"].as_u64(), s["unchanged"].as_u64()),
        (Some(100), Some(ROWS - 100))
    );
    assert_eq!(server.sandbox.person("7").unwrap()["plan"], "gold");
}

#[test]
fn rows_refused_on_the_first_run_are_sent_again_on_the_second_without_flags() {
    // The first workspace answers 503 to one request in ten, never retried.
    let refusing = Server::start(SandboxOptions {
        limit: None,
        fail_rate: 0.1,
        seed: Some(19),
        ..SandboxOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    export(dir.path(), &BTreeSet::new(), &BTreeSet::new());
    let first = import(
        &refusing,
        dir.path(),
        &["--batch", "10", "--max-retries", "0"],
    );
    assert_eq!(first.status.code(), Some(3), "{}", summary(&first));
    let refused: BTreeSet<u64> = read_ndjson(&dir.path().join("users.failures.ndjson"))
        .iter()
        .map(|line| line["identifiers"]["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(refused.len() >= 100, "{} refused", refused.len());

    // The same workspace (the same site id), now answering: only the refused are sent.
    let answering = Server::plain();
    let second = import(&answering, dir.path(), &[]);
    assert_eq!(second.status.code(), Some(0));
    let sent = received(&answering, 0);
    assert_eq!(
        sent.len(),
        refused.len(),
        "each refused row once, nothing else"
    );
    assert_eq!(ids(&sent, "identify"), refused);
    assert_eq!(summary(&second)["unchanged"], ROWS - refused.len() as u64);
}

#[test]
fn people_who_left_the_export_are_deleted_and_a_truncated_export_deletes_nobody() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    export(dir.path(), &BTreeSet::new(), &BTreeSet::new());
    assert_eq!(import(&server, dir.path(), &[]).status.code(), Some(0));
    let after_first = server.sent().len();

    // 40% gone: over the 5% cap, nothing is removed, and the run says how to allow it.
    export(
        dir.path(),
        &every(5, 0).into_iter().chain(every(5, 1)).collect(),
        &BTreeSet::new(),
    );
    let truncated = import(&server, dir.path(), DELETE_MISSING);
    let stderr = String::from_utf8_lossy(&truncated.stderr);
    assert_eq!(truncated.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "--missing delete: 4,000 of the 10,000 people in the state (40.0%) are not in this \
             run's inputs, more than --max-missing 5% allows: nothing was removed"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("run again with --max-missing 4000 (or 40%)"),
        "{stderr}"
    );
    assert_eq!(server.sent().len(), after_first, "nothing sent");
    assert_eq!(server.sandbox.people_count(), ROWS as usize);

    // 3% gone: exactly those are deleted, the rest unchanged.
    let left: BTreeSet<u64> = every(100, 3)
        .into_iter()
        .chain(every(100, 50))
        .chain(every(100, 77))
        .collect();
    export(dir.path(), &left, &BTreeSet::new());
    let out = import(&server, dir.path(), DELETE_MISSING);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = received(&server, after_first);
    assert_eq!(sent.len(), 300, "only the deletes");
    assert_eq!(ids(&sent, "delete"), left);
    assert_eq!(server.sandbox.people_count(), ROWS as usize - 300);
    let s = summary(&out);
    assert_eq!(
        (s["missing"].as_u64(), s["unchanged"].as_u64()),
        (Some(300), Some(ROWS - 300))
    );

    // The state forgot them: a run after sends nothing and removes nobody.
    let again = import(&server, dir.path(), DELETE_MISSING);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(summary(&again)["missing"], 0);
    assert_eq!(received(&server, after_first).len(), 300);
}

#[test]
fn a_state_written_for_another_workspace_is_refused() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    export(dir.path(), &BTreeSet::new(), &BTreeSet::new());
    assert_eq!(import(&server, dir.path(), &[]).status.code(), Some(0));
    let out = import(&server, dir.path(), &["--site-id", "another-site"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "--state state.db: it holds what was sent to workspace test-site (us), not \
             workspace another-site (us)"
        ),
        "{stderr}"
    );
}

/// People in the killed import: one a request, paced so that a kill lands mid-way.
const KILLED_ROWS: u64 = 2_000;

/// The import killed: users.csv one a request at 400/s, its summary on stdout.
fn killed_import(server: &Server, dir: &Path, resume: bool) -> Command {
    let mut command = common::killable(dir, &server.sandbox.base_url());
    command
        .args(["users.csv", "--state", "state.db", "--type", "age=number"])
        .args(["--rate", "400", "--concurrency", "4", "--batch", "1"])
        .args(["--summary", "-"])
        .args(resume.then_some("--resume"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn killed_and_resumed_the_state_matches_the_server_and_a_third_run_sends_nothing() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,plan,age\n");
    for i in 0..KILLED_ROWS {
        text.push_str(&format!("{i},p{i},{}\n", i % 90));
    }
    write(dir.path(), "users.csv", &text);

    let mut child = killed_import(&server, dir.path(), false).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.sandbox.people_count() < 500 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        assert!(Instant::now() < deadline, "the import made no progress");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL: no chance to commit or clean up
    child.wait().unwrap();
    let at_kill = server.sandbox.people_count();
    assert!(at_kill < KILLED_ROWS as usize, "killed mid-way");

    let resumed = killed_import(&server, dir.path(), true).output().unwrap();
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let s = summary(&resumed);
    // The whole run's figures: sent once, or found accepted by the state after the kill.
    assert_eq!(
        s["accepted"].as_u64().unwrap() + s["unchanged"].as_u64().unwrap(),
        KILLED_ROWS,
        "{s}"
    );

    // Nothing lost: every person is there, once in the state with the digest of what the
    // server holds; a third run finds all of them unchanged and sends nothing.
    let times = accepted(&server, "identify");
    assert_eq!(times.len(), KILLED_ROWS as usize);
    let before_third = server.sent().len();
    let third = killed_import(&server, dir.path(), false).output().unwrap();
    assert_eq!(third.status.code(), Some(0));
    assert_eq!(summary(&third)["unchanged"], KILLED_ROWS);
    assert_eq!(
        server.sent().len(),
        before_third,
        "the third run sent nothing"
    );
    let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let people: i64 = db
        .query_row(
            "SELECT count(*) FROM entities WHERE kind = 'person' AND digest IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(people, KILLED_ROWS as i64);

    // Sent twice only what was in flight at the kill or accepted after the state's last
    // commit (the checkpoint's 100 ms at 400/s, on loaded cores): never a record the state
    // or the checkpoint held.
    let twice = times.values().filter(|n| **n > 1).count();
    assert!(times.values().all(|n| *n <= 2), "{times:?}");
    assert!(twice <= 150, "{twice} sent twice");
}

#[test]
fn missing_goes_only_with_yes_and_a_full_export_of_people() {
    let dir = tempfile::tempdir().unwrap();
    export(dir.path(), &BTreeSet::new(), &BTreeSet::new());
    let refused = |args: &[&str], expected: &str| {
        let out = common::bin(dir.path())
            .env("CUSTOMERIO_SITE_ID", SITE_ID)
            .env("CUSTOMERIO_TRACK_API_KEY", API_KEY)
            .args(["users.csv", "--state", "state.db"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    };
    refused(
        &["--missing", "delete"],
        "--missing delete removes people for good: add --yes to confirm",
    );
    refused(
        &["--missing", "suppress", "--yes", "--action", "event"],
        "--missing suppress removes the people a full export of people no longer has: it goes \
         with --action identify",
    );
    refused(
        &["--missing", "delete", "--yes", "--shard", "1/2"],
        "--missing delete needs the whole export, and --shard sends a share of it",
    );
    refused(
        &["--only-existing"],
        "--state state.db with --only-existing: Customer.io accepts an identify of someone who \
         does not exist without creating them",
    );
    refused(
        &["--state", "users.csv"],
        "--state users.csv is also an input",
    );
    assert!(
        !dir.path().join("state.db").exists(),
        "refused before any file is made"
    );
}

#[test]
fn a_state_in_use_by_another_run_is_refused_at_once() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,plan,age\n");
    for i in 0..KILLED_ROWS {
        text.push_str(&format!("{i},p{i},1\n"));
    }
    write(dir.path(), "users.csv", &text);
    write(dir.path(), "other.csv", "id,plan\n1,x\n");
    // Slow enough to be still going: 2,000 records at 100 a second.
    let mut first = killed_import(&server, dir.path(), false)
        .args(["--rate", "100"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.sandbox.people_count() < 10 {
        assert!(Instant::now() < deadline, "the first run made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let second = server
        .cmd(dir.path())
        .args(["other.csv", "--state", "state.db"])
        .output()
        .unwrap();
    let took = started.elapsed();
    first.kill().unwrap();
    first.wait().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--state state.db: another run is using it (one run at a time per state)"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(3), "refused after {took:?}");
}

/// 100 people (id, email, age), person 7's age `age7` and person 8's id `id8`.
fn people(dir: &Path, age7: &str, id8: &str) {
    let mut text = String::from("id,email,age\n");
    for i in 1..=100 {
        let id = if i == 8 {
            id8.to_owned()
        } else {
            i.to_string()
        };
        let age = if i == 7 {
            age7.to_owned()
        } else {
            (i % 90).to_string()
        };
        text.push_str(&format!("{id},p{i}@example.com,{age}\n"));
    }
    write(dir, "people.csv", &text);
}

fn people_in_state(dir: &Path) -> i64 {
    let db = rusqlite::Connection::open(dir.join("state.db")).unwrap();
    db.query_row(
        "SELECT count(*) FROM entities WHERE kind = 'person'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn an_invalid_row_keeps_its_person_from_missing_and_an_unreadable_one_stops_the_sweep() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let run = || sync(&server, dir.path(), "people.csv", DELETE_MISSING);
    people(dir.path(), "7", "8");
    assert_eq!(run().status.code(), Some(0));
    assert_eq!(server.sandbox.people_count(), 100);
    let after_first = server.sent().len();

    // Person 7's row is invalid tonight: in the failures file, and still in the export.
    people(dir.path(), "seven", "8");
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let s = summary(&out);
    assert_eq!(
        (s["invalid"].as_u64(), s["missing"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    assert_eq!(
        server.sent().len(),
        after_first,
        "nothing deleted: {stderr}"
    );
    assert!(server.sandbox.person("7").is_some());
    assert_eq!(people_in_state(dir.path()), 100);
    let failures = read_ndjson(&dir.path().join("people.failures.ndjson"));
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["id"], "7");

    // Person 8's row has no id at all: it might be anyone, so nobody is removed.
    people(dir.path(), "7", "");
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "--missing delete: 1 of this run's rows (the first: people.csv line 9) name no \
             person that can be read"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was removed"), "{stderr}");
    assert_eq!(server.sent().len(), after_first, "nothing deleted");
    assert_eq!(server.sandbox.people_count(), 100);
    assert_eq!(people_in_state(dir.path()), 100);
}

/// 180 rows alternating ids 1..=90 and 201..=290, `changed`'s email changed.
fn mixed(dir: &Path, changed: Option<u64>) {
    let mut text = String::from("id,email\n");
    for i in 1..=90 {
        for id in [i, 200 + i] {
            let mail = if Some(id) == changed { "new" } else { "old" };
            text.push_str(&format!("{id},{mail}{id}@example.com\n"));
        }
    }
    write(dir, "mix.csv", &text);
}

#[test]
fn unchanged_records_between_another_shards_are_settled_as_themselves() {
    let fast = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    mixed(dir.path(), None);
    let first = fast
        .cmd(dir.path())
        .args(["mix.csv", "--state", "state.db", "--shard", "1/2"])
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(0));
    // The last row of this shard's, in file order, changes: every record before it is
    // settled (unchanged, or another shard's) while it waits on a slow answer.
    let ours: BTreeSet<u64> = received(&fast, 0)
        .iter()
        .map(|(_, id)| id.parse().unwrap())
        .collect();
    assert!(
        ours.len() > 2 && ours.len() < 178,
        "{} of 180 in shard 1/2",
        ours.len()
    );
    let order: Vec<u64> = (1..=90).flat_map(|i| [i, 200 + i]).collect();
    let (index, &last) = order
        .iter()
        .enumerate()
        .rfind(|(_, id)| ours.contains(id))
        .unwrap();
    mixed(dir.path(), Some(last));

    let slow = Server::start(SandboxOptions {
        limit: None,
        latency: Duration::from_secs(8),
        ..SandboxOptions::default()
    });
    let child = common::killable(dir.path(), &slow.sandbox.base_url())
        .args([
            "mix.csv", "--state", "state.db", "--shard", "1/2", "--batch", "1",
        ])
        .args(["--no-preflight", "--stop-timeout", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let next = stderr.lines().find(|l| l.contains("to carry on:")).unwrap();
    assert!(next.contains(" --shard 1/2 "), "{next}");
    let checkpoint: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("mix.shard-1-of-2.checkpoint.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        checkpoint["position"]["records"], index as u64,
        "every record before the one in flight settled: {checkpoint}"
    );
}

#[test]
fn missing_suppress_suppresses_who_left_instead_of_deleting_them() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    people(dir.path(), "7", "8");
    let first = sync(&server, dir.path(), "people.csv", &[]);
    assert_eq!(first.status.code(), Some(0));
    let after_first = server.sent().len();
    // People 91..=100 leave.
    let text = std::fs::read_to_string(dir.path().join("people.csv")).unwrap();
    let kept: Vec<&str> = text.lines().take(91).collect();
    write(dir.path(), "people.csv", &(kept.join("\n") + "\n"));
    let flags = ["--missing", "suppress", "--yes", "--max-missing", "10"];
    let out = sync(&server, dir.path(), "people.csv", &flags);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert_eq!(summary(&out)["missing"], 10);
    let sent: BTreeSet<String> = server.sent()[after_first..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let expected: BTreeSet<String> = (91..=100)
        .map(|i| format!("POST /api/v1/customers/{i}/suppress"))
        .collect();
    assert_eq!(server.sent().len() - after_first, 10, "{sent:?}");
    assert_eq!(sent, expected);
    assert!((91..=100).all(|i| server.sandbox.is_suppressed(&i.to_string())));
}

#[test]
fn a_sweep_over_the_cap_says_so_once_and_prints_the_command_that_allows_it() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    people(dir.path(), "7", "8");
    assert_eq!(
        sync(&server, dir.path(), "people.csv", &[]).status.code(),
        Some(0)
    );
    // People 61..=100 leave: 40%, over the 5% cap.
    let text = std::fs::read_to_string(dir.path().join("people.csv")).unwrap();
    let kept: Vec<&str> = text.lines().take(61).collect();
    write(dir.path(), "people.csv", &(kept.join("\n") + "\n"));
    let out = sync(&server, dir.path(), "people.csv", DELETE_MISSING);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "cio-import: error: --missing delete: 40 of the 100 people in the state (40.0%)"
        ),
        "{stderr}"
    );
    assert_eq!(server.sandbox.people_count(), 100);
    let next = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "cio-import: if the export is complete and they did leave, to remove them: ",
            )
        })
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(!stderr.contains("to carry on:"), "{stderr}");
    let words: Vec<&str> = next.split_whitespace().collect();
    assert_eq!(words[0], "cio-import");
    assert!(next.ends_with("--max-missing 40 --resume"), "{next}");

    // The command it prints removes them.
    let allowed = common::bin(dir.path())
        .env("CUSTOMERIO_SITE_ID", SITE_ID)
        .env("CUSTOMERIO_TRACK_API_KEY", API_KEY)
        .args(&words[1..])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    assert_eq!(allowed.status.code(), Some(0), "{stderr}");
    assert_eq!(server.sandbox.people_count(), 60);
    assert_eq!(people_in_state(dir.path()), 60);
}

#[test]
fn removals_are_counted_as_they_are_accepted_apart_from_the_accepted_records() {
    let answering = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let run = |server: &Server, extra: &[&str]| {
        let flags = [DELETE_MISSING, &["--max-missing", "10"], extra].concat();
        sync(server, dir.path(), "people.csv", &flags)
    };
    people(dir.path(), "7", "8");
    assert_eq!(run(&answering, &[]).status.code(), Some(0));
    // People 91..=100 leave, and person 1 changes.
    let text = std::fs::read_to_string(dir.path().join("people.csv")).unwrap();
    let kept: Vec<String> = text
        .lines()
        .take(91)
        .map(|l| l.replace("p1@example.com", "new1@example.com"))
        .collect();
    write(dir.path(), "people.csv", &(kept.join("\n") + "\n"));

    // A workspace refusing every request: nobody is removed, and the summary says so.
    let refusing = Server::refusing();
    let out = run(&refusing, &["--max-retries", "0", "--no-preflight"]);
    let s = summary(&out);
    assert_eq!(out.status.code(), Some(3), "{s}");
    assert_eq!(
        (
            s["missing"].as_u64(),
            s["failed"].as_u64(),
            s["accepted"].as_u64()
        ),
        (Some(0), Some(11), Some(0)),
        "{s}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0 people removed as missing"), "{stderr}");
    let failures = read_ndjson(&dir.path().join("people.failures.ndjson"));
    assert_eq!(failures.len(), 11);

    // Answered: the 10 removals are `missing`, the changed person alone `accepted`, and the
    // state's runs say the same.
    let out = run(&answering, &[]);
    let s = summary(&out);
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert_eq!(
        (
            s["missing"].as_u64(),
            s["accepted"].as_u64(),
            s["unchanged"].as_u64()
        ),
        (Some(10), Some(1), Some(89)),
        "{s}"
    );
    assert_eq!(answering.sandbox.people_count(), 90);
    let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let last: (i64, i64) = db
        .query_row(
            "SELECT accepted, removed FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(last, (1, 10));
}

#[test]
fn a_resumed_sweep_goes_on_past_the_removals_refused_before_the_stop() {
    let answering = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let run = |server: &Server, extra: &[&str]| {
        let mut command = common::killable(dir.path(), &server.sandbox.base_url());
        command
            .args(["people.csv", "--state", "state.db", "--type", "age=number"])
            .args(["--batch", "1", "--concurrency", "1", "--no-preflight"])
            .args(DELETE_MISSING)
            .args(["--max-missing", "10"])
            .args(["--max-retries", "0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };
    people(dir.path(), "7", "8");
    assert_eq!(run(&answering, &[]).status().unwrap().code(), Some(0));
    let text = std::fs::read_to_string(dir.path().join("people.csv")).unwrap();
    let kept: Vec<&str> = text.lines().take(91).collect();
    write(dir.path(), "people.csv", &(kept.join("\n") + "\n"));

    // Every removal refused, slowly: stopped after the first few.
    let refusing = Server::start(SandboxOptions {
        limit: None,
        fail_rate: 1.0,
        latency: Duration::from_millis(300),
        ..SandboxOptions::default()
    });
    let child = run(&refusing, &[]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while refusing.sent().len() < 3 {
        assert!(Instant::now() < deadline, "no removal sent");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let before = refusing.sent().len();
    assert!(before < 10, "stopped mid-sweep: {before} sent");

    let out = run(&refusing, &["--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    // Each of the 10 removals sent once, and in the failures file once.
    let sent: Vec<String> = refusing
        .sent()
        .into_iter()
        .map(|r| r.identifier.unwrap_or_default())
        .collect();
    let distinct: BTreeSet<&String> = sent.iter().collect();
    assert_eq!((sent.len(), distinct.len()), (10, 10), "{sent:?}");
    let failures = read_ndjson(&dir.path().join("people.failures.ndjson"));
    let ids: BTreeSet<String> = failures
        .iter()
        .map(|l| l["identifiers"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!((failures.len(), ids.len()), (10, 10), "{failures:?}");
    assert_eq!(
        people_in_state(dir.path()),
        100,
        "the refused are still held"
    );
}

#[test]
fn another_applications_sqlite_file_is_refused_and_left_as_it_was() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    people(dir.path(), "7", "8");
    let path = dir.path().join("app.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch("CREATE TABLE users (id INTEGER); CREATE TABLE meta (k TEXT);")
        .unwrap();
    drop(db);
    let before = std::fs::read(&path).unwrap();
    let out = server
        .cmd(dir.path())
        .args(["people.csv", "--state", "app.db"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "--state app.db: not a cio-import state (it holds the tables meta, users): choose \
             another --state path"
        ),
        "{stderr}"
    );
    assert!(server.sent().is_empty());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file is as it was"
    );
    assert!(!dir.path().join("app.db-wal").exists());
    let shown = common::bin(dir.path())
        .args(["--show-state", "app.db"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&shown.stderr);
    assert!(stderr.contains("not a cio-import state"), "{stderr}");
}

/// [`people`] imported once with state.db.
fn people_imported(server: &Server, dir: &Path) {
    people(dir, "7", "8");
    let first = server
        .cmd(dir)
        .args(["people.csv", "--state", "state.db"])
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(0));
}

#[test]
fn a_dry_run_says_which_workspace_its_state_counts_are_against() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    people_imported(&server, dir.path());
    let dry = common::bin(dir.path())
        .args(["people.csv", "--state", "state.db", "--dry-run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&dry.stderr);
    assert_eq!(dry.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "--dry-run --state state.db: compared with what was sent to workspace test-site (us)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_dry_run_with_a_state_shows_what_would_be_sent_and_not_what_is_unchanged() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    people_imported(&server, dir.path());
    // Person 7 changed, and 808 is new: the two the dry run would send.
    people(dir.path(), "70", "808");
    let dry = common::bin(dir.path())
        .args([
            "people.csv",
            "--state",
            "state.db",
            "--dry-run",
            "--show",
            "5",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&dry.stderr);
    assert_eq!(dry.status.code(), Some(0), "{stderr}");
    let shown: Vec<Value> = String::from_utf8_lossy(&dry.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let who: Vec<&Value> = shown.iter().map(|op| &op["identifiers"]["id"]).collect();
    assert_eq!(who, ["7", "808"], "{shown:?}");
    assert_eq!(shown[0]["attributes"]["age"], "70");
}

#[test]
fn an_email_that_only_changed_case_is_the_same_person_and_not_swept() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let emails = |lowered: u64| {
        let mut text = String::from("email\n");
        for i in 1..=100 {
            let email = format!("User{i}@Example.com");
            let email = if i <= lowered {
                email.to_lowercase()
            } else {
                email
            };
            text.push_str(&format!("{email}\n"));
        }
        write(dir.path(), "em1.csv", &text);
    };
    let run = |flags: &[&str]| {
        let out = server
            .cmd(dir.path())
            .args(["em1.csv", "--state", "em.db", "--summary", "-"])
            .args(flags)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
        out
    };
    emails(0);
    run(&[]);
    let after_first = server.sent().len();
    emails(3);
    let out = run(DELETE_MISSING);
    // The new case is what the export says now: sent once, so Customer.io holds it too.
    let mut sent = received(&server, after_first);
    sent.sort();
    let lowered: Vec<_> = (1..=3)
        .map(|i| ("identify".to_owned(), format!("user{i}@example.com")))
        .collect();
    assert_eq!(sent, lowered, "{}", common::stderr(&out));
    assert_eq!(summary(&out)["missing"], 0);
    assert_eq!(server.sandbox.people_count(), 100);
    assert!(server.sandbox.person("User1@Example.com").is_some());

    // Then it is unchanged like the rest.
    let again = run(DELETE_MISSING);
    assert_eq!(summary(&again)["unchanged"], 100);
    assert_eq!(received(&server, after_first).len(), 3);
}

#[test]
fn a_sweep_removes_only_its_own_jobs_people_whatever_the_date_in_the_file_name() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let ids = |name: &str, ids: &mut dyn Iterator<Item = u64>| {
        let text: String = ids.map(|i| format!("{i}\n")).collect();
        write(dir.path(), name, &format!("id\n{text}"));
    };
    let run = |input: &str, flags: &[&str]| {
        let out = server
            .cmd(dir.path())
            .args([input, "--state", "ws.db", "--summary", "-"])
            .args(flags)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
        out
    };
    ids("users-2026-12-01.csv", &mut (1..=100));
    run("users-2026-12-01.csv", &[]);
    // Another job into the same state: its people are not in the nightly export.
    ids("signups2.csv", &mut [9001, 9002].into_iter());
    run("signups2.csv", &[]);
    let before = server.sent().len();
    // The next night's export, one person gone.
    ids("users-2026-12-02.csv", &mut (1..=100).filter(|i| *i != 7));
    let out = run("users-2026-12-02.csv", DELETE_MISSING);
    let sent = received(&server, before);
    assert_eq!(sent, [("delete".to_owned(), "7".to_owned())]);
    assert_eq!(summary(&out)["missing"], 1);
    assert!(server.sandbox.person("9001").is_some());
    assert!(server.sandbox.person("9002").is_some());
    let shown = common::bin(dir.path())
        .args(["--show-state", "ws.db"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    let folder = std::fs::canonicalize(dir.path()).unwrap();
    let folder = folder.display().to_string();
    // The folder as a job names it: each run of digits one `#`.
    let mut masked = String::new();
    for c in folder.chars() {
        match c.is_ascii_digit() {
            true if masked.ends_with('#') => {}
            true => masked.push('#'),
            false => masked.push(c),
        }
    }
    let job = |name: &str| format!("people of job {masked}/{name}");
    assert!(
        shown.contains(&format!("{}: 99", job("users-#-#-#.csv"))),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("{}: 2", job("signups#.csv"))),
        "{shown}"
    );
    assert!(
        common::stderr(&out).contains(
            "--missing delete: 2 people in the state that this run's inputs did not have were \
             last met by another job"
        ),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn the_replay_command_keeps_the_state_and_a_failures_file_cannot_sweep() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "n4.csv", "id,age\n1,30\n2,forty\n3,50\n4,60\n");
    let out = server
        .cmd(dir.path())
        .args(["n4.csv", "--state", "n4.db", "--type", "age=number"])
        .args(DELETE_MISSING)
        .output()
        .unwrap();
    let stderr = common::stderr(&out);
    let replay = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("fix and replay: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(replay.contains("--state n4.db"), "{replay}");
    assert!(!replay.contains("--missing"), "{replay}");

    // Given --missing anyway, the failures file (one person of four) is refused.
    let before = server.sent().len();
    let swept = server
        .cmd(dir.path())
        .args([
            "n4.failures.ndjson",
            "--state",
            "n4.db",
            "--type",
            "age=number",
        ])
        .args(DELETE_MISSING)
        .output()
        .unwrap();
    assert_eq!(swept.status.code(), Some(2), "{}", common::stderr(&swept));
    assert!(
        common::stderr(&swept).contains(
            "--missing delete removes the people a full export no longer has, and \
             n4.failures.ndjson is a failures file"
        ),
        "{}",
        common::stderr(&swept)
    );
    assert_eq!(server.sent().len(), before, "nothing sent");
    assert_eq!(server.sandbox.people_count(), 3);
}
