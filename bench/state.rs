//! Incremental syncs (issue 19): the cost of `--state` on a first run, and a re-run of an
//! unchanged export. Generates 1M people in a temp dir and prints, beside the targets:
//!
//! (a) the first import into an unlimited sandbox in batches of 100, without and with
//!     `--state` (records/s; the state's size on disk);
//! (b) the re-run of the same file with the state: rows/s and the child's peak RSS, sending
//!     nothing.
//!
//! About two minutes on 2 cores (plus the release build). `STATE_ROWS=N` changes the size.

mod common;

use std::path::Path;
use std::process::Command;

use cio_import::sandbox::SandboxOptions;
use common::{Server, field, measure, report, write_people};

fn main() {
    let rows: u64 = std::env::var("STATE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("a temp dir");
    let input = dir.path().join("people.csv");
    let bytes = write_people(&input, rows);
    println!("generated {rows} rows, {:.1} MB", bytes as f64 / 1e6);

    let without = first_run(dir.path(), &input, rows, None);
    let state = dir.path().join("people.state.db");
    let with = first_run(dir.path(), &input, rows, Some(&state));
    let size = std::fs::metadata(&state).map_or(0, |m| m.len());
    println!(
        "(a) first run, --batch 100 into an unlimited sandbox: {without:.0} records/s without \
         --state, {with:.0} with ({:.0}%); the state: {:.1} MB",
        with / without * 100.0,
        size as f64 / 1e6
    );

    // (b) The same file again: every record unchanged, nothing sent.
    let server = unlimited();
    let run = measure(
        import(&server, dir.path(), &input)
            .args(["--state"])
            .arg(&state),
    );
    let summary = run.summary();
    assert!(run.status.success(), "the re-run failed: {summary}");
    assert_eq!(field(&summary, "unchanged"), rows, "{summary}");
    let requests = field(&summary, "requests");
    let per_s = rows as f64 / run.wall.as_secs_f64();
    println!(
        "(b) re-run of the unchanged file: {rows} rows in {:.2} s (child CPU {:.2} s)",
        run.wall.as_secs_f64(),
        run.cpu.as_secs_f64()
    );
    report(
        "re-run rows/s",
        format!("{per_s:.0}"),
        ">= 250,000",
        per_s >= 250_000.0,
    );
    report(
        "re-run requests sent",
        requests.to_string(),
        "0",
        requests == 0,
    );
    run.report_rss("re-run child peak RSS");
}

fn unlimited() -> Server {
    Server::start(SandboxOptions {
        limit: None,
        keep_requests: false,
        ..SandboxOptions::default()
    })
}

/// The import every part runs: unlimited pace, batches of 100.
fn import(server: &Server, dir: &Path, input: &Path) -> Command {
    let mut c = server.cmd();
    c.current_dir(dir)
        .args(["--rate", "100000", "--concurrency", "32", "--batch", "100"])
        .args(["--type", "score=number"])
        .arg(input);
    c
}

/// A first import (with `state`, a new one), into a new sandbox: records per second.
fn first_run(dir: &Path, input: &Path, rows: u64, state: Option<&Path>) -> f64 {
    let server = unlimited();
    let mut cmd = import(&server, dir, input);
    if let Some(state) = state {
        cmd.arg("--state").arg(state);
    }
    let run = measure(&mut cmd);
    let summary = run.summary();
    assert!(run.status.success(), "the import failed: {summary}");
    assert_eq!(field(&summary, "accepted"), rows, "{summary}");
    rows as f64 / run.wall.as_secs_f64()
}
