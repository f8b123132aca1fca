//! The live counts every stage adds to and the progress display reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The settled counts at one moment: a checkpoint keeps them, so that a resumed run's
/// counts, summary and exit code are the whole run's, not only the part after the stop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub accepted: u64,
    pub failed: u64,
    pub invalid: u64,
    /// Skipped as unchanged since the last run (`--state`); left out when none were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unchanged: u64,
    /// People removed as missing (`--missing`), accepted; left out when none were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub removed: u64,
    /// Of the invalid, rows that could not be read (`_raw` lines); left out when none were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unreadable: u64,
    /// The requests made so far, their retries and 429s: a resumed run's summary counts
    /// the earlier part's too, as it does its records. Left out when none were (and in
    /// older checkpoints).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requests: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rate_limited: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Live counts, shared by every stage; read by the progress display.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records read (valid or not).
    pub records: AtomicU64,
    pub accepted: AtomicU64,
    pub failed: AtomicU64,
    pub invalid: AtomicU64,
    /// Of those, rows that could not be read: their failures lines are `_raw`, which a replay
    /// cannot map.
    pub unreadable: AtomicU64,
    /// Not sent: the same as what the state holds as accepted (`--state`).
    pub unchanged: AtomicU64,
    /// People the state held that the inputs no longer have, removed (`--missing`): counted
    /// as Customer.io accepts each removal, apart from `accepted`; in a dry run, those that
    /// would be.
    pub missing: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Of `accepted`, those an earlier part of the run settled (a resume's): the rate told
    /// is this part's, over this part's time.
    pub accepted_before: AtomicU64,
    /// Raw input bytes read, for the ETA.
    pub bytes: Arc<AtomicU64>,
    /// Events (and page and screen views) read that can still trigger campaigns: from the
    /// last 72 hours, or without a time. Counted by each input's mapper.
    pub recent_events: Arc<AtomicU64>,
    /// Attribute values over 1,000 bytes that `--oversize` dropped or cut.
    pub oversized: AtomicU64,
    /// Of those, the ones cut (`--oversize truncate`; the rest were left out).
    pub oversized_cut: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    pub fn settled(&self) -> u64 {
        Self::get(&self.accepted)
            + Self::get(&self.failed)
            + Self::get(&self.invalid)
            + Self::get(&self.unchanged)
            + Self::get(&self.missing)
    }

    pub fn tally(&self) -> Tally {
        Tally {
            accepted: Self::get(&self.accepted),
            failed: Self::get(&self.failed),
            invalid: Self::get(&self.invalid),
            unchanged: Self::get(&self.unchanged),
            removed: Self::get(&self.missing),
            unreadable: Self::get(&self.unreadable),
            requests: Self::get(&self.requests),
            retries: Self::get(&self.retries),
            rate_limited: Self::get(&self.rate_limited),
        }
    }

    /// Starts from what an earlier part of the run settled (and so read).
    pub fn carry(&self, earlier: Tally) {
        Self::add(&self.accepted, earlier.accepted);
        Self::add(&self.accepted_before, earlier.accepted);
        Self::add(&self.failed, earlier.failed);
        Self::add(&self.invalid, earlier.invalid);
        Self::add(&self.unchanged, earlier.unchanged);
        Self::add(&self.missing, earlier.removed);
        Self::add(&self.unreadable, earlier.unreadable);
        Self::add(&self.requests, earlier.requests);
        Self::add(&self.retries, earlier.retries);
        Self::add(&self.rate_limited, earlier.rate_limited);
        Self::add(
            &self.records,
            earlier.accepted
                + earlier.failed
                + earlier.invalid
                + earlier.unchanged
                + earlier.removed,
        );
    }
}
