//! Order only where it matters: 10,000 events of 100 people, sorted by person as an export
//! is, beside the same events shuffled, to a sandbox that answers after 100 ms; one event a
//! request (`--rate 1000 --concurrency 200`) and in batches (`--rate 20 --batch 100`). Events
//! need no order among themselves, so the sorted file must go at least 90% as fast as the
//! shuffled one. About 40 s.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use cio_import::sandbox::SandboxOptions;
use common::{Server, field, measure, report};

const PEOPLE: u64 = 100;
const EVENTS: u64 = 10_000;

fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let sorted = dir.path().join("sorted.csv");
    let shuffled = dir.path().join("shuffled.csv");
    write_events(&sorted, false);
    write_events(&shuffled, true);
    for (name, args) in [
        (
            "one a request",
            ["--rate", "1000", "--concurrency", "200", "--batch", "1"],
        ),
        (
            "batches of 100",
            ["--rate", "20", "--concurrency", "10", "--batch", "100"],
        ),
    ] {
        let by_person = run(&sorted, &args);
        let mixed = run(&shuffled, &args);
        println!(
            "{name}: sorted by person {by_person:.0} records/s, shuffled {mixed:.0} records/s"
        );
        let share = by_person / mixed;
        report(
            &format!("sorted/shuffled, {name}"),
            format!("{:.1}%", share * 100.0),
            ">= 90%",
            share >= 0.9,
        );
    }
}

/// Writes the events, each person's together (`shuffle` false) or spread through the file.
fn write_events(path: &Path, shuffle: bool) {
    let mut rows: Vec<(u64, u64)> = (0..PEOPLE)
        .flat_map(|person| (0..EVENTS / PEOPLE).map(move |n| (person, n)))
        .collect();
    if shuffle {
        // A fixed permutation (splitmix64 keys), so every run measures the same file.
        rows.sort_by_key(|&(person, n)| {
            let mut z = (person * 1_000_003 + n).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        });
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create the input"));
    writeln!(w, "id,name,timestamp,page").unwrap();
    for (person, n) in rows {
        writeln!(w, "u{person},viewed,{},/p/{n}", 1_700_000_000 + n).unwrap();
    }
    w.flush().unwrap();
}

/// Imports `input` as events with `args`; returns accepted records per second.
fn run(input: &Path, args: &[&str]) -> f64 {
    let server = Server::start(SandboxOptions {
        latency: Duration::from_millis(100),
        limit: None,
        ..SandboxOptions::default()
    });
    let dir = input.parent().expect("a folder");
    let run = measure(
        server
            .cmd()
            .current_dir(dir)
            .args(["--action", "event", "--failures", "f.ndjson"])
            .args(args)
            .arg(input),
    );
    let summary = run.summary();
    assert!(run.status.success(), "the import failed: {summary}");
    assert_eq!(field(&summary, "accepted"), EVENTS, "{summary}");
    assert_eq!(server.sandbox.stats().events, EVENTS);
    summary["accepted_per_s"].as_f64().expect("accepted_per_s")
}
