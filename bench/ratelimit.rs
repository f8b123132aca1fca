//! Rate-limit discipline (issues 'rate-limit discipline' and 'honest results'). Four
//! scenarios, about 2.5 minutes in all, each `--rate 50 --batch 1` (one v1 request per record:
//! the guide's figures are per request):
//!
//! 1. A sandbox that admits 30 requests per sliding second and answers the rest 429 with
//!    Retry-After, over 1,500 records (about 50 s): goodput (accepted records per second) as
//!    a share of 30/s, and the share of requests answered 429.
//! 2. and 3. A sandbox with no limit that answers 1%, then 10%, of requests 429 at random,
//!    without Retry-After (so each costs the importer's own pause), 1,500 records each: goodput
//!    as a share of `--rate`, which stray 429s must not collapse.
//! 4. A misbehaving sandbox (10% 503s, 5% dropped connections, 2% stalls past `--timeout 2`),
//!    no limit, 500 records: every record must be accepted and the run must exit 0.
//!
//! `RATELIMIT_RECORDS=N` changes the size of the first three.

mod common;

use std::time::Duration;

use cio_import::sandbox::{SandboxOptions, Stats};
use common::{Measured, Server, field, measure, report, write_people};
use serde_json::Value;

const LIMIT: u32 = 30;
const RATE: f64 = 50.0;

fn main() {
    let records: u64 = std::env::var("RATELIMIT_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_500);
    limited(records);
    strays(records, 0.01, 0.8);
    strays(records, 0.10, 0.5);
    misbehaving(500);
}

/// What an import did, and what its sandbox saw.
struct Imported {
    server: Server,
    run: Measured,
    summary: Value,
    stats: Stats,
    records: u64,
    accepted: u64,
    /// Accepted records a second over the run, from its summary.
    goodput: f64,
}

/// Imports `records` people from a file at `--rate 50 --batch 1 --no-preflight` into a
/// sandbox started with `opts`, with `extra` flags.
fn import(opts: SandboxOptions, records: u64, extra: &[&str]) -> Imported {
    let server = Server::start(opts);
    let dir = tempfile::tempdir().expect("a temp dir");
    let input = dir.path().join("people.csv");
    write_people(&input, records);
    let run = measure(
        server
            .cmd()
            .current_dir(dir.path())
            .args(["--rate", &RATE.to_string(), "--batch", "1"])
            .arg("--no-preflight")
            .args(extra)
            .arg(&input),
    );
    let summary = run.summary();
    let accepted = field(&summary, "accepted");
    let goodput = summary["accepted_per_s"].as_f64().expect("accepted_per_s");
    Imported {
        stats: server.sandbox.stats(),
        server,
        run,
        summary,
        records,
        accepted,
        goodput,
    }
}

impl Imported {
    /// `run took 51.2 s, exit 0`.
    fn took(&self) -> String {
        format!(
            "run took {:.1} s, exit {}",
            self.run.wall.as_secs_f64(),
            self.run.status.code().unwrap_or(-1)
        )
    }

    /// The pace the run ended at.
    fn final_rate(&self) -> f64 {
        self.summary["final_rate"].as_f64().unwrap_or(f64::NAN)
    }

    fn report_accepted(&self) {
        report(
            "records accepted",
            format!("{}/{}", self.accepted, self.records),
            "all",
            self.accepted == self.records,
        );
    }
}

fn limited(records: u64) {
    let opts = SandboxOptions {
        limit: Some(LIMIT),
        retry_after: true,
        keep_requests: true,
        ..SandboxOptions::default()
    };
    let done = import(opts, records, &[]);
    let (stats, goodput) = (&done.stats, done.goodput);
    // The same from the server's side: accepted arrivals over the first..last arrival.
    let requests = done.server.sandbox.requests();
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
         {LIMIT}/s with Retry-After; {}",
        done.took()
    );
    println!(
        "  {} requests, {} answered 429, {} accepted; final pace {:.1}/s; most in any second {}",
        stats.requests,
        stats.rejected_429,
        done.accepted,
        done.final_rate(),
        stats.max_in_any_window
    );
    report(
        "goodput (accepted/s over the run)",
        format!(
            "{goodput:.1}/s ({:.1}%)",
            100.0 * goodput / f64::from(LIMIT)
        ),
        ">= 95% of 30/s",
        goodput >= 0.95 * f64::from(LIMIT),
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
        "<= 1%",
        share_429 <= 0.01,
    );
    done.report_accepted();
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

/// No limit, and a share of requests answered 429 at random: goodput must keep `kept` of
/// `--rate`.
fn strays(records: u64, share: f64, kept: f64) {
    let opts = SandboxOptions {
        limit: None,
        stray_429_rate: share,
        // Each stray then costs the importer's own pause, not a second from the server.
        retry_after: false,
        ..SandboxOptions::default()
    };
    let done = import(opts, records, &[]);
    let (stats, goodput) = (&done.stats, done.goodput);
    let percent = 100.0 * share;
    println!(
        "stray 429s: --rate {RATE} --batch 1 --concurrency 10 (default), {records} records, sandbox with no \
         limit answering {percent:.0}% of requests 429 at random (no Retry-After); {}",
        done.took()
    );
    println!(
        "  {} requests, {} answered 429 ({:.1}%), {} accepted; final pace {:.1}/s",
        stats.requests,
        stats.rejected_429,
        100.0 * stats.rejected_429 as f64 / stats.requests as f64,
        done.accepted,
        done.final_rate(),
    );
    report(
        &format!("goodput with {percent:.0}% stray 429s"),
        format!("{goodput:.1}/s ({:.1}%)", 100.0 * goodput / RATE),
        &format!(">= {:.0}% of {RATE}/s", 100.0 * kept),
        goodput >= kept * RATE,
    );
    done.report_accepted();
}

fn misbehaving(records: u64) {
    let opts = SandboxOptions {
        limit: None,
        fail_rate: 0.10,
        drop_rate: 0.05,
        stall_rate: 0.02,
        // Longer than the client's --timeout, so a stall is a timeout.
        stall_for: Duration::from_secs(3),
        ..SandboxOptions::default()
    };
    let done = import(opts, records, &["--timeout", "2"]);
    let stats = &done.stats;
    let code = done.run.status.code().unwrap_or(-1);
    println!(
        "misbehaviour: --rate {RATE} --batch 1 --timeout 2, {records} records, sandbox 10% 503, 5% dropped, \
         2% stalled 3 s; {}",
        done.took()
    );
    println!(
        "  {} requests ({} retries): {} answered 503, {} dropped, {} stalled",
        stats.requests,
        field(&done.summary, "retries"),
        stats.failed_5xx,
        stats.dropped,
        stats.stalled
    );
    done.report_accepted();
    report("exit code", code.to_string(), "0", code == 0);
}
