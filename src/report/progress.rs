//! The progress display: the one owner of stderr while a run goes (the bar, or plain lines
//! when stderr is not a terminal), with warnings and logs drawn above it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use console::Term;
use indicatif::{HumanCount, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Counters, counted, say};

/// `--progress`: when the live display is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal; otherwise a plain line every 5 seconds.
    Auto,
    /// The bar even when stderr is not a terminal (a CI log that renders ANSI, say).
    Always,
    /// No progress; the summary still prints at the end.
    Never,
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
/// The pace of the run, for the time left, is over this long (or since the run began).
const ETA_WINDOW: Duration = Duration::from_secs(30);

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
            self.bar.suspend(|| say::warning(msg.as_ref()));
        }
    }

    /// A verbose log line (-v), above the bar.
    pub fn log(&self, msg: impl AsRef<str>) {
        self.bar.suspend(|| say::say(msg.as_ref()));
    }

    /// Draws until `done` is cancelled: the bar on a terminal, a plain line every few
    /// seconds otherwise. `pace` is the pacer's current rate (None in a dry run), `held`
    /// why it gives no turn now, when it says.
    pub async fn draw(
        &self,
        counters: Arc<Counters>,
        pace: impl Fn() -> Option<f64>,
        held: impl Fn() -> Option<String>,
        done: tokio_util::sync::CancellationToken,
    ) {
        let start = Instant::now();
        let mut last_plain = Instant::now();
        let mut window: VecDeque<(Instant, u64)> = Default::default();
        let mut eta = Eta::default();
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
            let read = self.fraction_and_eta(now, &counters, &mut eta);
            let mut frame = Frame::new(&counters, req_rate, pace.map(|p| (p, top)), read);
            if let Some(why) = held() {
                frame.held(&why);
            }
            if self.plain {
                if now.duration_since(last_plain) >= PLAIN_EVERY {
                    last_plain = now;
                    say::say(format_args!(
                        "{:.0}s: {}",
                        now.duration_since(start).as_secs_f64(),
                        frame.one_line()
                    ));
                }
            } else if !self.bar.is_hidden() {
                let width = usize::from(Term::stderr().size().1);
                self.show(&frame, width, &mut shape);
            }
        }
        self.bar.finish_and_clear();
    }

    /// How much of the input is read, and the time left, when the input's size is known.
    fn fraction_and_eta(
        &self,
        now: Instant,
        counters: &Counters,
        eta: &mut Eta,
    ) -> Option<(f64, Option<Duration>)> {
        let len = self.bar.length().filter(|&n| n > 0)?;
        let read = Read {
            total_bytes: len,
            bytes: self.bar.position().min(len),
            records: Counters::get(&counters.records),
            settled: counters.settled(),
        };
        Some((read.bytes as f64 / len as f64, eta.left(now, &read)))
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

/// Where a run is, for the time left.
#[derive(Debug, Clone, Copy)]
struct Read {
    /// The input's size, and how much of it is read.
    total_bytes: u64,
    bytes: u64,
    /// Records read, and settled; on a resumed run both count what the earlier part settled.
    records: u64,
    settled: u64,
}

impl Read {
    /// The time left at `per_second` records settled: the records read and not settled yet,
    /// and those the unread bytes hold at the bytes a record so far. None before anything
    /// is read, and once everything is: the reader runs a buffer ahead, and the records of
    /// a buffer read but not parsed are not counted yet.
    fn time_left(&self, per_second: f64) -> Option<Duration> {
        if self.bytes == 0 || self.bytes >= self.total_bytes || self.records == 0 {
            return None;
        }
        let per_byte = self.records as f64 / self.bytes as f64;
        let unread = (self.total_bytes - self.bytes) as f64 * per_byte;
        let left = self.records.saturating_sub(self.settled) as f64 + unread;
        (per_second > 0.0).then(|| Duration::from_secs_f64(left / per_second))
    }
}

/// The time left, from the pace of this run: records settled over the last [`ETA_WINDOW`]
/// of it. A resumed run starts from the checkpoint's counts and reads past what was settled
/// at once, so neither the counts nor the bytes read since it began say how fast it goes.
#[derive(Debug, Default)]
struct Eta {
    /// Records settled at each look, oldest first.
    settled: VecDeque<(Instant, u64)>,
}

impl Eta {
    /// Notes `read` at `now`; the time left.
    fn left(&mut self, now: Instant, read: &Read) -> Option<Duration> {
        self.settled.push_back((now, read.settled));
        while self.settled.len() > 2 && now.duration_since(self.settled[1].0) >= ETA_WINDOW {
            self.settled.pop_front();
        }
        let (since, from) = *self.settled.front()?;
        let took = now.duration_since(since).as_secs_f64();
        let per_second = (took > 0.0).then(|| read.settled.saturating_sub(from) as f64 / took)?;
        read.time_left(per_second)
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
        let mut counts = format!(
            "{} done: {} accepted, {} failed, {} invalid",
            HumanCount(c.settled()),
            HumanCount(Counters::get(&c.accepted)),
            HumanCount(Counters::get(&c.failed)),
            HumanCount(Counters::get(&c.invalid)),
        );
        // Only an incremental sync (`--state`) skips records as unchanged.
        let unchanged = Counters::get(&c.unchanged);
        if unchanged > 0 {
            counts.push_str(&format!(", {} unchanged", HumanCount(unchanged)));
        }
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

    /// Adds why sending waits to the flow: `48.9 req/s · ... · waiting for Redis (12 s of 60)`.
    fn held(&mut self, why: &str) {
        self.flow = Some(join([self.flow.as_deref(), Some(why)]));
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_time_left_is_the_records_left_at_the_pace_given() {
        // 1,000 of 10,000 bytes read hold 100 records, 40 of them settled: 60 read and about
        // 900 unread are left, 96 s at 10 a second.
        let read = Read {
            total_bytes: 10_000,
            bytes: 1_000,
            records: 100,
            settled: 40,
        };
        assert_eq!(read.time_left(10.0), Some(Duration::from_secs(96)));
        assert_eq!(read.time_left(0.0), None);
        let nothing = Read {
            bytes: 0,
            records: 0,
            settled: 0,
            ..read
        };
        assert_eq!(nothing.time_left(10.0), None);
        let everything = Read {
            bytes: 10_000,
            ..read
        };
        assert_eq!(everything.time_left(10.0), None);
    }

    #[test]
    fn a_resumed_run_takes_the_time_left_from_its_own_pace() {
        // 20,000 records of 75 bytes; the run stopped after 10,000, and --resume starts from
        // them (read and settled), reads past them at once, then settles 50 a second with the
        // reader 200 records ahead: 200 s left at first.
        const BYTES: u64 = 75;
        let start = Instant::now();
        let mut eta = Eta::default();
        let resumed = |done: u64, ahead: u64| Read {
            total_bytes: 20_000 * BYTES,
            bytes: (10_000 + done + ahead) * BYTES,
            records: 10_000 + done + ahead,
            settled: 10_000 + done,
        };
        assert_eq!(eta.left(start, &resumed(0, 0)), None);
        for tick in 1..=190u64 {
            let at = start + Duration::from_secs(tick);
            let done = 50 * tick;
            let left = eta.left(at, &resumed(done, 200)).unwrap().as_secs_f64();
            let truth = (10_000 - done) as f64 / 50.0;
            assert!(
                (left - truth).abs() <= 1.0,
                "{tick} s in: {left:.1} s left, truly {truth:.1}"
            );
        }
    }

    #[test]
    fn a_dry_run_shows_counts_only_and_stdin_has_no_bar() {
        let c = counters([7, 0, 2], 0, 0);
        let frame = Frame::new(&c, 0.0, None, None);
        assert_eq!(frame.one_line(), "9 done: 7 accepted, 0 failed, 2 invalid");
        assert_eq!(frame.shape(80), Shape::OneLine { bar: false });
    }
}
