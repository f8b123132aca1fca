//! The `--missing` sweep: after a complete read of a full export, the people the state holds
//! that the inputs no longer had become delete (or suppress) records, sent through the same
//! dispatcher, pacer, ledger and failures file as any; the `--max-missing` cap is checked
//! before the first.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use indicatif::HumanCount;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::delivery::Work;
use super::lock;
use crate::error::Fatal;
use crate::record::{Identifier, Operation};
use crate::report::{Counters, say};
use crate::send::Outgoing;
use crate::settle::Ledger;
use crate::state::{MaxMissing, Memo, Removal, State};

/// People read from the state at a time: the state is not held while they are sent.
const PAGE: usize = 1000;

/// `--missing delete|suppress` and its cap.
#[derive(Debug, Clone)]
pub(super) struct Sweep {
    pub removal: Removal,
    pub max: MaxMissing,
    /// `--missing delete`, as messages and the failures file name it.
    pub flag: String,
}

/// What the sweep sends through, and where its records are numbered.
pub(super) struct Removing<'a> {
    pub state: &'a Mutex<State>,
    pub ledger: &'a Mutex<Ledger>,
    pub counters: &'a Counters,
    /// None in a dry run: the sweep only counts.
    pub tx: Option<&'a mpsc::Sender<Work>>,
    pub stop: &'a CancellationToken,
    pub batch: bool,
    /// The sweep's place after the inputs, the record number it starts at, how many of its
    /// list's removals an earlier part of the run settled, and which later ones.
    pub input: usize,
    pub seq: u64,
    pub skipped: u64,
    pub later: &'a [Range<u64>],
}

impl Sweep {
    /// Removes the missing people, or refuses to when they are more than the cap allows.
    pub(super) fn remove(&self, at: Removing<'_>) -> Result<(), Fatal> {
        if let Some((rows, first)) = lock(at.state).unreadable_rows() {
            return Err(Fatal::State(format!(
                "{}: {} of this run's rows (the first: {first}) name no person that can be \
                 read, and anyone the state holds may be among them: nothing was removed. Give \
                 those rows their identifier (the failures file has them) and run again",
                self.flag,
                HumanCount(rows)
            )));
        }
        // A resume goes on through the list its earlier part made (and the cap allowed).
        if lock(at.state).sweep_len().map_err(Fatal::State)?.is_none() {
            let absent = lock(at.state).missing().map_err(Fatal::State)?;
            if absent.others > 0 {
                say::warning(format_args!(
                    "{}: {} people in the state that this run's inputs did not have were last \
                     met by another job (other inputs into the same --state), or not since an \
                     older cio-import wrote it: kept, as a sweep removes only the people its \
                     own job met",
                    self.flag,
                    HumanCount(absent.others)
                ));
            }
            let missing = absent.missing;
            self.max
                .allows(missing, absent.held, &self.flag)
                .map_err(|message| Fatal::TooManyMissing { message, missing })?;
            // A run that sends counts each removal as Customer.io accepts it.
            if at.tx.is_none() {
                Counters::add(&at.counters.missing, missing);
                return Ok(());
            }
            lock(at.state).make_sweep().map_err(Fatal::State)?;
        }
        let Some(tx) = at.tx else {
            return Ok(());
        };
        lock(at.ledger).begin_removals(at.input, at.seq, at.skipped);
        let source: Arc<str> = Arc::from(self.flag.as_str());
        let (mut from, mut seq) = (at.skipped, at.seq);
        let mut later = at.later.iter().peekable();
        loop {
            let page = lock(at.state)
                .sweep_page(from, PAGE)
                .map_err(Fatal::State)?;
            let Some(&(last, _)) = page.last() else {
                return Ok(());
            };
            from = last + 1;
            for (pos, name) in page {
                if at.stop.is_cancelled() {
                    return Ok(());
                }
                let this = seq;
                seq += 1;
                // Settled by the earlier part of the run while one before it waited.
                while later.next_if(|r| r.end <= pos).is_some() {}
                if later.peek().is_some_and(|r| r.contains(&pos)) {
                    lock(at.ledger).settle_earlier(this);
                    continue;
                }
                let out = self.operation(&name, at.batch)?;
                let work = Work {
                    seq: this,
                    source: source.clone(),
                    line: pos + 1,
                    memo: Memo::of(&out.op, &out.encoded),
                    out,
                };
                Counters::add(&at.counters.records, 1);
                if tx.blocking_send(work).is_err() {
                    // The dispatcher has stopped.
                    return Ok(());
                }
            }
        }
    }

    /// The removal of the person the state names `name` (`{"id":"42"}`).
    fn operation(&self, name: &str, batch: bool) -> Result<Outgoing, Fatal> {
        let broken = |why: String| {
            Fatal::State(format!(
                "--state: the person {name} cannot be read back ({why}): the file was changed \
                 by hand; remove that row or start a new state"
            ))
        };
        let person: Identifier = serde_json::from_str(name).map_err(|e| broken(e.to_string()))?;
        let op = match self.removal {
            Removal::Delete => Operation::Delete(person),
            Removal::Suppress => Operation::Suppress(person),
        };
        let encoded = if batch {
            op.encode_for_batch().map_err(|e| broken(e.message))?
        } else {
            Vec::new()
        };
        Ok(Outgoing { op, encoded })
    }
}
