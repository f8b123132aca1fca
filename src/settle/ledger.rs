//! The Ledger: every record read is settled exactly once, as accepted, failed or invalid,
//! and the watermark tells how far everything is settled (what a checkpoint may skip).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::failures::FailuresFile;
use crate::report::{Counters, Tally};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub input: usize,
    pub records: u64,
}

/// Records `from..to` of `input` (numbered from its start), all settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    pub input: usize,
    pub from: u64,
    pub to: u64,
}

/// Settles records: counts them, writes failures, and tracks how far everything is settled.
pub struct Ledger {
    counters: Arc<Counters>,
    failures: FailuresFile,
    /// Records are numbered in reading order across all inputs; every number below this
    /// one is settled.
    next_unsettled: u64,
    /// Numbers settled out of order, above `next_unsettled`.
    ahead: BTreeSet<u64>,
    /// Per input: its first record number, and how many of its records a resume skipped.
    starts: Vec<(u64, u64)>,
    /// The number of the `--missing` sweep's first removal, once it has begun: the records
    /// from it on are removals, counted apart from `accepted`.
    removals: Option<u64>,
}

impl Ledger {
    pub fn new(counters: Arc<Counters>, failures_path: PathBuf, append: bool) -> Ledger {
        Ledger {
            counters,
            failures: FailuresFile::new(failures_path, append),
            next_unsettled: 0,
            ahead: BTreeSet::new(),
            starts: Vec::new(),
            removals: None,
        }
    }

    /// Called by the reader as it starts input `input` at record number `first`, having
    /// skipped `skipped` records of it that an earlier run settled.
    pub fn begin_input(&mut self, input: usize, first: u64, skipped: u64) {
        debug_assert_eq!(input, self.starts.len());
        self.starts.push((first, skipped));
    }

    /// Begins the `--missing` sweep, as [`Ledger::begin_input`] an input after the last.
    pub fn begin_removals(&mut self, input: usize, first: u64, skipped: u64) {
        self.begin_input(input, first, skipped);
        self.removals = Some(first);
    }

    pub fn settle(&mut self, seq: u64, outcome: Outcome) -> std::io::Result<()> {
        if let Outcome::Accepted = outcome
            && self.removals.is_some_and(|first| seq >= first)
        {
            Counters::add(&self.counters.missing, 1);
            self.mark(seq, 1);
            return Ok(());
        }
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
                self.failures.write(&line)?;
                Counters::add(&self.counters.failed, 1);
            }
            Outcome::Invalid(line) => {
                self.failures.write(&line)?;
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

    /// Settles `count` records numbered from `first` that were not sent, being the same as
    /// what the state holds as accepted: in runs, as [`Ledger::settle_accepted`].
    pub fn settle_unchanged(&mut self, first: u64, count: u64) {
        Counters::add(&self.counters.unchanged, count);
        self.mark(first, count);
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

    /// The counts of what is settled, as of the position and spans it tells now.
    pub fn tally(&self) -> Tally {
        self.counters.tally()
    }

    /// The failures file, for a sync or to say where failures went.
    pub fn failures(&self) -> &FailuresFile {
        &self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settle::failure_line;

    fn ledger(dir: &std::path::Path) -> Ledger {
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
        assert!(l.failures().written().is_none());
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
