//! One importer's copy of the adaptation shared through Redis: the events it heard apply
//! to its copy at once, and are replayed onto Redis's state when written, so that a write
//! computed from a stale state (another importer wrote first) is computed again from the
//! fresh one. One burst of 429s seen by several importers thus lowers the shared pace once:
//! a 429 for a request sent before the first slowdown only extends the pause. Also the
//! reading of Redis's clock from here, which the shared state's times are on.

use std::time::Duration;

use tokio::time::Instant;

use super::adapt::Adaptation;
use super::heard::{Event, Tally};

/// This importer's copy of the shared adaptation.
#[derive(Debug)]
pub struct Replica {
    /// `--rate`, for a state started afresh.
    max_rate: f64,
    /// Redis's state as last read or written, and its version there (none before the first
    /// read).
    base: Adaptation,
    version: Option<u64>,
    /// Events applied to `view` and not yet to Redis's state, oldest first.
    pending: Vec<Event>,
    /// `base` with `pending` applied: what this importer paces by.
    view: Adaptation,
    /// Its acceptances, and the others'.
    pub tally: Tally,
}

/// A write of the shared state: `state`, computed from version `from` and the first
/// `events` pending events.
#[derive(Debug, Clone)]
pub struct Write {
    pub from: u64,
    pub state: Adaptation,
    events: usize,
}

impl Replica {
    /// A copy not read yet, at `max_rate`.
    pub fn new(max_rate: f64) -> Replica {
        let base = Adaptation::new(max_rate, Duration::ZERO);
        Replica {
            max_rate,
            view: base.clone(),
            base,
            version: None,
            pending: Vec::new(),
            tally: Tally::default(),
        }
    }

    /// The adaptation as this importer sees it.
    pub fn view(&self) -> &Adaptation {
        &self.view
    }

    /// Applies `event` to the copy; whether it changed anything (and so is to be written).
    pub fn heed(&mut self, event: Event) -> bool {
        let before = self.view.clone();
        event.apply(&mut self.view);
        let changed = self.view != before;
        if changed {
            self.pending.push(event);
        }
        changed
    }

    /// Whether Redis's state, at `version`, is other than the one this copy was made from.
    pub fn stale(&self, version: u64) -> bool {
        self.version != Some(version)
    }

    /// Redis's state at `version` was read at `now` (none: it starts afresh).
    pub fn read(&mut self, version: u64, state: Option<Adaptation>, now: Duration) {
        self.base = state.unwrap_or_else(|| Adaptation::new(self.max_rate, now));
        self.version = Some(version);
        self.replay();
    }

    /// What to write, if anything: events that changed nothing on Redis's state are
    /// dropped.
    pub fn write(&mut self) -> Option<Write> {
        let from = self.version?;
        let mut state = self.base.clone();
        for e in &self.pending {
            e.apply(&mut state);
        }
        let write = Write {
            from,
            state,
            events: self.pending.len(),
        };
        if write.state == self.base {
            self.pending.clear();
            return None;
        }
        (write.events > 0).then_some(write)
    }

    /// `write` is Redis's state now, at `version`.
    pub fn written(&mut self, write: Write, version: u64) {
        if self.version != Some(write.from) {
            return;
        }
        self.base = write.state;
        self.version = Some(version);
        self.pending.drain(..write.events);
        self.replay();
    }

    fn replay(&mut self) {
        self.view = self.base.clone();
        for e in &self.pending {
            e.apply(&mut self.view);
        }
    }
}

/// Redis's clock read from here, through the reply that came back quickest lately: Redis
/// read its clock somewhere within the round trip, so the middle of the shortest one is the
/// nearest guess. A slow reply (a reconnect, a script reloaded) then neither sends a turn
/// early nor late.
#[derive(Debug, Default)]
pub struct RedisClock {
    sample: Option<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The middle of the round trip, and Redis's time then.
    mid: Instant,
    redis: Duration,
    round_trip: Duration,
}

/// How long the quickest reply stands for the offset between the clocks; then any reply
/// replaces it, so a clock that jumps is followed.
const SAMPLE_FOR: Duration = Duration::from_secs(10);

impl RedisClock {
    /// A reply asked at `asked` and answered at `answered` read `redis` on Redis's clock.
    pub fn observe(&mut self, asked: Instant, answered: Instant, redis: Duration) {
        let round_trip = answered.saturating_duration_since(asked);
        let fresh = Sample {
            mid: asked + round_trip / 2,
            redis,
            round_trip,
        };
        if self
            .sample
            .is_none_or(|s| round_trip <= s.round_trip || answered - s.mid > SAMPLE_FOR)
        {
            self.sample = Some(fresh);
        }
    }

    /// The time now on Redis's clock.
    pub fn now(&self) -> Duration {
        self.sample
            .map_or(Duration::ZERO, |s| s.redis + s.mid.elapsed())
    }

    /// When Redis's time `t` is on tokio's clock.
    pub fn local(&self, t: Duration) -> Instant {
        match self.sample {
            None => Instant::now(),
            Some(s) if t >= s.redis => s.mid + (t - s.redis),
            Some(s) => s.mid.checked_sub(s.redis - t).unwrap_or(s.mid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Permit;
    use super::*;

    /// Redis's state and its version, in memory.
    #[derive(Default)]
    struct Store {
        version: u64,
        state: Option<Adaptation>,
    }

    impl Store {
        /// Writes what `r` has to write unless another wrote first, reading the fresh
        /// state then and trying again, as the shared pacer does.
        fn sync(&mut self, r: &mut Replica, now: Duration) {
            loop {
                if r.stale(self.version) {
                    r.read(self.version, self.state.clone(), now);
                }
                let Some(w) = r.write() else { return };
                if w.from == self.version {
                    self.version += 1;
                    self.state = Some(w.state.clone());
                    r.written(w, self.version);
                    return;
                }
            }
        }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Three importers at 60/s between them, 10 s in, each having had 10 of the last
    /// second's 30 requests accepted; the permit each sent its last request with.
    fn three(store: &mut Store) -> Vec<(Replica, Permit)> {
        (0..3)
            .map(|_| {
                let mut r = Replica::new(60.0);
                store.sync(&mut r, secs(0.0));
                for i in 0..100 {
                    let at = secs(10.0 * f64::from(i) / 100.0);
                    let accepted = r.tally.accepted(at);
                    r.heed(accepted);
                }
                let permit = r.view().permit();
                (r, permit)
            })
            .collect()
    }

    #[test]
    fn a_burst_of_429s_seen_by_three_importers_lowers_the_shared_pace_once() {
        let mut store = Store::default();
        let mut importers = three(&mut store);
        // The others' counts, as Redis sums them.
        for (r, _) in &mut importers {
            let others = r.tally.own(secs(10.0)) + r.tally.own(secs(10.0));
            r.tally.set_others(others);
        }
        // Each sees a 429 for a request sent at the old pace, one after the other.
        for (i, (r, permit)) in importers.iter_mut().enumerate() {
            let now = secs(10.0 + 0.01 * i as f64);
            let limited = r.tally.limited(now, *permit, Some(secs(1.0)));
            r.heed(limited);
            store.sync(r, now);
        }
        // Once, from what all three accepted in the last second (30): to 95% of it.
        let state = store.state.clone().unwrap();
        assert_eq!(state.rate(), 30.0 * 0.95);
        // The last 429 extended the pause everyone keeps to.
        assert_eq!(state.paused_until(), Some(secs(11.02)));
        for (r, _) in &mut importers {
            store.sync(r, secs(10.1));
            assert_eq!(r.view(), &state);
        }
    }

    #[test]
    fn the_climb_back_is_shared_and_taken_once_a_second() {
        let mut store = Store::default();
        let mut importers = three(&mut store);
        let (r, permit) = &mut importers[0];
        let limited = r.tally.limited(secs(10.0), *permit, Some(secs(1.0)));
        r.heed(limited);
        store.sync(r, secs(10.0));
        let cut = store.state.as_ref().unwrap().rate();
        // Every importer asks for turns each 100 ms for 30 s.
        let mut climbs = 0;
        for tenth in 101..400 {
            let now = secs(f64::from(tenth) / 10.0);
            for (r, _) in &mut importers {
                store.sync(r, now);
                if r.heed(Event::Turn { now }) {
                    climbs += 1;
                }
                store.sync(r, now);
            }
        }
        let state = store.state.unwrap();
        assert!(state.rate() > cut, "{}", state.rate());
        // Held 10 s, then one climb a second, whoever took it: 20 from 20 s to 39.9 s.
        assert!((19..=20).contains(&climbs), "{climbs} climbs");
        // Every importer paces by the pace they climbed to together.
        for (r, _) in &importers {
            assert_eq!(r.view(), &state);
        }
    }

    #[test]
    fn a_write_from_a_stale_copy_is_computed_again_from_the_fresh_state() {
        let mut store = Store::default();
        let mut a = Replica::new(50.0);
        let mut b = Replica::new(50.0);
        store.sync(&mut a, secs(0.0));
        store.sync(&mut b, secs(0.0));
        // b halves the pace for failures; a, not knowing, halves it too: 12.5, not 25.
        b.heed(Event::Trouble {
            now: secs(1.0),
            streak: 5,
        });
        store.sync(&mut b, secs(1.0));
        a.heed(Event::Trouble {
            now: secs(1.0),
            streak: 5,
        });
        assert_eq!(a.view().rate(), 25.0);
        store.sync(&mut a, secs(1.0));
        assert_eq!(store.state.as_ref().unwrap().rate(), 12.5);
        assert_eq!(a.view().rate(), 12.5);
        // A restarted Redis (nothing kept): the state starts afresh at --rate.
        let mut fresh = Store::default();
        fresh.sync(&mut a, secs(2.0));
        assert_eq!(a.view().rate(), 50.0);
    }

    #[tokio::test(start_paused = true)]
    async fn redis_time_is_read_from_the_quickest_reply() {
        let mut clock = RedisClock::default();
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        // A 2 ms round trip: Redis's 1000 s is 1 ms in.
        clock.observe(t0, t0 + ms(2), ms(1_000_000));
        assert_eq!(clock.local(ms(1_000_000)), t0 + ms(1));
        // A slow reply (50 ms, its reading 40 ms in) does not move it.
        tokio::time::advance(ms(100)).await;
        let t1 = Instant::now();
        clock.observe(t1, t1 + ms(50), ms(1_000_141));
        assert_eq!(clock.local(ms(1_000_200)), t0 + ms(201));
        assert_eq!(clock.now(), ms(1_000_099));
        // After a while any reply does, so a clock that jumps is followed.
        tokio::time::advance(SAMPLE_FOR).await;
        let t2 = Instant::now();
        clock.observe(t2, t2 + ms(4), ms(5_000_000));
        assert_eq!(clock.local(ms(5_000_000)), t2 + ms(2));
    }
}
