//! Nothing lost, even when killed: runs stopped with SIGKILL at moments drawn from a seeded
//! sequence (one record a request and in batches, resumes killed too), then `--resume` to
//! the end: every valid record accepted, every invalid row once in the failures file, and no
//! more sent twice than can have been in flight or settled since the last checkpoint.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cio_import::sandbox::SandboxOptions;
use common::{Server, accepted, summary, timed, write};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde_json::Value;

const ROWS: u64 = 300;

/// Kills per import, the first of the fresh run and the rest of resumes: 20 in all.
const KILLS: [usize; 8] = [3, 2, 3, 2, 3, 2, 3, 2];

const CONCURRENCY: u64 = 4;

/// Records a second either way: one a request at 200 requests/s, or five at 40.
const RECORDS_PER_SECOND: u64 = 200;

/// How old the last checkpoint saved can be at a kill: its 100 ms interval, the time the save
/// takes (it syncs the failures file, then writes and syncs the checkpoint and renames it),
/// and the delays of 2 busy cores.
const STALE: Duration = Duration::from_millis(300);

/// Whether row `i` is invalid: a number column that is not one, or a cell too many.
fn invalid(i: u64) -> bool {
    i % 11 == 5 || i % 37 == 20
}

fn users_csv(dir: &Path) {
    let mut text = String::from("id,plan,age\n");
    for i in 0..ROWS {
        text.push_str(&match i {
            _ if i % 11 == 5 => format!("{i},p{i},old\n"),
            _ if i % 37 == 20 => format!("{i},p{i},1,extra\n"),
            _ => format!("{i},p{i},{i}\n"),
        });
    }
    write(dir, "users.csv", &text);
}

fn import(server: &Server, dir: &Path, batch: u64, resume: bool) -> Command {
    let rate = RECORDS_PER_SECOND / batch;
    let mut command = common::killable(dir, &server.sandbox.base_url());
    command
        .arg("users.csv")
        .args(["--type", "age=number"])
        .args(["--rate", &rate.to_string()])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .args(["--batch", &batch.to_string(), "--summary", "-"])
        .args(resume.then_some("--resume"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Kills `child` once the server holds `people` people; what it printed if it ended first.
fn kill_at(mut child: Child, server: &Server, people: usize) -> Option<Output> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.sandbox.people_count() < people {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        assert!(Instant::now() < deadline, "the import made no progress");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    None
}

/// A run that went to the end: exit 3 (the invalid rows), and the whole import's counts.
fn ended(out: &Output, valid: usize, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{what}: {stderr}");
    let summary = summary(out);
    assert_eq!(summary["records"], ROWS, "{what}: {summary}");
    assert_eq!(summary["accepted"], valid, "{what}: {summary}");
    assert_eq!(summary["invalid"], ROWS - valid as u64, "{what}: {summary}");
}

#[test]
fn killed_at_random_moments_and_resumed_nothing_is_lost_or_written_twice() {
    // Its bound on records sent twice counts the requests paced into `STALE`.
    let _timed = timed();
    let valid = (0..ROWS).filter(|&i| !invalid(i)).count();
    let mut rng = StdRng::seed_from_u64(0x6b696c6c);
    for (import_no, &kills) in KILLS.iter().enumerate() {
        let batch = if import_no % 2 == 0 { 1 } else { 5 };
        let server = Server::start(SandboxOptions {
            limit: None,
            latency: Duration::from_millis(20),
            ..SandboxOptions::default()
        });
        let dir = tempfile::tempdir().unwrap();
        users_csv(dir.path());
        let checkpoint = dir.path().join("users.checkpoint.json");
        let mut killed = 0;
        let mut last = None;
        for _ in 0..kills {
            // A kill before the first checkpoint is saved is before anything is sent.
            let resume = checkpoint.exists();
            let people = server.sandbox.people_count();
            let at = people + rng.random_range(0..=valid - people);
            let child = import(&server, dir.path(), batch, resume).spawn().unwrap();
            last = kill_at(child, &server, at);
            if last.is_some() {
                break;
            }
            killed += 1;
            if !checkpoint.exists() && server.sandbox.people_count() == valid {
                // Killed after it finished and removed its checkpoint: nothing to resume.
                break;
            }
        }
        let what = format!("import {import_no} (--batch {batch}, {killed} kills)");
        // Unless it ended, or was killed after it did, the import is finished by a resume (or
        // begun again, if it was killed before its checkpoint was first saved).
        if last.is_none() && (checkpoint.exists() || server.sandbox.people_count() < valid) {
            let resume = checkpoint.exists();
            last = Some(import(&server, dir.path(), batch, resume).output().unwrap());
        }
        if let Some(out) = &last {
            ended(out, valid, &what);
        }
        assert!(!checkpoint.exists(), "{what}");

        let times = accepted(&server, "identify");
        for i in 0..ROWS {
            let person = server.sandbox.person(&i.to_string());
            if invalid(i) {
                assert!(
                    person.is_none() && !times.contains_key(&i.to_string()),
                    "{what}: {i}"
                );
                continue;
            }
            let person = person.unwrap_or_else(|| panic!("{what}: person {i} is missing"));
            assert_eq!(person["plan"], format!("p{i}"), "{what}");
            assert_eq!(person["age"], i, "{what}");
        }

        // Each invalid row once, on a line of its own that reads back.
        let failures = std::fs::read_to_string(dir.path().join("users.failures.ndjson")).unwrap();
        let mut lines: BTreeMap<u64, usize> = BTreeMap::new();
        for line in failures.lines() {
            let failure: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{what}: {e}: a failures line is torn: {line:?}"));
            assert_eq!(failure["_error"]["stage"], "invalid", "{what}: {line}");
            *lines
                .entry(failure["_error"]["line"].as_u64().unwrap())
                .or_default() += 1;
        }
        let expected: BTreeMap<u64, usize> = (0..ROWS)
            .filter(|&i| invalid(i))
            .map(|i| (i + 2, 1))
            .collect();
        assert_eq!(lines, expected, "{what}: failures file lines (line: times)");

        // Sent twice, at most, per kill: what was in flight (the server stores a record
        // before it answers), and what settled since the last checkpoint saved: the requests
        // paced into `STALE`, one more at its edge.
        let twice: u64 = times.values().map(|n| n - 1).sum();
        let stale = RECORDS_PER_SECOND * STALE.as_millis() as u64 / 1000;
        let most = killed * (CONCURRENCY * batch + stale + batch);
        eprintln!("{what}: {twice} records sent again (at most {most})");
        assert!(
            twice <= most,
            "{what}: {twice} records sent again, more than {most}"
        );
    }
}
