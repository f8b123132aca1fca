//! Batch mode: records per second for 20,000 people at `--rate 10 --batch 100` through
//! `/api/v2/batch`, beside one v1 request per record (`--batch 1`, on 300 people: at 10
//! requests/s all 20,000 would take 33 minutes), to a sandbox that answers after 30 ms.
//! About 50 s.

mod common;

use std::time::Duration;

use cio_import::sandbox::SandboxOptions;
use common::{Server, field, measure, write_people};

fn main() {
    let per_record = run(1, 300);
    let batched = run(100, 20_000);
    println!(
        "  batches of 100 move {:.0}x the records per second of one record a request \
         (target: about 100x)",
        batched / per_record
    );
}

/// Imports `records` people `batch` to a request; returns accepted records per second.
fn run(batch: u64, records: u64) -> f64 {
    let dir = tempfile::tempdir().expect("a temp dir");
    let input = dir.path().join("people.csv");
    write_people(&input, records);
    let server = Server::start(SandboxOptions {
        latency: Duration::from_millis(30),
        keep_requests: false,
        ..SandboxOptions::default()
    });
    let run = measure(
        server
            .cmd()
            .current_dir(dir.path())
            .args(["--rate", "10", "--batch", &batch.to_string()])
            .arg(&input),
    );
    let summary = run.summary();
    assert!(run.status.success(), "the import failed: {summary}");
    assert_eq!(field(&summary, "accepted"), records, "{summary}");
    let stats = server.sandbox.stats();
    assert_eq!(stats.people, records);
    let per_s = summary["accepted_per_s"].as_f64().expect("accepted_per_s");
    println!(
        "--rate 10 --batch {batch}: {records} records in {:.1} s, {per_s:.0} records/s; \
         {} requests ({} answered 429), child CPU {:.2} s, peak RSS {:.1} MiB",
        run.wall.as_secs_f64(),
        stats.requests,
        stats.rejected_429,
        run.cpu.as_secs_f64(),
        run.max_rss_mib()
    );
    per_s
}
