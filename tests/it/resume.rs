//! Nothing lost: kill -9 and Ctrl-C midway, then --resume; a changed input is refused.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Reply, Scripted, Server, write};

const N: usize = 300;

fn people_csv(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = String::from("id,plan\n");
    for i in 0..N {
        text.push_str(&format!("{i},p{i}\n"));
    }
    write(dir, "users.csv", &text)
}

/// The binary importing users.csv in the background against `server` at 100 requests/s.
fn spawn(server: &Server, dir: &std::path::Path, extra: &[&str]) -> Child {
    spawn_inputs(&server.sandbox.base_url(), dir, &["users.csv"], extra)
}

fn spawn_inputs(endpoint: &str, dir: &std::path::Path, inputs: &[&str], extra: &[&str]) -> Child {
    importing(endpoint, dir, inputs, extra).spawn().unwrap()
}

/// The command [`spawn_inputs`] runs, before it starts.
fn importing(endpoint: &str, dir: &std::path::Path, inputs: &[&str], extra: &[&str]) -> Command {
    let mut command = common::killable(dir, endpoint);
    command
        .args(inputs)
        .args(["--rate", "100", "--concurrency", "10", "--batch", "1"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Ctrl-C for `child`, which must stop with exit code 130; its stderr.
fn interrupt(child: Child) -> String {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    stderr
}

/// Identifies the server accepted, one a request or many in a batch.
fn identifies(server: &Server) -> usize {
    server
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.status == Some(200))
        .map(|r| match (r.method.as_str(), &r.body) {
            ("PUT", _) => 1,
            ("POST", Some(body)) => body["batch"].as_array().map_or(0, Vec::len),
            _ => 0,
        })
        .sum()
}

/// Runs `--resume` (after `extra`) to its end: exit 0 and every person stored.
fn resume_to_the_end(server: &Server, dir: &std::path::Path, extra: &[&str]) {
    let args: Vec<&str> = extra.iter().copied().chain(["--resume"]).collect();
    let out = spawn(server, dir, &args).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(server.sandbox.people_count(), N);
}

fn wait_until_accepted(server: &Server, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while identifies(server) < at_least {
        assert!(Instant::now() < deadline, "the import made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn after_kill_9_resume_accepts_everything_and_resends_at_most_what_was_in_flight() {
    kill_9_then_resume(&[], 10 + 40 + 10);
}

#[test]
fn after_kill_9_resume_works_with_batches() {
    // In flight: 10 requests of 2; queued: 40 records; 100 ms of settling at 100 requests/s.
    kill_9_then_resume(&["--batch", "2"], 10 * 2 + 40 + 10 * 2);
}

fn kill_9_then_resume(extra: &[&str], most_resent: usize) {
    let server = Server::slow();
    let dir = tempfile::tempdir().unwrap();
    people_csv(dir.path());
    let mut child = spawn(&server, dir.path(), extra);
    wait_until_accepted(&server, 100);
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert!(dir.path().join("users.checkpoint.json").exists());

    resume_to_the_end(&server, dir.path(), extra);
    for i in [0, N / 2, N - 1] {
        assert_eq!(
            server.sandbox.person(&i.to_string()).unwrap()["plan"],
            format!("p{i}")
        );
    }
    // Re-sent at most: the records in flight, the queue, and what settled in the
    // checkpoint interval.
    let resent = identifies(&server) - N;
    assert!(resent <= most_resent, "{resent} records were sent twice");
    assert!(!dir.path().join("users.checkpoint.json").exists());
}

#[test]
fn sigint_stops_within_seconds_with_130_and_resume_finishes() {
    let server = Server::slow();
    let dir = tempfile::tempdir().unwrap();
    people_csv(dir.path());
    let child = spawn(&server, dir.path(), &[]);
    wait_until_accepted(&server, 50);
    let sent_at = Instant::now();
    let stderr = interrupt(child);
    assert!(sent_at.elapsed() < Duration::from_secs(10));
    assert!(stderr.contains("--resume"), "{stderr}");
    let accepted_first = identifies(&server);
    assert!(accepted_first < N, "the run finished before the signal");

    resume_to_the_end(&server, dir.path(), &["--summary", "summary.json"]);
    // A clean stop settles what was in flight: nothing is sent twice.
    assert_eq!(identifies(&server), N);
    // The summary counts the whole run's requests, the stopped part's too.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    let received = server.sandbox.requests();
    let people = received
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/customers/"));
    assert_eq!(summary["requests"], people.count() as u64, "{summary}");
    // Its rate is of the part it ran: under the --rate of 100 it ran at.
    assert!(
        summary["accepted_per_s"].as_f64().unwrap() <= 101.0,
        "{summary}"
    );
}

#[test]
fn a_stop_in_a_later_input_resumes_from_there() {
    let server = Server::slow();
    let dir = tempfile::tempdir().unwrap();
    let part = |range: std::ops::Range<usize>| {
        let mut text = String::from("id,plan\n");
        for i in range {
            text.push_str(&format!("{i},p{i}\n"));
        }
        text
    };
    write(dir.path(), "a.csv", &part(0..100));
    write(dir.path(), "b.csv", &part(100..N));
    let inputs = ["a.csv", "b.csv"];
    let child = spawn_inputs(&server.sandbox.base_url(), dir.path(), &inputs, &[]);
    wait_until_accepted(&server, 150);
    interrupt(child);
    assert!(
        identifies(&server) < N,
        "the run finished before the signal"
    );

    // Stopped again at once, the resumed run still moves the checkpoint on from where it was.
    let child = spawn_inputs(
        &server.sandbox.base_url(),
        dir.path(),
        &inputs,
        &["--resume"],
    );
    let before = identifies(&server);
    wait_until_accepted(&server, before + 20);
    interrupt(child);

    let out = spawn_inputs(
        &server.sandbox.base_url(),
        dir.path(),
        &inputs,
        &["--resume"],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.sandbox.people_count(), N);
    // Clean stops settle what was in flight: nothing is sent twice.
    assert_eq!(identifies(&server), N);
}

#[test]
fn records_settled_past_a_waiting_one_are_not_sent_or_written_again_on_resume() {
    // The first answer for "slow" takes 3 s, so its second row waits (a person's rows go in
    // order) while every later row is settled: accepted, or invalid (line 10 has no id).
    let server = Scripted::start(|hit| {
        if hit.id() == Some("slow") && hit.earlier == 0 {
            Reply::status(200).after(Duration::from_secs(3))
        } else {
            Reply::status(200)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,plan\nslow,a\nslow,b\n");
    for i in 0..40 {
        let id = if i == 6 { String::new() } else { i.to_string() };
        text.push_str(&format!("{id},p{i}\n"));
    }
    write(dir.path(), "users.csv", &text);
    let sent = |id: &str| server.hits().iter().filter(|h| h.id() == Some(id)).count();
    let run = |extra: &[&str]| {
        let args: Vec<&str> = ["--no-preflight"].iter().chain(extra).copied().collect();
        spawn_inputs(&server.url(), dir.path(), &["users.csv"], &args)
    };
    let child = run(&[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..40)
        .filter(|i| *i != 6)
        .any(|i| sent(&i.to_string()) == 0)
    {
        assert!(Instant::now() < deadline, "the import made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(child);
    assert_eq!(sent("slow"), 1, "the second row for slow waited");

    let out = run(&["--resume"]).wait_with_output().unwrap();
    // The summary and exit code are the whole run's: the invalid row of the part before
    // the stop is still one of its records.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("42 records in ") && stderr.contains(": 41 accepted, 0 failed, 1 invalid"),
        "{stderr}"
    );
    assert_eq!(sent("slow"), 2);
    for i in (0..40).filter(|i| *i != 6) {
        assert_eq!(sent(&i.to_string()), 1, "person {i} was sent again");
    }
    let failures = std::fs::read_to_string(dir.path().join("users.failures.ndjson")).unwrap();
    assert_eq!(failures.lines().count(), 1, "{failures}");
}

#[test]
fn a_stop_does_not_wait_for_stdin_that_has_nothing_more_to_say() {
    let server = Server::slow();
    let dir = tempfile::tempdir().unwrap();
    let mut child = importing(
        &server.sandbox.base_url(),
        dir.path(),
        &["-"],
        &["--format", "csv"],
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    // A producer that sends three rows and then waits, its end of the pipe still open.
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"id,plan\n1,a\n2,b\n3,c\n").unwrap();
    wait_until_accepted(&server, 3);
    // Closed after 15 s, so a run that waits for it fails the test rather than hanging it.
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(15));
        drop(stdin);
    });
    let stopped_at = Instant::now();
    let stderr = interrupt(child);
    assert!(stopped_at.elapsed() < Duration::from_secs(10), "{stderr}");
    assert!(stderr.contains("stopped waiting for stdin"), "{stderr}");
}

#[test]
fn resume_refuses_an_input_that_changed_and_stdin() {
    let server = Server::slow();
    let dir = tempfile::tempdir().unwrap();
    let input = people_csv(dir.path());
    let mut child = spawn(&server, dir.path(), &[]);
    wait_until_accepted(&server, 20);
    child.kill().unwrap();
    child.wait().unwrap();

    std::fs::write(&input, "id,plan\n1,changed\n").unwrap();
    let out = spawn(&server, dir.path(), &["--resume"])
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("changed since the checkpoint"), "{stderr}");

    common::bin(dir.path())
        .args(["-", "--format", "csv", "--resume"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("stdin"));
}

#[test]
fn a_resumed_summary_says_its_recent_events_are_of_the_part_it_read() {
    let server = Server::slow();
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,name\n");
    for i in 0..N {
        text.push_str(&format!("{i},untimed\n"));
    }
    write(dir.path(), "events.csv", &text);
    let endpoint = server.sandbox.base_url();
    let event = ["--action", "event"];
    let child = spawn_inputs(&endpoint, dir.path(), &["events.csv"], &event);
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.sandbox.events().len() < 50 {
        assert!(Instant::now() < deadline, "the import made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(child);
    let resumed = importing(&endpoint, dir.path(), &["events.csv"], &event)
        .arg("--resume")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "events (of the records this --resume read) were from the last 72 hours or \
             without a time"
        ),
        "{stderr}"
    );
}

#[test]
fn a_resume_does_not_tell_the_first_lines_warnings_again_of_a_line_further_on() {
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..N {
        text.push_str(&format!(
            "{{\"id\":\"{i}\",\"Email\":\"p{i}@example.com\"}}\n"
        ));
    }
    write(dir.path(), "people.ndjson", &text);
    let endpoint = server.sandbox.base_url();
    let child = spawn_inputs(&endpoint, dir.path(), &["people.ndjson"], &[]);
    wait_until_accepted(&server, 50);
    let first = interrupt(child);
    let told = "people.ndjson: key \"Email\" is sent as a custom attribute";
    assert_eq!(first.matches(told).count(), 1, "{first}");
    let resumed = importing(&endpoint, dir.path(), &["people.ndjson"], &[])
        .arg("--resume")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    // The earlier run told it, of line 1; the resume starts further on and tells it not at
    // all (nor which flags went unused).
    assert!(!stderr.contains("key \"Email\""), "{stderr}");
    assert_eq!(server.sandbox.people_count(), N);
}
