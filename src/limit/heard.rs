//! What a pacer heard, as values the rules of [`Adaptation`] take: each answer counted
//! against the acceptances logged, so both pacers feed the rules alike. The local pacer
//! applies an event to its adaptation at once; the shared one to its copy of the state in
//! Redis, and again to a fresher state when another importer changed it first.

use std::time::Duration;

use super::Permit;
use super::adapt::{AcceptLog, Accepted, Adaptation};

/// Something the rules act on, at `now` on the adaptation's time.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// A request was accepted; what was accepted lately, counting it.
    Accepted { now: Duration, accepted: Accepted },
    /// A 429 for the request sent with `permit`.
    Limited {
        now: Duration,
        permit: Permit,
        accepted: Accepted,
        retry_after: Option<Duration>,
    },
    /// A 5xx or network failure, the `streak`th in a row.
    Trouble { now: Duration, streak: u32 },
    /// A turn is asked for: the pace may climb.
    Turn { now: Duration },
    /// The lowest `--rate` of the importers sharing the pace.
    MaxRate { max_rate: f64 },
}

impl Event {
    /// Applies the rules to `a`; the pace they set, if they set one.
    pub fn apply(self, a: &mut Adaptation) -> Option<f64> {
        match self {
            Event::Accepted { now, accepted } => a.on_accepted(now, accepted),
            Event::Limited {
                now,
                permit,
                accepted,
                retry_after,
            } => a.on_rate_limited(now, permit, accepted, retry_after),
            Event::Trouble { now, streak } => a.on_trouble(now, streak),
            Event::Turn { now } => a.climb(now),
            Event::MaxRate { max_rate } => a.set_max_rate(max_rate),
        }
    }
}

/// The acceptances a pacer counts: its own, logged here, and those the other importers
/// sharing its pace reported (none for the local pacer).
#[derive(Debug, Default)]
pub struct Tally {
    own: AcceptLog,
    others: Accepted,
}

impl Tally {
    /// A request of ours accepted at `now`.
    pub fn accepted(&mut self, now: Duration) -> Event {
        let own = self.own.accepted(now);
        Event::Accepted {
            now,
            accepted: own + self.others,
        }
    }

    /// A 429 at `now` for the request sent with `permit`.
    pub fn limited(
        &mut self,
        now: Duration,
        permit: Permit,
        retry_after: Option<Duration>,
    ) -> Event {
        Event::Limited {
            now,
            permit,
            accepted: self.own.counts(now) + self.others,
            retry_after,
        }
    }

    /// What this importer accepted in the windows that end at `now`, to report to the others.
    pub fn own(&mut self, now: Duration) -> Accepted {
        self.own.counts(now)
    }

    /// What the other importers reported last.
    pub fn set_others(&mut self, others: Accepted) {
        self.others = others;
    }
}
