//! Recent events: those Customer.io may still act on. An event (or page or screen view) from
//! the last 72 hours, or with no time of its own (it happens "now"), can trigger campaigns and
//! messages; older ones do not (Customer.io's "importing old data" guide). A run counts them
//! so its summary, and a dry run's, can say so before people get mail.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How far back an event can still trigger a campaign, in seconds.
pub const TRIGGER_WINDOW_SECS: i64 = 72 * 3600;

/// The count of an input's recent events, and the time from which an event is recent.
pub(super) struct Recent {
    since: i64,
    count: Arc<AtomicU64>,
}

impl Recent {
    pub fn new(now: i64, count: Arc<AtomicU64>) -> Recent {
        Recent {
            since: now - TRIGGER_WINDOW_SECS,
            count,
        }
    }

    /// Counts an event of this time (Unix seconds; None for none) if it is recent.
    pub fn note(&self, timestamp: Option<i64>) {
        if timestamp.is_none_or(|ts| ts >= self.since) {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Action;
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn events_of_the_last_72_hours_or_without_a_time_are_counted_once_each() {
        let now = 1_717_600_000;
        let count = Arc::new(AtomicU64::new(0));
        let mut m = csv_mapper(&spec(Action::Page), &["id", "name", "timestamp"]);
        m.count_recent_events(now, count.clone());
        let old = (now - TRIGGER_WINDOW_SECS - 1).to_string();
        let edge = (now - TRIGGER_WINDOW_SECS).to_string();
        for cells in [["1", "/a", &old[..]], ["1", "/b", &edge], ["1", "/c", ""]] {
            ok(&mut m, &row(&cells));
            m.validate(&row(&cells)).unwrap();
        }
        assert_eq!(count.load(Ordering::Relaxed), 2 * 2);
        // Nor are people counted.
        let mut people = csv_mapper(&spec(Action::Identify), &["id"]);
        people.count_recent_events(now, count.clone());
        ok(&mut people, &row(&["1"]));
        assert_eq!(count.load(Ordering::Relaxed), 4);
    }
}
