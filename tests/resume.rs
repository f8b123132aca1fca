//! Nothing lost: kill -9 and Ctrl-C midway, then --resume; a changed input is refused.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cio_import::sandbox::SandboxOptions;
use common::{API_KEY, SITE_ID, Server, write};

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
    spawn_inputs(server, dir, &["users.csv"], extra)
}

fn spawn_inputs(server: &Server, dir: &std::path::Path, inputs: &[&str], extra: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("cio-import"))
        .current_dir(dir)
        .env("CUSTOMERIO_SITE_ID", SITE_ID)
        .env("CUSTOMERIO_TRACK_API_KEY", API_KEY)
        .args(inputs)
        .args(["--endpoint", &server.sandbox.base_url()])
        .args([
            "--rate",
            "100",
            "--concurrency",
            "10",
            "--progress",
            "never",
        ])
        .args(["--batch", "1"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
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

fn slow_server() -> Server {
    Server::start(SandboxOptions {
        limit: None,
        latency: Duration::from_millis(30),
        ..SandboxOptions::default()
    })
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
    let server = slow_server();
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
    let server = slow_server();
    let dir = tempfile::tempdir().unwrap();
    people_csv(dir.path());
    let child = spawn(&server, dir.path(), &[]);
    wait_until_accepted(&server, 50);
    let sent_at = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(sent_at.elapsed() < Duration::from_secs(10));
    assert!(stderr.contains("--resume"), "{stderr}");
    let accepted_first = identifies(&server);
    assert!(accepted_first < N, "the run finished before the signal");

    resume_to_the_end(&server, dir.path(), &[]);
    // A clean stop settles what was in flight: nothing is sent twice.
    assert_eq!(identifies(&server), N);
}

#[test]
fn a_stop_in_a_later_input_resumes_from_there() {
    let server = slow_server();
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
    let child = spawn_inputs(&server, dir.path(), &inputs, &[]);
    wait_until_accepted(&server, 150);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        identifies(&server) < N,
        "the run finished before the signal"
    );

    // Stopped again at once, the resumed run still moves the checkpoint on from where it was.
    let child = spawn_inputs(&server, dir.path(), &inputs, &["--resume"]);
    let before = identifies(&server);
    wait_until_accepted(&server, before + 20);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = spawn_inputs(&server, dir.path(), &inputs, &["--resume"])
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
fn resume_refuses_an_input_that_changed_and_stdin() {
    let server = slow_server();
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
