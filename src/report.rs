//! Reporting: the live counters, the progress display (the only thing that draws on
//! stderr), the ledger that settles every record (accepted, or a failures-file line), and
//! the summary.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use console::Term;
use indicatif::{HumanCount, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};
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

/// Records `from..to` of `input` (numbered from its start), all settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct Span {
    pub input: usize,
    pub from: u64,
    pub to: u64,
}

/// Settles records: counts them, writes failures, and tracks how far everything is settled.
pub struct Ledger {
    counters: Arc<Counters>,
    failures_path: PathBuf,
    failures: Option<File>,
    /// On resume, failures go after the earlier run's.
    append: bool,
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
        self.settle_outcome(outcome)?;
        self.mark(seq, 1);
        Ok(())
    }

    /// Settles a record an earlier run settled (a resume reads past it): nothing to count.
    pub fn settle_earlier(&mut self, seq: u64) {
        self.mark(seq, 1);
    }

    fn settle_outcome(&mut self, outcome: Outcome) -> std::io::Result<()> {
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
        Ok(())
    }

    /// Marks `count` records numbered from `first` settled, moving the watermark over them
    /// and over any settled out of order just past them.
    fn mark(&mut self, first: u64, count: u64) {
        if first == self.next_unsettled {
            self.next_unsettled += count;
            while self.ahead.remove(&self.next_unsettled) {
                self.next_unsettled += 1;
            }
        } else {
            self.ahead.extend(first..first + count);
        }
    }

    /// Settles `count` accepted records numbered from `first` at once: a dry run settles its
    /// valid rows in runs, one lock a run rather than one a row.
    pub fn settle_accepted(&mut self, first: u64, count: u64) {
        Counters::add(&self.counters.accepted, count);
        self.mark(first, count);
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
        Ok(())
    }

    /// Where everything before is settled.
    pub fn position(&self) -> Position {
        self.locate(self.next_unsettled)
    }

    /// The records settled past [`Ledger::position`], out of order, as spans.
    pub fn settled_ahead(&self) -> Vec<Span> {
        let mut spans: Vec<Span> = Vec::new();
        for &seq in &self.ahead {
            let at = self.locate(seq);
            match spans.last_mut() {
                Some(last) if last.input == at.input && last.to == at.records => last.to += 1,
                _ => spans.push(Span {
                    input: at.input,
                    from: at.records,
                    to: at.records + 1,
                }),
            }
        }
        spans
    }

    /// Record number `seq` as an input and its place there.
    fn locate(&self, seq: u64) -> Position {
        // The last input begun at or before it: an input with no records shares its first
        // number with the next one.
        let input = self
            .starts
            .iter()
            .rposition(|(first, _)| *first <= seq)
            .unwrap_or(0);
        let (first, skipped) = self.starts.get(input).copied().unwrap_or((0, 0));
        Position {
            input,
            records: skipped + (seq - first),
        }
    }

    /// Another handle on the failures file, if it is open: to sync it without the lock.
    pub fn failures_file(&self) -> Option<File> {
        self.failures.as_ref().and_then(|f| f.try_clone().ok())
    }

    /// The failures file, if anything was written to it.
    pub fn failures_written(&self) -> Option<&Path> {
        self.failures.as_ref().map(|_| self.failures_path.as_path())
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
    color: bool,
}

const TICK: Duration = Duration::from_millis(200);
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// Redraws per second at most.
const HZ: u8 = 5;
/// The bar's width when the whole display fits on one line.
const BAR_WIDTH: usize = 12;

impl Reporter {
    pub fn new(mode: ProgressMode, quiet: bool, verbose: u8, total_bytes: Option<u64>) -> Reporter {
        let target = match mode {
            _ if quiet => None,
            ProgressMode::Never => None,
            // A forced target: indicatif hides its stderr target when it is not a terminal.
            ProgressMode::Always => Some(ProgressDrawTarget::term_like_with_hz(
                Box::new(Term::stderr()),
                HZ,
            )),
            // Hidden when stderr is not a terminal (or TERM=dumb): plain lines instead.
            ProgressMode::Auto => {
                Some(ProgressDrawTarget::stderr_with_hz(HZ)).filter(|t| !t.is_hidden())
            }
        };
        let plain = target.is_none() && !quiet && mode != ProgressMode::Never;
        let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Reporter::with_target(target, plain, quiet, verbose, color, total_bytes)
    }

    fn with_target(
        target: Option<ProgressDrawTarget>,
        plain: bool,
        quiet: bool,
        verbose: u8,
        color: bool,
        total_bytes: Option<u64>,
    ) -> Reporter {
        // A hidden bar still keeps position and ETA, for the plain lines.
        let bar = ProgressBar::with_draw_target(
            total_bytes,
            target.unwrap_or_else(ProgressDrawTarget::hidden),
        );
        Reporter {
            bar,
            plain,
            quiet,
            verbose,
            color,
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
    /// seconds otherwise. `pace` is the pacer's current rate (None in a dry run).
    pub async fn draw(
        &self,
        counters: Arc<Counters>,
        pace: impl Fn() -> Option<f64>,
        done: tokio_util::sync::CancellationToken,
    ) {
        let start = Instant::now();
        let mut last_plain = Instant::now();
        let mut window: std::collections::VecDeque<(Instant, u64)> = Default::default();
        // The pace starts at its highest (--rate); a lower one means 429s slowed it.
        let mut top = 0.0f64;
        let mut shape = None;
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
            self.bar.set_position(Counters::get(&counters.bytes));
            let pace = pace();
            top = top.max(pace.unwrap_or(0.0));
            let frame = Frame::new(
                &counters,
                req_rate,
                pace.map(|p| (p, top)),
                self.fraction_and_eta(),
            );
            if self.plain {
                if now.duration_since(last_plain) >= PLAIN_EVERY {
                    last_plain = now;
                    eprintln!(
                        "cio-import: {:.0}s: {}",
                        now.duration_since(start).as_secs_f64(),
                        frame.one_line()
                    );
                }
            } else if !self.bar.is_hidden() {
                let width = usize::from(Term::stderr().size().1);
                self.show(&frame, width, &mut shape);
            }
        }
        self.bar.finish_and_clear();
    }

    /// How much of the input is read, and the time left, when the input's size is known.
    fn fraction_and_eta(&self) -> Option<(f64, Option<Duration>)> {
        let len = self.bar.length().filter(|&n| n > 0)?;
        let pos = self.bar.position().min(len);
        // Before anything is read, and once everything is, the byte rate says nothing
        // about the time left.
        let eta = (pos > 0 && pos < len).then(|| self.bar.eta());
        Some((pos as f64 / len as f64, eta))
    }

    /// Draws one frame, on one line when it fits in `width` columns and on two otherwise.
    fn show(&self, frame: &Frame, width: usize, shape: &mut Option<Shape>) {
        let new = frame.shape(width);
        if *shape != Some(new) {
            *shape = Some(new);
            let template = new.template(self.color);
            let style = ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            self.bar.set_style(style);
        }
        match new {
            Shape::OneLine { .. } => self.bar.set_message(frame.one_line()),
            Shape::TwoLines { .. } => {
                self.bar.set_prefix(frame.head_and_flow());
                self.bar.set_message(frame.counts.clone());
            }
        }
    }
}

/// How the bar is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `⠙ [bar] 37% read, ETA 2m · counts · flow`
    OneLine { bar: bool },
    /// `⠙ [wide bar] 37% read, ETA 2m · flow`, then the counts below.
    TwoLines { bar: bool },
}

impl Shape {
    fn template(self, color: bool) -> String {
        let (spinner, bar, wide_bar) = if color {
            (
                "{spinner:.cyan}",
                format!("{{bar:{BAR_WIDTH}.cyan/blue}}"),
                "{wide_bar:.cyan/blue}",
            )
        } else {
            ("{spinner}", format!("{{bar:{BAR_WIDTH}}}"), "{wide_bar}")
        };
        match self {
            Shape::OneLine { bar: true } => format!("{spinner} [{bar}] {{wide_msg}}"),
            Shape::OneLine { bar: false } => format!("{spinner} {{wide_msg}}"),
            Shape::TwoLines { bar: true } => {
                format!("{spinner} [{wide_bar}] {{prefix}}\n  {{wide_msg}}")
            }
            Shape::TwoLines { bar: false } => format!("{spinner} {{prefix}}\n  {{wide_msg}}"),
        }
    }
}

/// What one frame of the display says, in three parts.
struct Frame {
    /// `37% read, ETA 2m`, when the input's size is known: the share of its bytes read (the
    /// reader runs a buffer ahead of the sending, so a small file reads 100% at once).
    head: Option<String>,
    /// `1,234 done: 1,200 accepted, 30 failed, 4 invalid`
    counts: String,
    /// `48.9 req/s (pace 40.0/s) · 12 retries, 3 429s`, when sending; the pace shows once
    /// 429s have lowered it.
    flow: Option<String>,
}

impl Frame {
    /// `pace` is the current pace and the highest seen; `read` the share of the input read
    /// and the time left.
    fn new(
        c: &Counters,
        req_rate: f64,
        pace: Option<(f64, f64)>,
        read: Option<(f64, Option<Duration>)>,
    ) -> Frame {
        let head = read.map(|(fraction, eta)| {
            let percent = format!("{:.0}% read", (fraction * 100.0).floor());
            match eta {
                Some(eta) => format!("{percent}, ETA {:#}", HumanDuration(eta)),
                None => percent,
            }
        });
        let counts = format!(
            "{} done: {} accepted, {} failed, {} invalid",
            HumanCount(c.settled()),
            HumanCount(Counters::get(&c.accepted)),
            HumanCount(Counters::get(&c.failed)),
            HumanCount(Counters::get(&c.invalid)),
        );
        let flow = pace.map(|(now, top)| {
            let slowed = if now < top * 0.99 {
                format!(" (pace {now:.1}/s)")
            } else {
                String::new()
            };
            format!(
                "{req_rate:.1} req/s{slowed} · {}, {}",
                counted(Counters::get(&c.retries), "retry"),
                counted(Counters::get(&c.rate_limited), "429"),
            )
        });
        Frame { head, counts, flow }
    }

    fn one_line(&self) -> String {
        join([
            self.head.as_deref(),
            Some(&self.counts),
            self.flow.as_deref(),
        ])
    }

    fn head_and_flow(&self) -> String {
        join([self.head.as_deref(), self.flow.as_deref()])
    }

    /// One line when it fits in `width` columns (the last one left free, as writing there
    /// wraps on some terminals).
    fn shape(&self, width: usize) -> Shape {
        let bar = self.head.is_some();
        let used = 2 + if bar { BAR_WIDTH + 3 } else { 0 } + self.one_line().chars().count();
        if used < width {
            Shape::OneLine { bar }
        } else {
            Shape::TwoLines { bar }
        }
    }
}

fn join<'a>(parts: impl IntoIterator<Item = Option<&'a str>>) -> String {
    parts.into_iter().flatten().collect::<Vec<_>>().join(" · ")
}

/// "1 record", "2,000 records", "1 retry", "3 retries".
pub fn counted(n: u64, noun: &str) -> String {
    let plural = match (n, noun.strip_suffix('y')) {
        (1, _) => noun.to_owned(),
        (_, Some(stem)) => format!("{stem}ies"),
        _ => format!("{noun}s"),
    };
    format!("{} {plural}", HumanCount(n))
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
    /// The command that replays the failures file as this run would (for people, not JSON).
    #[serde(skip)]
    pub replay: Option<String>,
    pub checkpoint_path: Option<PathBuf>,
    pub dry_run: bool,
    pub exit_code: u8,
}

impl Summary {
    /// The human summary, for stderr.
    pub fn human(&self) -> String {
        let verb = if self.dry_run { "valid" } else { "accepted" };
        let mut s = format!(
            "{} in {:.1}s: {} {verb}, {} failed, {} invalid",
            counted(self.records, "record"),
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
                "\n  {} ({}, {} answered 429), {:.1} accepted/s",
                counted(self.requests, "request"),
                counted(self.retries, "retry"),
                HumanCount(self.rate_limited),
                self.accepted_per_s
            ));
            if let Some(r) = self.final_rate.filter(|_| self.rate_limited > 0) {
                s.push_str(&format!("; the server accepted about {r:.1} requests/s"));
            }
        }
        if let Some(p) = &self.failures_path {
            let next = match &self.replay {
                _ if self.dry_run => "fix these rows in the input before the real run".to_owned(),
                Some(command) => format!("fix and replay: {command}"),
                None => format!("fix and replay: cio-import {}", p.display()),
            };
            s.push_str(&format!("\n  failures: {} ({next})", p.display()));
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
    fn counts_take_the_right_plural() {
        assert_eq!(counted(1, "retry"), "1 retry");
        assert_eq!(counted(3, "retry"), "3 retries");
        assert_eq!(counted(1, "429"), "1 429");
        assert_eq!(counted(0, "429"), "0 429s");
        assert_eq!(counted(2_000, "record"), "2,000 records");
    }

    fn counters(settled: [u64; 3], retries: u64, rate_limited: u64) -> Counters {
        let c = Counters::default();
        for (counter, n) in [&c.accepted, &c.failed, &c.invalid]
            .into_iter()
            .zip(settled)
        {
            Counters::add(counter, n);
        }
        Counters::add(&c.retries, retries);
        Counters::add(&c.rate_limited, rate_limited);
        c
    }

    /// Draws one frame on an in-memory terminal `width` columns wide; returns its lines.
    fn render(width: u16, frame: &Frame) -> Vec<String> {
        let term = indicatif::InMemoryTerm::new(10, width);
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        let r = Reporter::with_target(Some(target), false, false, 0, false, Some(1000));
        r.bar.set_position(370);
        r.show(frame, width.into(), &mut None);
        term.contents().lines().map(str::to_owned).collect()
    }

    #[test]
    fn the_bar_shows_every_count_within_80_and_120_columns() {
        let small = counters([120, 3, 1], 2, 1);
        let big = counters([1_234_000, 12_345, 222], 1_234, 56);
        for width in [80u16, 120] {
            for (c, accepted) in [(&small, "120 accepted"), (&big, "1,234,000 accepted")] {
                let frame = Frame::new(
                    c,
                    48.9,
                    Some((40.0, 50.0)),
                    Some((0.37, Some(Duration::from_secs(125)))),
                );
                let lines = render(width, &frame);
                let text = lines.join("\n");
                // A line the terminal wrapped would show as one more line.
                let expected = match frame.shape(width.into()) {
                    Shape::OneLine { .. } => 1,
                    Shape::TwoLines { .. } => 2,
                };
                assert_eq!(lines.len(), expected, "{width} columns:\n{text}");
                for part in [
                    "37% read, ETA 2m",
                    " done: ",
                    accepted,
                    " failed, ",
                    " invalid",
                    " retries, ",
                    " 429",
                    "48.9 req/s (pace 40.0/s)",
                ] {
                    assert!(text.contains(part), "{part:?} missing at {width}:\n{text}");
                }
            }
        }
        // The small counts fit one line at 120 columns; at 80 they take two.
        let frame = Frame::new(&small, 48.9, Some((50.0, 50.0)), Some((0.37, None)));
        assert_eq!(render(120, &frame).len(), 1);
        assert_eq!(render(80, &frame).len(), 2);
    }

    #[test]
    fn a_dry_run_shows_counts_only_and_stdin_has_no_bar() {
        let c = counters([7, 0, 2], 0, 0);
        let frame = Frame::new(&c, 0.0, None, None);
        assert_eq!(frame.one_line(), "9 done: 7 accepted, 0 failed, 2 invalid");
        assert_eq!(frame.shape(80), Shape::OneLine { bar: false });
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
    fn records_settled_out_of_order_are_told_as_spans_of_their_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = ledger(dir.path());
        // An input skipped whole, then one resumed after its first 10 records.
        l.begin_input(0, 0, 0);
        l.begin_input(1, 0, 10);
        for seq in [2, 3, 5] {
            l.settle(seq, Outcome::Accepted).unwrap();
        }
        l.settle_earlier(6);
        l.begin_input(2, 7, 0);
        l.settle(8, Outcome::Accepted).unwrap();
        let span = |input, from, to| Span { input, from, to };
        assert_eq!(
            l.settled_ahead(),
            [span(1, 12, 14), span(1, 15, 17), span(2, 1, 2)]
        );
        l.settle(0, Outcome::Accepted).unwrap();
        l.settle(1, Outcome::Accepted).unwrap();
        l.settle(4, Outcome::Accepted).unwrap();
        assert_eq!(
            l.position(),
            Position {
                input: 2,
                records: 0
            }
        );
        assert_eq!(l.settled_ahead(), [span(2, 1, 2)]);
        // Settling an earlier run's record counts nothing.
        assert_eq!(l.counters.settled(), 7);
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
