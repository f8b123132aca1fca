//! Pacing (issue 'backbone'): `--rate 50 --batch 1` over 1,000 requests to a sandbox answering after
//! 80 ms with no limit. Prints the achieved rate, from the sandbox's arrival times, and the
//! most requests in any sliding second. About 25 s.

mod common;

use std::time::Duration;

use cio_import::sandbox::SandboxOptions;
use common::{Server, field, measure, report, write_people};

const REQUESTS: u64 = 1_000;
const RATE: f64 = 50.0;

fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let input = dir.path().join("people.csv");
    write_people(&input, REQUESTS);
    let server = Server::start(SandboxOptions {
        limit: None,
        latency: Duration::from_millis(80),
        keep_requests: true,
        ..SandboxOptions::default()
    });
    let run = measure(
        server
            .cmd()
            .current_dir(dir.path())
            // One v1 request per record, so records count requests.
            .args(["--rate", &RATE.to_string(), "--batch", "1"])
            .arg(&input),
    );
    let summary = run.summary();
    assert!(run.status.success(), "the import failed: {summary}");
    assert_eq!(field(&summary, "accepted"), REQUESTS);

    // The records' requests, without the credentials check before them.
    let arrivals: Vec<Duration> = server
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/customers/"))
        .map(|r| r.at)
        .collect();
    assert_eq!(arrivals.len() as u64, REQUESTS);
    let n = arrivals.len();
    let span = (arrivals[n - 1] - arrivals[0]).as_secs_f64();
    // n arrivals span n-1 intervals.
    let achieved = (n - 1) as f64 / span;
    let max_window = server.sandbox.stats().max_in_any_window;

    println!(
        "pacing: --rate {RATE} --batch 1 --concurrency 10 (default), {n} requests, sandbox latency 80 ms, no limit; run took {:.1} s",
        run.wall.as_secs_f64()
    );
    report(
        "achieved request rate (first..last arrival)",
        format!("{achieved:.2}/s ({:.1}%)", 100.0 * achieved / RATE),
        ">= 49.5/s (99%)",
        achieved >= 0.99 * RATE,
    );
    report(
        "most requests in any sliding 1 s window",
        max_window.to_string(),
        "<= 51",
        max_window <= 51,
    );
    println!(
        "  comparison: customerio-rate-limits guide: sequential 12 req/s at 80 ms; \
         p-queue 60 in one second at a cap of 50"
    );
}
