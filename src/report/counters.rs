//! The live counts every stage adds to and the progress display reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
