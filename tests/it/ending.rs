//! How a run ends, as a nightly job sees it: closed stdout and stderr, each signal and its
//! exit code, a second signal, the stop's wait for a server that never answers, usage errors
//! for absurd numbers, an endless line, and the last line saying what to run next.
#![cfg(unix)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cio_import::exit::Exit;
use common::{API_KEY, Reply, SITE_ID, Scripted, Server, write};
use serde_json::Value;

const N: usize = 300;

fn people_csv(dir: &Path) {
    let rows: String = (0..N).map(|i| format!("{i},p{i}\n")).collect();
    write(dir, "users.csv", &format!("id,plan\n{rows}"));
}

/// The binary importing `inputs` in `dir` into `endpoint`, one record a request, at `rate`.
fn importing(dir: &Path, endpoint: &str, rate: u32, args: &[&str]) -> Command {
    let mut c = common::killable(dir, endpoint);
    c.args(args)
        .args(["--rate", &rate.to_string(), "--batch", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// A run in the background, its stderr gathered line by line as it comes.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reading: std::thread::JoinHandle<()>,
}

impl Running {
    fn start(mut command: Command) -> Running {
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let gathered = lines.clone();
        let reading = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                gathered.lock().unwrap().push(line);
            }
        });
        Running {
            child,
            lines,
            reading,
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits until stderr has a line holding `text`.
    fn wait_for_line(&self, text: &str) {
        until(&format!("a line with {text:?}"), || {
            self.stderr().contains(text)
        });
    }

    /// Its end, within 60 s: how it exited and its stderr.
    fn wait(mut self) -> (ExitStatus, String) {
        let Some(status) = within_a_minute(|| self.child.try_wait().unwrap()) else {
            self.child.kill().unwrap();
            panic!("the run did not end in 60 s:\n{}", self.stderr());
        };
        let stderr = {
            self.reading.join().unwrap();
            self.lines.lock().unwrap().join("\n")
        };
        (status, stderr)
    }
}

/// What `ready` gives, polled until it gives something, for 60 s at most.
fn within_a_minute<T>(mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(value) = ready() {
            return Some(value);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Waits up to 60 s for `done`.
fn until(what: &str, done: impl Fn() -> bool) {
    let done = within_a_minute(|| done().then_some(()));
    assert!(done.is_some(), "no {what} within 60 s");
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

fn last_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or_default()
}

#[test]
fn closed_stdout_and_stderr_never_stop_the_import() {
    // With the lines of stderr read before its reader leaves.
    for (extra, read) in [
        (&["-v", "--summary", "-"][..], 3),
        (&["-vv", "--progress", "always", "--summary", "-"], 3),
        (&["--progress", "always", "--summary", "summary.json"], 0),
    ] {
        let server = Server::plain();
        let dir = tempfile::tempdir().unwrap();
        people_csv(dir.path());
        let mut child = importing(dir.path(), &server.sandbox.base_url(), 1000, extra)
            .arg("users.csv")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // A reader of stdout that is gone at once, and one of stderr that leaves after a
        // few lines, as `2>&1 | head -3` does.
        drop(child.stdout.take());
        let stderr = BufReader::new(child.stderr.take().unwrap());
        assert_eq!(stderr.lines().take(read).count(), read, "{extra:?}");
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{extra:?}");
        assert_eq!(server.sandbox.people_count(), N, "{extra:?}");
        if extra.contains(&"summary.json") {
            let summary = json(&dir.path().join("summary.json"));
            assert_eq!(summary["accepted"], N, "{summary}");
            assert_eq!(summary["exit_code"], 0, "{summary}");
        }
    }
}

#[test]
fn completions_man_and_help_to_a_closed_stdout_end_with_0() {
    for args in [
        &["--completions", "bash"][..],
        &["--completions", "zsh"],
        &["--completions", "fish"],
        &["--completions", "powershell"],
        &["--completions", "elvish"],
        &["--man"],
        &["--help"],
        &["--version"],
    ] {
        // A pipe whose reader is gone before anything is written.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_cio-import"))
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

#[test]
fn each_signal_stops_the_run_with_its_own_code_and_the_last_line_says_how_to_carry_on() {
    for (signal, name, code) in [
        (libc::SIGINT, "SIGINT", 130),
        (libc::SIGTERM, "SIGTERM", 143),
        (libc::SIGHUP, "SIGHUP", 129),
    ] {
        let server = Server::slow();
        let url = server.sandbox.base_url();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        people_csv(d);
        let run = Running::start(importing(
            d,
            &url,
            100,
            &["users.csv", "--summary", "summary.json"],
        ));
        until("record stored", || server.sandbox.people_count() >= 30);
        run.signal(signal);
        let (status, stderr) = run.wait();
        assert_eq!(status.code(), Some(code), "{name}: {stderr}");
        assert!(stderr.contains(&format!("{name}: stopping")), "{stderr}");
        assert_eq!(
            last_line(&stderr),
            format!(
                "cio-import: to carry on: cio-import users.csv --site-id {SITE_ID} --endpoint \
                 {url} --rate 100 --batch 1 --summary summary.json --progress never --resume"
            ),
            "{name}: {stderr}"
        );
        let summary = json(&d.join("summary.json"));
        assert_eq!(summary["exit_code"], code, "{summary}");
        assert_eq!(summary["checkpoint_path"], "users.checkpoint.json");
        let accepted = summary["accepted"].as_u64().unwrap();
        assert!((30..N as u64).contains(&accepted), "{summary}");
        let checkpoint = json(&d.join("users.checkpoint.json"));
        assert_eq!(checkpoint["settled"]["accepted"], accepted, "{checkpoint}");

        let out = importing(d, &url, 1000, &["users.csv", "--resume"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}, resumed: {stderr}");
        assert_eq!(server.sandbox.people_count(), N);
        // A clean stop settles what was in flight: nothing was sent twice.
        let sent = server.sandbox.requests();
        assert_eq!(sent.iter().filter(|r| r.method == "PUT").count(), N);
    }
}

#[test]
fn an_ssh_session_that_drops_stops_the_run_as_sighup_does() {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let server = Server::slow();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    people_csv(d);
    let pty = native_pty_system().openpty(PtySize::default()).unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_cio-import"));
    cmd.cwd(d);
    cmd.env("CUSTOMERIO_SITE_ID", SITE_ID);
    cmd.env("CUSTOMERIO_TRACK_API_KEY", API_KEY);
    cmd.args(["users.csv", "--endpoint", &server.sandbox.base_url()]);
    cmd.args(["--rate", "100", "--batch", "1", "--summary", "summary.json"]);
    let mut child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);
    until("record stored", || server.sandbox.people_count() >= 30);
    // The terminal goes: the kernel hangs up on the process, and its stderr is gone.
    drop(pty.master);
    let status = within_a_minute(|| child.try_wait().unwrap()).expect("the run did not end");
    let summary = json(&d.join("summary.json"));
    assert_eq!(status.exit_code(), 129, "{summary}");
    assert_eq!(summary["exit_code"], 129, "{summary}");
    assert!(d.join("users.checkpoint.json").exists());
}

/// An import of users.csv in a new folder into a server that answers its first 20 requests
/// and then never again.
fn importing_into_a_server_that_hangs(extra: &[&str]) -> (Scripted, tempfile::TempDir, Running) {
    let server = Scripted::start(move |hit| {
        let delay = if hit.n < 20 { 0 } else { 3600 };
        Reply::status(200).after(Duration::from_secs(delay))
    });
    let dir = tempfile::tempdir().unwrap();
    people_csv(dir.path());
    let mut args = vec!["users.csv", "--no-preflight"];
    args.extend(extra);
    let run = Running::start(importing(dir.path(), &server.url(), 1000, &args));
    (server, dir, run)
}

#[test]
fn a_second_signal_kills_the_process_with_that_signal_and_the_checkpoint_stays_valid() {
    let (server, dir, run) = importing_into_a_server_that_hangs(&["--stop-timeout", "60"]);
    let d = dir.path();
    until("request in flight", || server.hits().len() > 20);
    run.signal(libc::SIGTERM);
    run.wait_for_line("SIGTERM: stopping");
    run.signal(libc::SIGINT);
    let (status, stderr) = run.wait();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}: {stderr}");
    assert!(
        stderr.contains("SIGINT again: quitting at once"),
        "{stderr}"
    );

    // What the checkpoint says was settled is not sent again, and the rest is.
    let checkpoint = json(&d.join("users.checkpoint.json"));
    let settled = checkpoint["settled"]["accepted"].as_u64().unwrap() as usize;
    assert!(settled <= 20, "{checkpoint}");
    let good = Server::plain();
    let out = importing(
        d,
        &good.sandbox.base_url(),
        1000,
        &["users.csv", "--resume", "--summary", "summary.json"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(good.sandbox.people_count(), N - settled);
    assert_eq!(json(&d.join("summary.json"))["accepted"], N);
}

#[test]
fn a_stop_waits_for_a_server_that_never_answers_only_the_stop_timeout() {
    // The default --timeout (30 s) and --stop-timeout (5 s).
    let (server, dir, run) = importing_into_a_server_that_hangs(&["--summary", "summary.json"]);
    let d = dir.path();
    // The 20 answered, and the 10 in flight (--concurrency) that never will be.
    until("request in flight", || server.hits().len() == 30);
    let stopped = Instant::now();
    run.signal(libc::SIGTERM);
    let (status, stderr) = run.wait();
    let took = stopped.elapsed();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(20),
        "stopped in {took:?}"
    );
    assert!(
        stderr.contains("10 requests still unanswered after 5s (--stop-timeout)"),
        "{stderr}"
    );
    assert_eq!(server.hits().len(), 30, "nothing was sent after the stop");
    let summary = json(&d.join("summary.json"));
    assert_eq!(summary["accepted"], 20, "{summary}");
    let records = summary["records"].as_u64().unwrap();
    assert_eq!(summary["unsent"], records - 20, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    let checkpoint = json(&d.join("users.checkpoint.json"));
    assert_eq!(checkpoint["settled"]["accepted"], 20, "{checkpoint}");
    assert!(!d.join("users.failures.ndjson").exists());

    let good = Server::plain();
    let out = importing(
        d,
        &good.sandbox.base_url(),
        1000,
        &["users.csv", "--resume"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(good.sandbox.people_count(), N - 20);
}

#[test]
fn a_signal_during_the_credentials_check_stops_the_run_at_once() {
    let server = Scripted::start(|_| Reply::status(200).after(Duration::from_secs(3600)));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    people_csv(d);
    write(d, "users.failures.ndjson", "{\"id\":\"earlier\"}\n");
    let run = Running::start(importing(d, &server.url(), 1000, &["users.csv"]));
    until("credentials check", || server.hits().len() == 1);
    let stopped = Instant::now();
    run.signal(libc::SIGTERM);
    let (status, stderr) = run.wait();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stopped.elapsed() < Duration::from_secs(10), "{stderr}");
    assert_eq!(
        last_line(&stderr),
        "cio-import: error: SIGTERM: stopped during the setup, before the first record; \
         nothing was sent: run the same command again"
    );
    assert_eq!(server.hits()[0].path, "/api/v1/accounts/region");
    assert_eq!(server.hits().len(), 1);
    // The earlier run's failures file was not moved aside, and no checkpoint was begun.
    assert!(d.join("users.failures.ndjson").exists());
    assert!(!d.join("users.checkpoint.json").exists());
}

#[test]
fn a_signal_ignored_when_the_run_started_stays_ignored() {
    let server = Server::slow();
    let dir = tempfile::tempdir().unwrap();
    people_csv(dir.path());
    let mut command = importing(dir.path(), &server.sandbox.base_url(), 100, &["users.csv"]);
    // SAFETY: signal(2) between fork and exec, as `nohup` does.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        })
    };
    let run = Running::start(command);
    until("record stored", || server.sandbox.people_count() >= 30);
    run.signal(libc::SIGHUP);
    let (status, stderr) = run.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(server.sandbox.people_count(), N);
}

#[test]
fn absurd_numbers_are_usage_errors_before_any_file_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    people_csv(d);
    write(d, "users.failures.ndjson", "{\"id\":\"earlier\"}\n");
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    for (flag, value) in [
        ("--rate", "1e-20"),
        ("--rate", "1e300"),
        ("--rate", "NaN"),
        ("--rate", "inf"),
        ("--burst", "0"),
        ("--burst", "4294967295"),
        ("--concurrency", "0"),
        ("--batch", "1001"),
        ("--timeout", "1e-9"),
        ("--timeout", "1e12"),
        ("--max-retries", "4294967295"),
        ("--max-retry-after", "0"),
        ("--max-retry-after", "1e300"),
        ("--max-consecutive-failures", "0"),
        ("--stop-timeout", "1e9"),
        ("--stop-timeout", "NaN"),
        ("--sandbox-limit", "4294967295"),
        ("--sandbox-fail-rate", "1.5"),
        ("--sandbox-drop-rate", "NaN"),
        ("--sandbox-stall-rate", "2"),
        ("--sandbox-latency", "18446744073709551615"),
    ] {
        let out = common::bin(d)
            .args(["users.csv", "--sandbox", "--progress", "never", flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.starts_with(&format!("cio-import: error: {flag} must be from ")),
            "{flag} {value}: {stderr}"
        );
        assert_eq!(listing(), before, "{flag} {value}");
    }
    let earlier = std::fs::read_to_string(d.join("users.failures.ndjson")).unwrap();
    assert_eq!(earlier, "{\"id\":\"earlier\"}\n");
    let out = common::bin(d)
        .args(["users.csv", "--dry-run", "--rate", "1e-20"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cio-import: error: --rate must be from 0.01 to 100000 requests per second, got 1e-20\n"
    );
}

#[test]
fn an_endless_ndjson_line_stops_at_the_first_signal() {
    // A file of a terabyte of zeros (sparse: it takes no room), which is one line.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let huge = std::fs::File::create(d.join("huge.ndjson")).unwrap();
    huge.set_len(1 << 40).unwrap();
    drop(huge);
    for args in [
        &["huge.ndjson", "--dry-run"][..],
        &["/dev/zero", "--format", "ndjson", "--sandbox"],
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cio-import"));
        command
            .current_dir(d)
            .args(args)
            .args(["--progress", "never"])
            .stderr(Stdio::piped());
        let run = Running::start(command);
        std::thread::sleep(Duration::from_millis(1000));
        let stopped = Instant::now();
        run.signal(libc::SIGINT);
        let (status, stderr) = run.wait();
        assert_eq!(status.code(), Some(130), "{args:?}: {stderr}");
        // The reader saw the stop itself: nothing had to give up waiting for it.
        assert!(stopped.elapsed() < Duration::from_secs(10), "{args:?}");
        assert!(!stderr.contains("stopped waiting"), "{args:?}: {stderr}");
        assert!(stderr.contains("0 records in "), "{args:?}: {stderr}");
    }
}

#[test]
fn a_stopped_stdin_run_says_it_cannot_be_resumed_and_what_to_do_instead() {
    let server = Server::slow();
    let dir = tempfile::tempdir().unwrap();
    let mut command = importing(
        dir.path(),
        &server.sandbox.base_url(),
        100,
        &["-", "--format", "csv"],
    );
    let mut child = command.stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"id,plan\n1,a\n2,b\n3,c\n").unwrap();
    until("record stored", || server.sandbox.people_count() == 3);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(
        last_line(&stderr),
        "cio-import: stdin cannot be resumed (a stream is read once): to carry on, run the \
         same command again with the whole input; what was sent already is sent again \
         harmlessly (identifies are idempotent, events keep their ids)"
    );
}

#[test]
fn a_run_with_failures_tells_failed_from_invalid_and_where_each_went() {
    let server = Scripted::start(|hit| match hit.id() {
        Some("r1" | "r2") => Reply::status(400),
        _ => Reply::status(200),
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "users.csv", "id,plan\n1,a\nr1,b\n,c\n2,d\nr2,e\n");
    let out = importing(
        d,
        &server.url(),
        1000,
        &["users.csv", "--no-preflight", "--summary", "summary.json"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(Exit::Partial.code().into()),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "\n  failures: users.failures.ndjson: 2 failed (sent and refused: _error.stage \
             \"send\"), 1 invalid (never sent: _error.stage \"invalid\")\n"
        ),
        "{stderr}"
    );
    assert_eq!(
        last_line(&stderr),
        format!(
            "  fix and replay: cio-import users.failures.ndjson --site-id {SITE_ID} --endpoint {} \
             --no-preflight",
            server.url()
        )
    );
    let lines = common::read_ndjson(&d.join("users.failures.ndjson"));
    let stages: Vec<&str> = lines
        .iter()
        .map(|l| l["_error"]["stage"].as_str().unwrap())
        .collect();
    let count = |stage: &str| stages.iter().filter(|s| **s == stage).count();
    assert_eq!((count("send"), count("invalid")), (2, 1), "{lines:?}");
    let summary = json(&d.join("summary.json"));
    assert_eq!(
        (&summary["failed"], &summary["invalid"]),
        (&2.into(), &1.into())
    );
}

#[test]
fn a_fatal_error_with_the_checkpoint_kept_ends_with_the_command_that_carries_on() {
    let refuse = Arc::new(AtomicBool::new(true));
    let refusing = refuse.clone();
    let server = Scripted::start(move |hit| {
        if hit.n >= 20 && refusing.load(Ordering::SeqCst) {
            Reply::status(401)
        } else {
            Reply::status(200)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    people_csv(d);
    std::fs::create_dir(d.join("out")).unwrap();
    let files = ["--failures", "out/f.ndjson", "--checkpoint", "out/cp.json"];
    let mut args = vec!["users.csv", "--no-preflight", "--type", "plan=string"];
    args.extend(files);
    let out = importing(d, &server.url(), 1000, &args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let mut lines = stderr.lines().rev();
    let next = lines.next().unwrap();
    let command = format!(
        "cio-import users.csv --type plan=string --site-id {SITE_ID} --endpoint {} \
         --no-preflight --failures out/f.ndjson --checkpoint out/cp.json --rate 1000 --batch 1 \
         --progress never --resume",
        server.url()
    );
    assert_eq!(
        next,
        format!("cio-import: to carry on: {command}"),
        "{stderr}"
    );
    assert!(
        lines.next().unwrap().starts_with("cio-import: error: "),
        "the error comes just before: {stderr}"
    );

    // Run exactly what it said.
    let first_run = server.hits().len();
    refuse.store(false, Ordering::SeqCst);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_cio-import"))
        .parent()
        .unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .args(["-c", &command])
        .current_dir(d)
        .env("PATH", path)
        .env("CUSTOMERIO_TRACK_API_KEY", API_KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Every person was accepted: the first 20, then the resumed rest.
    let hits = server.hits();
    let mut accepted: Vec<&str> = (hits[..20].iter().chain(&hits[first_run..]))
        .filter_map(|h| h.id())
        .collect();
    accepted.sort();
    accepted.dedup();
    assert_eq!(accepted.len(), N, "{stderr}");
    assert!(!d.join("out/cp.json").exists(), "{stderr}");
}

#[test]
fn the_readme_lists_every_exit_code_as_the_help_does() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Exit codes")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    let rows: Vec<String> = section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| code") && !l.starts_with("| ---"))
        .map(|l| l.replace('`', ""))
        .collect();
    let table: Vec<String> = Exit::ALL
        .iter()
        .map(|e| format!("| {} | {} |", e.code(), e.meaning()))
        .collect();
    assert_eq!(rows, table);
}
