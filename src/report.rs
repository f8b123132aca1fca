//! Reporting: the live counters, the progress display (the only thing that draws on
//! stderr), the ledger that settles every record (accepted, or a failures-file line), and
//! the summary.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cli::ProgressMode;

/// Live counts, shared by every stage; read by the progress display.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records read (valid or not).
    pub records: AtomicU64,
    pub accepted: AtomicU64,
    pub failed: AtomicU64,
    pub invalid: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Raw input bytes read, for the ETA.
    pub bytes: Arc<AtomicU64>,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    pub fn settled(&self) -> u64 {
        Self::get(&self.accepted) + Self::get(&self.failed) + Self::get(&self.invalid)
    }
}

/// Where a settled record ends.
#[derive(Debug)]
pub enum Outcome {
    Accepted,
    /// Sent and refused for good: the failures-file line (operation plus `_error`).
    Failed(Map<String, Value>),
    /// Never sent: the failures-file line (the row plus `_error`).
    Invalid(Map<String, Value>),
}

/// A settled position: every record of `input` before `records` (and every record of the
/// inputs before it) is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct Position {
    pub input: usize,
    pub records: u64,
}

/// Settles records: counts them, writes failures, and tracks how far everything is settled.
pub struct Ledger {
    counters: Arc<Counters>,
    failures_path: PathBuf,
    failures: Option<File>,
    /// On resume, failures go after the earlier run's.
    append: bool,
    failure_lines: u64,
    /// Records are numbered in reading order across all inputs; every number below this
    /// one is settled.
    next_unsettled: u64,
    /// Numbers settled out of order, above `next_unsettled`.
    ahead: BTreeSet<u64>,
    /// Per input: its first record number, and how many of its records a resume skipped.
    starts: Vec<(u64, u64)>,
}

impl Ledger {
    pub fn new(counters: Arc<Counters>, failures_path: PathBuf, append: bool) -> Ledger {
        Ledger {
            counters,
            failures_path,
            failures: None,
            append,
            failure_lines: 0,
            next_unsettled: 0,
            ahead: BTreeSet::new(),
            starts: Vec::new(),
        }
    }

    /// Called by the reader as it starts input `input` at record number `first`, having
    /// skipped `skipped` records of it that an earlier run settled.
    pub fn begin_input(&mut self, input: usize, first: u64, skipped: u64) {
        debug_assert_eq!(input, self.starts.len());
        self.starts.push((first, skipped));
    }

    pub fn settle(&mut self, seq: u64, outcome: Outcome) -> std::io::Result<()> {
        match outcome {
            Outcome::Accepted => Counters::add(&self.counters.accepted, 1),
            Outcome::Failed(line) => {
                self.write_failure(&line)?;
                Counters::add(&self.counters.failed, 1);
            }
            Outcome::Invalid(line) => {
                self.write_failure(&line)?;
                Counters::add(&self.counters.invalid, 1);
            }
        }
        if seq == self.next_unsettled {
            self.next_unsettled += 1;
            while self.ahead.remove(&self.next_unsettled) {
                self.next_unsettled += 1;
            }
        } else {
            self.ahead.insert(seq);
        }
        Ok(())
    }

    /// The failures file is opened on the first failure, so a clean run leaves none; each
    /// line goes out in one write, so a crash never leaves half a line or loses one.
    fn write_failure(&mut self, line: &Map<String, Value>) -> std::io::Result<()> {
        let file = match &mut self.failures {
            Some(f) => f,
            None => self
                .failures
                .insert(open_private(&self.failures_path, self.append)?),
        };
        let mut buf = serde_json::to_vec(line)?;
        buf.push(b'\n');
        file.write_all(&buf)?;
        self.failure_lines += 1;
        Ok(())
    }

    /// Where everything before is settled.
    pub fn position(&self) -> Position {
        let n = self.next_unsettled;
        let input = self
            .starts
            .iter()
            .rposition(|(first, _)| *first <= n)
            .unwrap_or(0);
        let (first, skipped) = self.starts.get(input).copied().unwrap_or((0, 0));
        Position {
            input,
            records: skipped + (n - first),
        }
    }

    /// The failures file, if anything was written to it.
    pub fn failures_written(&self) -> Option<(&Path, u64)> {
        self.failures
            .as_ref()
            .map(|_| (self.failures_path.as_path(), self.failure_lines))
    }
}

/// Creates (or appends to) a file only its owner can read: failures hold personal data.
pub fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
}

/// Builds a failures-file line: the payload, plus `_error`.
pub fn failure_line(
    mut payload: Map<String, Value>,
    source: &str,
    line: u64,
    error: Map<String, Value>,
) -> Map<String, Value> {
    let mut e = Map::new();
    e.insert("source".into(), source.into());
    e.insert("line".into(), line.into());
    e.extend(error);
    payload.insert("_error".into(), Value::Object(e));
    payload
}

/// The one owner of stderr while a run goes: the progress bar, and warnings drawn above it.
#[derive(Clone)]
pub struct Reporter {
    bar: ProgressBar,
    /// Plain progress lines every few seconds (stderr is not a terminal).
    plain: bool,
    quiet: bool,
    verbose: u8,
}

const TICK: Duration = Duration::from_millis(200);
const PLAIN_EVERY: Duration = Duration::from_secs(5);

impl Reporter {
    pub fn new(mode: ProgressMode, quiet: bool, verbose: u8, total_bytes: Option<u64>) -> Reporter {
        let tty = std::io::stderr().is_terminal();
        let draw = !quiet
            && match mode {
                ProgressMode::Always => true,
                ProgressMode::Never => false,
                ProgressMode::Auto => tty,
            };
        let bar = if draw {
            let bar = match total_bytes {
                Some(n) => {
                    ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr_with_hz(5))
                }
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(5)),
            };
            let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            let template = match (total_bytes.is_some(), color) {
                (true, true) => {
                    "{spinner:.cyan} [{bar:24.cyan/blue}] {percent:>3}% {msg} ETA {eta}"
                }
                (true, false) => "{spinner} [{bar:24}] {percent:>3}% {msg} ETA {eta}",
                (false, _) => "{spinner} {msg}",
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Reporter {
            bar,
            plain: !quiet && !draw && mode != ProgressMode::Never,
            quiet,
            verbose,
        }
    }

    pub fn verbose(&self) -> u8 {
        self.verbose
    }

    /// A warning, printed above the bar (never through it).
    pub fn warn(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            self.bar
                .suspend(|| eprintln!("cio-import: warning: {}", msg.as_ref()));
        }
    }

    /// A verbose log line (-v), above the bar.
    pub fn log(&self, msg: impl AsRef<str>) {
        self.bar
            .suspend(|| eprintln!("cio-import: {}", msg.as_ref()));
    }

    /// Draws until `done` is cancelled: the bar on a terminal, a plain line every few
    /// seconds otherwise.
    pub async fn draw(
        &self,
        counters: Arc<Counters>,
        rate: impl Fn() -> Option<f64>,
        done: tokio_util::sync::CancellationToken,
    ) {
        let start = Instant::now();
        let mut last_plain = Instant::now();
        let mut window: std::collections::VecDeque<(Instant, u64)> = Default::default();
        loop {
            tokio::select! {
                _ = done.cancelled() => break,
                _ = tokio::time::sleep(TICK) => {}
            }
            let now = Instant::now();
            let requests = Counters::get(&counters.requests);
            window.push_back((now, requests));
            while window.len() > 2 && now.duration_since(window[0].0) > Duration::from_secs(5) {
                window.pop_front();
            }
            let req_rate = match (window.front(), window.back()) {
                (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / (b.0 - a.0).as_secs_f64(),
                _ => 0.0,
            };
            let line = progress_line(&counters, req_rate, rate());
            self.bar.set_position(Counters::get(&counters.bytes));
            self.bar.set_message(line.clone());
            if self.plain && now.duration_since(last_plain) >= PLAIN_EVERY {
                last_plain = now;
                eprintln!(
                    "cio-import: {:.0}s: {line}",
                    now.duration_since(start).as_secs_f64()
                );
            }
        }
        self.bar.finish_and_clear();
    }
}

fn progress_line(c: &Counters, req_rate: f64, pace: Option<f64>) -> String {
    let mut s = format!(
        "{} done: {} accepted, {} failed, {} invalid · {} retries, {} 429s · {:.1} req/s",
        HumanCount(c.settled()),
        HumanCount(Counters::get(&c.accepted)),
        HumanCount(Counters::get(&c.failed)),
        HumanCount(Counters::get(&c.invalid)),
        HumanCount(Counters::get(&c.retries)),
        HumanCount(Counters::get(&c.rate_limited)),
        req_rate,
    );
    if let Some(p) = pace {
        s.push_str(&format!(" (pace {p:.1}/s)"));
    }
    s
}

/// The end-of-run figures; `--summary` writes them as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub records: u64,
    pub accepted: u64,
    pub failed: u64,
    pub invalid: u64,
    /// Read but not settled: the run stopped before they were sent (resume sends them).
    pub unsent: u64,
    pub requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
    pub elapsed_s: f64,
    /// Accepted records per second over the run.
    pub accepted_per_s: f64,
    /// The pace when the run ended: after 429s, what the server was found to accept.
    pub final_rate: Option<f64>,
    pub failures_path: Option<PathBuf>,
    pub checkpoint_path: Option<PathBuf>,
    pub dry_run: bool,
    pub exit_code: u8,
}

impl Summary {
    /// The human summary, for stderr.
    pub fn human(&self) -> String {
        let verb = if self.dry_run { "valid" } else { "accepted" };
        let mut s = format!(
            "{} records in {:.1}s: {} {verb}, {} failed, {} invalid",
            HumanCount(self.records),
            self.elapsed_s,
            HumanCount(self.accepted),
            HumanCount(self.failed),
            HumanCount(self.invalid),
        );
        if self.unsent > 0 {
            s.push_str(&format!(", {} not sent", HumanCount(self.unsent)));
        }
        if !self.dry_run {
            s.push_str(&format!(
                "\n  {} requests ({} retries, {} answered 429), {:.1} accepted/s",
                HumanCount(self.requests),
                HumanCount(self.retries),
                HumanCount(self.rate_limited),
                self.accepted_per_s
            ));
            if let Some(r) = self.final_rate.filter(|_| self.rate_limited > 0) {
                s.push_str(&format!("; the server accepted about {r:.1} requests/s"));
            }
        }
        if let Some(p) = &self.failures_path {
            s.push_str(&format!(
                "\n  failures: {} (fix and replay: cio-import {})",
                p.display(),
                p.display()
            ));
        }
        if let Some(p) = &self.checkpoint_path {
            s.push_str(&format!(
                "\n  checkpoint: {} (carry on with --resume)",
                p.display()
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(dir: &Path) -> Ledger {
        Ledger::new(Arc::new(Counters::default()), dir.join("f.ndjson"), false)
    }

    #[test]
    fn position_advances_only_over_settled_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = ledger(dir.path());
        l.begin_input(0, 0, 0);
        l.settle(1, Outcome::Accepted).unwrap();
        l.settle(2, Outcome::Accepted).unwrap();
        assert_eq!(
            l.position(),
            Position {
                input: 0,
                records: 0
            }
        );
        l.settle(0, Outcome::Accepted).unwrap();
        assert_eq!(
            l.position(),
            Position {
                input: 0,
                records: 3
            }
        );
        // A second input, whose first 10 records an earlier run settled.
        l.begin_input(1, 3, 10);
        l.settle(4, Outcome::Accepted).unwrap();
        l.settle(3, Outcome::Accepted).unwrap();
        assert_eq!(
            l.position(),
            Position {
                input: 1,
                records: 12
            }
        );
    }

    #[test]
    fn failures_file_is_created_on_first_failure_private_and_line_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = ledger(dir.path());
        l.begin_input(0, 0, 0);
        l.settle(0, Outcome::Accepted).unwrap();
        assert!(l.failures_written().is_none());
        assert!(!dir.path().join("f.ndjson").exists());
        let line = failure_line(Map::new(), "users.csv", 7, Map::new());
        l.settle(1, Outcome::Invalid(line.clone())).unwrap();
        l.settle(2, Outcome::Failed(line)).unwrap();
        let text = std::fs::read_to_string(dir.path().join("f.ndjson")).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().all(|l| l.contains(r#""line":7"#)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("f.ndjson"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
