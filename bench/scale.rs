//! Speed and memory (issue 'speed and memory'). Generates people CSVs in a temp dir and prints:
//!
//! (a) `--dry-run` over 1M rows: wall time, rows/s, MB/s, peak RSS;
//! (b) Python's C csv module merely parsing the same file, and our speed-up over it;
//! (c) peak RSS of `--dry-run` over 10M rows (about 750 MB on disk, deleted after);
//! (d) an import of 150k rows into an unlimited sandbox at `--rate 100000 --concurrency 32
//!     --batch 1`: the child's CPU time per accepted request and its peak RSS; then (d') 1M rows
//!     at the default `--batch 100`: CPU time per record and peak RSS;
//! (e) `--dry-run` over 1M rows of an export-shaped file mapped with `--rename`, `--drop`, a
//!     timestamp format and a list column, beside (a).
//!
//! About a minute on 2 cores (plus the build). `SCALE_SKIP=10m,long` skips the slow parts; `SCALE_ROWS=N`
//! changes the size of (a) and (b).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cio_import::sandbox::SandboxOptions;
use common::{Server, bin, field, measure, report, write_people};

fn main() {
    let skip = std::env::var("SCALE_SKIP").unwrap_or_default();
    let rows: u64 = std::env::var("SCALE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("a temp dir");

    let small = dir.path().join("people-1m.csv");
    let bytes = generate(&small, rows);
    let plain = dry_run_and_python(&small, rows, bytes);
    mapped_export(dir.path(), rows, plain);

    if !skip.contains("10m") {
        let big = dir.path().join("people-10m.csv");
        let big_bytes = generate(&big, 10_000_000);
        dry_run_rss(&big, 10_000_000, big_bytes);
        std::fs::remove_file(&big).expect("delete the 10M input");
    }

    import(dir.path(), 150_000, 1);
    if !skip.contains("long") {
        import(dir.path(), 1_000_000, 100);
    }
}

fn generate(path: &Path, rows: u64) -> u64 {
    let started = Instant::now();
    let bytes = write_people(path, rows);
    println!(
        "generated {rows} rows, {:.1} MB, in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    bytes
}

/// The dry-run command every part uses: the default mapping, created_at read as a date,
/// score typed as a number.
fn dry_run(input: &Path) -> Command {
    let mut c = bin();
    c.current_dir(input.parent().expect("a parent"))
        .args(["--dry-run", "--type", "score=number"])
        .arg(input);
    c
}

/// Runs of each side, interleaved so both meet the same machine noise; medians are reported.
const TRIES: usize = 5;

fn python_parse(input: &Path) -> Command {
    let mut c = Command::new("python3");
    c.args([
        "-c",
        "import csv,sys; n=sum(1 for _ in csv.reader(open(sys.argv[1], newline=\"\"))); print(n)",
    ])
    .arg(input);
    c
}

fn median(mut secs: Vec<f64>) -> f64 {
    secs.sort_by(f64::total_cmp);
    secs[secs.len() / 2]
}

/// (a) and (b); the dry run's median wall time.
fn dry_run_and_python(input: &Path, rows: u64, bytes: u64) -> f64 {
    // Reads the file once so both runs start from a warm page cache.
    std::fs::read(input).expect("read the input");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..TRIES {
        let run = measure(&mut dry_run(input));
        assert!(run.status.success(), "the dry run failed: {}", run.stdout);
        assert_eq!(field(&run.summary(), "accepted"), rows);
        ours.push(run.wall.as_secs_f64());
        let python = measure(&mut python_parse(input));
        assert!(python.status.success(), "python3 failed");
        assert_eq!(
            python.stdout.trim(),
            (rows + 1).to_string(),
            "python's record count"
        );
        theirs.push(python.wall.as_secs_f64());
        last = Some(run);
    }
    let run = last.expect("at least one try");
    let secs = median(ours);
    println!(
        "(a) cio-import --dry-run --type score=number, {rows} rows, {:.1} MB (median of {TRIES})",
        bytes as f64 / 1e6
    );
    wall_and_rows(secs, run.cpu, rows);
    println!("  {:<40} {:>16.1}", "MB/s", bytes as f64 / 1e6 / secs);
    run.report_rss("peak RSS");

    let py = median(theirs);
    println!("(b) python3 csv.reader, parsing only, same file (median of {TRIES}, interleaved)");
    println!("  {:<40} {:>16}", "wall time", format!("{py:.2} s"));
    report(
        "our dry run's speed-up over it",
        format!("{:.2}x", py / secs),
        ">= 4x",
        py / secs >= 4.0,
    );
    secs
}

/// A dry run's median wall time beside its CPU time, and its rows a second.
fn wall_and_rows(secs: f64, cpu: Duration, rows: u64) {
    println!(
        "  {:<40} {:>16}   (CPU {:.2} s)",
        "wall time",
        format!("{secs:.2} s"),
        cpu.as_secs_f64()
    );
    println!("  {:<40} {:>16.0}", "rows/s", rows as f64 / secs);
}

/// (e): a CRM-shaped export, its columns renamed and one dropped, a US date and a list.
fn mapped_export(dir: &Path, rows: u64, plain: f64) {
    let path = dir.join("export-1m.csv");
    let file = std::fs::File::create(&path).expect("create the export");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    use std::io::Write as _;
    writeln!(
        w,
        "Customer ID,Email Address,First Name,Signed Up,Tags,Internal Notes"
    )
    .unwrap();
    for id in 1..=rows {
        let (month, day) = (1 + id % 12, 1 + id % 28);
        writeln!(
            w,
            "{id},user{id}@example.com,Ann,{month:02}/{day:02}/2023,\"vip, plan{}\",call back",
            id % 4
        )
        .unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let mut secs = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let mut c = bin();
        c.current_dir(dir).arg(&path).args([
            "--dry-run",
            "--rename",
            "Customer ID=id",
            "--rename",
            "Email Address=email",
            "--rename",
            "First Name=first_name",
            "--drop",
            "Internal Notes",
            "--type",
            "Signed Up=timestamp:%m/%d/%Y",
            "--type",
            "Tags=list",
        ]);
        let run = measure(&mut c);
        assert!(
            run.status.success(),
            "the mapped dry run failed: {}",
            run.stdout
        );
        assert_eq!(field(&run.summary(), "accepted"), rows);
        secs.push(run.wall.as_secs_f64());
        last = Some(run);
    }
    let run = last.expect("at least one try");
    let secs = median(secs);
    println!(
        "(e) --dry-run with --rename x3, --drop, timestamp:%m/%d/%Y and a list, {rows} rows (median of 3)"
    );
    wall_and_rows(secs, run.cpu, rows);
    println!(
        "  {:<40} {:>16}",
        "beside (a)",
        format!("{:.2}x its time", secs / plain)
    );
    run.report_rss("peak RSS");
    std::fs::remove_file(&path).expect("delete the export");
}

fn dry_run_rss(input: &Path, rows: u64, bytes: u64) {
    let run = measure(&mut dry_run(input));
    assert!(run.status.success(), "the dry run failed: {}", run.stdout);
    assert_eq!(field(&run.summary(), "accepted"), rows);
    let secs = run.wall.as_secs_f64();
    println!(
        "(c) cio-import --dry-run, {rows} rows, {:.0} MB: {secs:.1} s, {:.0} rows/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        rows as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    run.report_rss("peak RSS");
}

fn import(dir: &Path, rows: u64, batch: u64) {
    let input = dir.join(format!("people-{rows}.csv"));
    write_people(&input, rows);
    let server = Server::start(SandboxOptions {
        limit: None,
        keep_requests: false,
        ..SandboxOptions::default()
    });
    let run = measure(
        server
            .cmd()
            .current_dir(dir)
            .args(["--rate", "100000", "--concurrency", "32"])
            .args(["--batch", &batch.to_string(), "--type", "score=number"])
            .arg(&input),
    );
    let summary = run.summary();
    assert!(run.status.success(), "the import failed: {summary}");
    let accepted = field(&summary, "accepted");
    let requests = field(&summary, "requests");
    let stats = server.sandbox.stats();
    assert_eq!(accepted, rows, "{summary}");
    assert_eq!(stats.people, rows);
    let secs = run.wall.as_secs_f64();
    let cpu_us = run.cpu.as_secs_f64() * 1e6;
    let part = if batch == 1 { "(d)" } else { "(d')" };
    println!(
        "{part} import into the sandbox (no limit), --rate 100000 --concurrency 32 --batch {batch}, \
         {rows} rows in {requests} requests: {secs:.1} s, {:.0} records/s, child CPU {:.1} s",
        accepted as f64 / secs,
        run.cpu.as_secs_f64()
    );
    if batch == 1 {
        let per = cpu_us / requests as f64;
        report(
            "child CPU (user+sys) per accepted request",
            format!("{per:.1} us"),
            "< 50 us",
            per < 50.0,
        );
    } else {
        println!(
            "  {:<40} {:>16}",
            "child CPU (user+sys) per record",
            format!("{:.1} us", cpu_us / accepted as f64)
        );
    }
    run.report_rss("child peak RSS");
    drop(server);
    std::fs::remove_file(&input).expect("delete the input");
    // Lets the sandbox's memory go before the next part.
    std::thread::sleep(Duration::from_millis(100));
}
