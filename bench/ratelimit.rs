//! Rate-limit discipline (issue 'rate-limit discipline'). Two scenarios, about 70 s in all:
//!
//! 1. `--rate 50 --batch 1` against a sandbox that admits 30 requests per sliding second and answers
//!    the rest 429 with Retry-After, over 1,500 records (about 50 s): goodput (accepted
//!    records per second) as a share of 30/s, and the share of requests answered 429.
//! 2. A misbehaving sandbox (10% 503s, 5% dropped connections, 2% stalls past `--timeout 2`),
//!    no limit, 500 records: every record must be accepted and the run must exit 0.
//!
//! `RATELIMIT_RECORDS=N` changes the first scenario's size.

mod common;

use std::time::Duration;

use cio_import::sandbox::SandboxOptions;
use common::{Server, field, measure, report, write_people};

const LIMIT: u32 = 30;
const RATE: &str = "50";

fn main() {
    let records: u64 = std::env::var("RATELIMIT_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_500);
    limited(records);
    misbehaving(500);
}

fn limited(records: u64) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let input = dir.path().join("people.csv");
    write_people(&input, records);
    let server = Server::start(SandboxOptions {
        limit: Some(LIMIT),
        retry_after: true,
        keep_requests: true,
        ..SandboxOptions::default()
    });
    let run = measure(
        server
            .cmd()
            .current_dir(dir.path())
            // One v1 request per record: the guide's figures are per request.
            .args(["--rate", RATE, "--batch", "1", "--no-preflight"])
            .arg(&input),
    );
    let summary = run.summary();
    let stats = server.sandbox.stats();
    let accepted = field(&summary, "accepted");
    let goodput = summary["accepted_per_s"].as_f64().expect("accepted_per_s");
    // The same from the server's side: accepted arrivals over the first..last arrival.
    let requests = server.sandbox.requests();
    let ok: Vec<Duration> = requests
        .iter()
        .filter(|r| r.status == Some(200))
        .map(|r| r.at)
        .collect();
    let span = (ok[ok.len() - 1] - requests[0].at).as_secs_f64();
    let server_goodput = (ok.len() - 1) as f64 / span;
    let share_429 = stats.rejected_429 as f64 / stats.requests as f64;

    println!(
        "rate limit: --rate {RATE} --batch 1 --concurrency 10 (default), {records} records, sandbox limit \
         {LIMIT}/s with Retry-After; run took {:.1} s, exit {}",
        run.wall.as_secs_f64(),
        run.status.code().unwrap_or(-1)
    );
    println!(
        "  {} requests, {} answered 429, {accepted} accepted; final pace {:.1}/s; \
         most in any second {}",
        stats.requests,
        stats.rejected_429,
        summary["final_rate"].as_f64().unwrap_or(f64::NAN),
        stats.max_in_any_window
    );
    report(
        "goodput (accepted/s over the run)",
        format!(
            "{goodput:.1}/s ({:.1}%)",
            100.0 * goodput / f64::from(LIMIT)
        ),
        ">= 90% of 30/s",
        goodput >= 0.9 * f64::from(LIMIT),
    );
    println!(
        "  {:<40} {:>16}   (server side: first arrival to last 200)",
        "goodput at the server",
        format!(
            "{server_goodput:.1}/s ({:.1}%)",
            100.0 * server_goodput / f64::from(LIMIT)
        ),
    );
    report(
        "requests answered 429",
        format!("{:.1}%", 100.0 * share_429),
        "<= 5%",
        share_429 <= 0.05,
    );
    report(
        "records accepted",
        format!("{accepted}/{records}"),
        "all",
        accepted == records,
    );
    println!(
        "  comparison: customerio-rate-limits guide: p-queue 74% goodput with 25% 429s; \
         sequential 54%"
    );
    // Goodput per 5 s of the run, to see how the pace settles.
    let slices: Vec<String> = (0..)
        .map(|i| Duration::from_secs(5 * i))
        .take_while(|from| *from <= ok[ok.len() - 1])
        .map(|from| {
            let n = ok
                .iter()
                .filter(|t| **t >= from && **t < from + Duration::from_secs(5))
                .count();
            let limited = requests
                .iter()
                .filter(|r| r.status == Some(429) && r.at >= from)
                .filter(|r| r.at < from + Duration::from_secs(5))
                .count();
            format!("{:.1}/s ({limited} 429s)", n as f64 / 5.0)
        })
        .collect();
    println!("  accepted per 5 s slice: {}", slices.join(", "));
}

fn misbehaving(records: u64) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let input = dir.path().join("people.csv");
    write_people(&input, records);
    let server = Server::start(SandboxOptions {
        limit: None,
        fail_rate: 0.10,
        drop_rate: 0.05,
        stall_rate: 0.02,
        // Longer than the client's --timeout, so a stall is a timeout.
        stall_for: Duration::from_secs(3),
        ..SandboxOptions::default()
    });
    let run = measure(
        server
            .cmd()
            .current_dir(dir.path())
            .args([
                "--rate",
                RATE,
                "--batch",
                "1",
                "--timeout",
                "2",
                "--no-preflight",
            ])
            .arg(&input),
    );
    let summary = run.summary();
    let stats = server.sandbox.stats();
    let accepted = field(&summary, "accepted");
    let code = run.status.code().unwrap_or(-1);
    println!(
        "misbehaviour: --rate {RATE} --batch 1 --timeout 2, {records} records, sandbox 10% 503, 5% dropped, \
         2% stalled 3 s; run took {:.1} s",
        run.wall.as_secs_f64()
    );
    println!(
        "  {} requests ({} retries): {} answered 503, {} dropped, {} stalled",
        stats.requests,
        field(&summary, "retries"),
        stats.failed_5xx,
        stats.dropped,
        stats.stalled
    );
    report(
        "records accepted",
        format!("{accepted}/{records}"),
        "all",
        accepted == records,
    );
    report("exit code", code.to_string(), "0", code == 0);
}
