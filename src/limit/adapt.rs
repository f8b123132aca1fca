//! Adapting the pace to what the server accepts, as clock-free arithmetic: which 429s are
//! evidence of a limit, the drop they cause, the shared pause, the hold, the climb back and
//! the slowdown on trouble. Every method takes `now` (time since an origin the pacer picks)
//! and the counts the pacer kept, so a pacer on any clock, or one that keeps this state in a
//! shared store, runs the same rules.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Permit;

/// The slowest pace adaptation goes to: one request every ten seconds.
const MIN_RATE: f64 = 0.1;
/// After a drop for a limit, hold the new pace this long before climbing.
pub(super) const HOLD: Duration = Duration::from_secs(10);
/// How often the pace may climb.
pub(super) const CLIMB_EVERY: Duration = Duration::from_secs(1);
/// The window over which accepted requests are counted to learn the server's limit: in the
/// second before a 429 that a per-second limit gave, the server accepted that limit.
pub(super) const ACCEPT_WINDOW: Duration = Duration::from_secs(1);
/// The longer window over which accepted requests are also counted. A second that held a
/// pause says little of the limit (the server accepted little because little was sent);
/// this one says whether the server takes about the pace or well under it.
pub(super) const EVIDENCE_WINDOW: Duration = Duration::from_secs(10);
/// Over [`EVIDENCE_WINDOW`], leaving out our own pauses, a server whose limit L is under the
/// pace R and whose 429s say to wait a second accepts L requests a cycle of L/R + 1 s: less
/// than half the pace. Stray 429s leave nearly all that was sent while not paused.
const LIMITED_SHARE: f64 = 0.5;
/// After a 429 the pace is set this far below what the server accepted, so the next
/// window has room.
const BELOW_ACCEPTED: f64 = 0.95;
/// A 429 after a second in which the server accepted within this factor of the pace was met
/// creeping up on the limit.
const CREEPING: f64 = 1.1;
/// Climbing back after a 429, the pace stops this far under the limit it learned ...
pub(super) const UNDER_CEILING: f64 = 0.97;
/// ... until this long after the 429, then probes past it in case the limit rose. A 429
/// costs a pause of a second or so: meeting one a minute rather than every 20 s took the
/// goodput at a fixed limit from about 91% to about 95% (bench/ratelimit.rs).
pub(super) const PROBE_AFTER: Duration = Duration::from_secs(60);
/// The server accepting this much more in a second than it had in the second before the
/// 429 a limit was learned from (and at least [`REFUTED_BY`] more) shows that 429 was none.
const REFUTED: f64 = 1.2;
const REFUTED_BY: f64 = 2.0;
/// The pause after a 429 without Retry-After; it doubles with each 429 in a row (no
/// acceptance between), up to [`MAX_PAUSE`]. Short, because every stray 429 costs everyone
/// this pause: at a second each, one request in a hundred answered 429 would cost a third
/// of a 50/s pace.
pub(super) const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// A streak of this many 5xx or network failures halves the pace.
pub(super) const TROUBLE_STREAK: u32 = 5;

/// What the server accepted lately, as the pacer counted it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Requests accepted in the last `ACCEPT_WINDOW`.
    pub last_second: u32,
    /// Requests accepted in the last `EVIDENCE_WINDOW`.
    pub lately: u32,
}

impl std::ops::Add for Accepted {
    type Output = Accepted;
    fn add(self, other: Accepted) -> Accepted {
        Accepted {
            last_second: self.last_second.saturating_add(other.last_second),
            lately: self.lately.saturating_add(other.lately),
        }
    }
}

/// When the requests of the last [`EVIDENCE_WINDOW`] were accepted, oldest first: how a
/// pacer that keeps them itself counts [`Accepted`].
#[derive(Debug, Default)]
pub struct AcceptLog(VecDeque<Duration>);

impl AcceptLog {
    /// A request accepted at `now`; what was accepted lately, counting it.
    pub fn accepted(&mut self, now: Duration) -> Accepted {
        self.0.push_back(now);
        self.counts(now)
    }

    /// What was accepted in the windows that end at `now`.
    pub fn counts(&mut self, now: Duration) -> Accepted {
        let within = |t: &Duration, window| now.saturating_sub(*t) <= window;
        while self.0.front().is_some_and(|t| !within(t, EVIDENCE_WINDOW)) {
            self.0.pop_front();
        }
        let older = self.0.partition_point(|t| !within(t, ACCEPT_WINDOW));
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Accepted {
            last_second: count(self.0.len() - older),
            lately: count(self.0.len()),
        }
    }
}

/// The pace and what it learned. Methods that may change the pace return it when they set
/// it: the pacer then restarts its schedule at that pace. Serialized, it is the state the
/// importers sharing a schedule keep in Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adaptation {
    /// `--rate`: the pace never goes above it.
    max_rate: f64,
    rate: f64,
    /// Bumped on every slowdown; a 429 for a request sent in an older epoch only extends
    /// the pause, so one burst of 429s slows the pace once, not once per request.
    epoch: u64,
    /// When it started: the long window never reaches back before it.
    start: Duration,
    paused_until: Option<Duration>,
    /// Our own pauses (for 429s without Retry-After) of the last [`EVIDENCE_WINDOW`], from
    /// and until: time the server was not sent to by our choice, not by its limit.
    own_pauses: VecDeque<(Duration, Duration)>,
    /// What the last 429 taken as evidence of a limit showed.
    learned: Option<Learned>,
    /// The count the last limit was learned from, kept when a stray made it forgotten:
    /// learning the same count again confirms it.
    last_limit: Option<f64>,
    /// After a 429: the pace to climb no higher than, and until when.
    hold: Option<(f64, Duration)>,
    last_change: Duration,
    last_slowdown: Option<Duration>,
    consecutive_429: u32,
}

/// A limit learned from a 429.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Learned {
    /// What the server accepted in the second before that 429. A 429 after a second of
    /// sending under it, or the server accepting well more in a second, shows it was none.
    accepted: f64,
    /// The pace before the drop, to go back to when it was no limit.
    before: f64,
    /// Near it the climb slows: what the server accepted, or the pace itself when it was
    /// creeping up on that.
    ceiling: f64,
    /// Met creeping up on the limit: the server accepted about the pace, which says little
    /// of where its limit is.
    creeping: bool,
    /// Learned twice at the same count: a stray under it does not make it forgotten.
    confirmed: bool,
}

/// Whether two counts of a second are the same limit: within a tenth.
fn same_count(a: f64, b: f64) -> bool {
    (a - b).abs() <= a.max(b) * 0.1
}

impl Adaptation {
    /// Starts at `max_rate`, the fastest it will go.
    pub fn new(max_rate: f64, now: Duration) -> Adaptation {
        Adaptation {
            max_rate,
            rate: max_rate,
            epoch: 0,
            start: now,
            paused_until: None,
            own_pauses: VecDeque::new(),
            learned: None,
            last_limit: None,
            hold: None,
            last_change: now,
            last_slowdown: None,
            consecutive_429: 0,
        }
    }

    /// The current pace, in requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// How many times the pace was lowered (for a limit or for failures).
    pub fn slowdowns(&self) -> u64 {
        self.epoch
    }

    /// Until when everyone waits after a 429 (it may be past).
    pub fn paused_until(&self) -> Option<Duration> {
        self.paused_until
    }

    /// Makes `max_rate` the fastest it goes (the lowest `--rate` among the importers
    /// sharing it), slowing to it at once when faster.
    pub fn set_max_rate(&mut self, max_rate: f64) -> Option<f64> {
        self.max_rate = max_rate;
        (self.rate > max_rate).then(|| {
            self.rate = max_rate;
            max_rate
        })
    }

    /// Marks a request sent now with the current pace.
    pub fn permit(&self) -> Permit {
        Permit { epoch: self.epoch }
    }

    /// A request was accepted, `accepted` counting it: the next 429 without Retry-After
    /// pauses from the start again, and when the server took well more in the last second
    /// than the limit the pace learned, that was no limit and the pace goes back.
    pub fn on_accepted(&mut self, now: Duration, accepted: Accepted) -> Option<f64> {
        self.consecutive_429 = 0;
        self.refute(now, accepted)
    }

    /// A 429 for the request sent with `permit`, with what the pacer counted accepted:
    /// everyone pauses until `retry_after` (or a pause of our own when the server gave none),
    /// and when the 429 is evidence of a limit the pace drops to what the server accepted.
    ///
    /// Evidence is a 429 after a full second of sending (no pause within it); one when the
    /// server accepted under half the pace over `EVIDENCE_WINDOW`; or one right after a
    /// pause when the server stopped at the count it stopped at before. Any other 429 costs
    /// the pause alone, and one after a full second of sending under the limit learned
    /// shows that limit was none (unless it was learned twice).
    pub fn on_rate_limited(
        &mut self,
        now: Duration,
        permit: Permit,
        accepted: Accepted,
        retry_after: Option<Duration>,
    ) -> Option<f64> {
        self.consecutive_429 = self.consecutive_429.saturating_add(1);
        let pause = retry_after.unwrap_or_else(|| {
            FIRST_PAUSE
                .saturating_mul(1 << (self.consecutive_429 - 1).min(16))
                .min(MAX_PAUSE)
        });
        // A pause that ended (or goes on) within the last second leaves its count short.
        let clean = self
            .paused_until
            .is_none_or(|p| now.saturating_sub(p) >= ACCEPT_WINDOW);
        let until = now + pause;
        if retry_after.is_none() {
            let from = self.paused_until.map_or(now, |p| p.max(now));
            self.own_pauses.push_back((from, until.max(from)));
            let old = now.saturating_sub(EVIDENCE_WINDOW);
            while self.own_pauses.front().is_some_and(|&(_, e)| e <= old) {
                self.own_pauses.pop_front();
            }
        }
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        if permit.epoch != self.epoch {
            return None;
        }
        if let Some(back) = self.refute(now, accepted) {
            return Some(back);
        }
        let rate = self.rate;
        let last_second = f64::from(accepted.last_second);
        let sending = self.sending(now);
        if sending >= 2 * ACCEPT_WINDOW
            && f64::from(accepted.lately) / sending.as_secs_f64() < rate * LIMITED_SHARE
        {
            return Some(self.limit_at(last_second, false, now));
        }
        let held = self
            .learned
            .is_some_and(|l| rate <= l.accepted * UNDER_CEILING);
        if clean && held {
            // Under a limit the server never answers 429: that was a stray, or the limit
            // moved. Forgotten, unless the server showed the same limit twice.
            if !self.learned.is_some_and(|l| l.confirmed) {
                self.forget();
            }
            return None;
        }
        // Right after a pause a count says little, unless the server stopped where it
        // stopped before (a count met creeping up says nothing of where that is).
        let again = self.learned.is_some_and(|l| {
            !l.creeping && l.accepted > 0.0 && same_count(l.accepted, last_second)
        });
        (clean || (again && !held)).then(|| self.limit_at(last_second, clean, now))
    }

    /// A 5xx or network failure; `streak` is how many came in a row across all workers.
    pub fn on_trouble(&mut self, now: Duration, streak: u32) -> Option<f64> {
        (streak > 0 && streak.is_multiple_of(TROUBLE_STREAK))
            .then(|| self.slow_down(self.rate * 0.5, now))
    }

    /// Climbs back toward `--rate` while no 429 comes: quickly far below the learned limit,
    /// slowly near it, and not past `UNDER_CEILING` of it for `PROBE_AFTER` after the 429,
    /// so a server with a fixed limit sees few 429s. At most once every `CLIMB_EVERY`.
    pub fn climb(&mut self, now: Duration) -> Option<f64> {
        if self.rate >= self.max_rate
            || now.saturating_sub(self.last_change) < CLIMB_EVERY
            || self
                .last_slowdown
                .is_some_and(|t| now.saturating_sub(t) < HOLD)
        {
            return None;
        }
        let ceiling = self.learned.map(|l| l.ceiling);
        let step = match ceiling {
            None => self.max_rate * 0.10,
            Some(c) if self.rate < 0.9 * c => c * 0.05,
            Some(c) => c * 0.005,
        };
        let mut new = self.rate + step;
        if let Some((hold, until)) = self.hold
            && now < until
        {
            new = new.min(hold);
            if new <= self.rate {
                return None;
            }
        }
        if ceiling.is_some_and(|c| new > c * 1.2) {
            // Well past the last 429's pace without another: the limit has moved.
            self.learned = None;
            self.last_limit = None;
        }
        Some(self.set_rate(new, now))
    }

    /// Drops the pace for a limit at `accepted` a second (what the server accepted in the
    /// second before the 429); `clean` when that was a full second of sending, so a count
    /// near the pace means the 429 was met creeping up on the limit.
    fn limit_at(&mut self, accepted: f64, clean: bool, now: Duration) -> f64 {
        let rate = self.rate;
        let new = (accepted * BELOW_ACCEPTED).clamp(rate * 0.25, rate * BELOW_ACCEPTED);
        // The limit is near what the server accepted, not the pace that outran it: climbing
        // fast back toward that pace only meets the next 429 sooner. But a 429 met creeping
        // up on the limit puts it just under that pace (a second's count is a whole number, a
        // request or so below it), and never below a limit learned before: right at that
        // limit a stray 429 is as likely as a real one.
        let creeping = clean && rate <= accepted * CREEPING;
        let ceiling = if creeping {
            self.learned.map_or(rate, |l| l.ceiling.max(rate))
        } else {
            accepted.clamp(new, rate)
        };
        self.learned = Some(Learned {
            accepted,
            before: rate,
            ceiling,
            creeping,
            confirmed: !creeping && self.last_limit.is_some_and(|l| same_count(l, accepted)),
        });
        if !creeping {
            self.last_limit = Some(accepted);
        }
        // Only a hold above the new pace means anything: when the server accepted next to
        // nothing, the pace climbs slowly from the cut instead.
        let hold = ceiling * UNDER_CEILING;
        self.hold = (hold > new).then_some((hold, now + PROBE_AFTER));
        self.slow_down(new, now)
    }

    /// When the server accepted well more in the last second than the limit learned, that
    /// was none: it is forgotten, and the pace goes back to where it was before the drop.
    fn refute(&mut self, now: Duration, accepted: Accepted) -> Option<f64> {
        let learned = self.learned?;
        let threshold = (learned.accepted * REFUTED).max(learned.accepted + REFUTED_BY);
        if f64::from(accepted.last_second) < threshold {
            return None;
        }
        self.forget();
        self.last_limit = None;
        (learned.before > self.rate).then(|| self.set_rate(learned.before, now))
    }

    /// How much of the last [`EVIDENCE_WINDOW`] (since the start) was not our own pause.
    fn sending(&self, now: Duration) -> Duration {
        let from = now.saturating_sub(EVIDENCE_WINDOW).max(self.start);
        let own: Duration = self
            .own_pauses
            .iter()
            .map(|&(s, e)| e.min(now).saturating_sub(s.max(from)))
            .sum();
        now.saturating_sub(from).saturating_sub(own)
    }

    /// Forgets the limit learned, its hold, and the wait before the climb.
    fn forget(&mut self) {
        self.learned = None;
        self.hold = None;
        self.last_slowdown = None;
    }

    fn set_rate(&mut self, rate: f64, now: Duration) -> f64 {
        self.rate = rate.clamp(MIN_RATE.min(self.max_rate), self.max_rate);
        self.last_change = now;
        self.rate
    }

    fn slow_down(&mut self, rate: f64, now: Duration) -> f64 {
        self.epoch += 1;
        self.last_slowdown = Some(now);
        self.set_rate(rate, now)
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::{Seen, Server};
    use super::*;

    /// `n` accepted in the last second, and none before it.
    fn acc(n: u32) -> Accepted {
        Accepted {
            last_second: n,
            lately: n,
        }
    }

    /// `last_second` accepted in the last second, `lately` in the last ten.
    fn counts(last_second: u32, lately: u32) -> Accepted {
        Accepted {
            last_second,
            lately,
        }
    }

    /// A 429 at `at` seconds for a request sent at the current pace, without Retry-After.
    fn stray(a: &mut Adaptation, at: f64, accepted: Accepted) -> Option<f64> {
        let permit = a.permit();
        a.on_rate_limited(secs(at), permit, accepted, None)
    }

    /// What a pacer does, on plain numbers: sends to `server` for `run` at the pace `a`
    /// sets, one request at a time, each answered at once.
    fn drive(a: &mut Adaptation, server: &mut Server, run: Duration) -> Seen {
        let mut log = AcceptLog::default();
        let mut seen = Seen::default();
        let mut now = Duration::ZERO;
        while now < run {
            now = now.max(a.paused_until().unwrap_or_default());
            a.climb(now);
            let permit = a.permit();
            match server.answer(now) {
                Ok(()) => {
                    seen.accepted += 1;
                    a.on_accepted(now, log.accepted(now));
                }
                Err(retry_after) => {
                    seen.limited += 1;
                    a.on_rate_limited(now, permit, log.counts(now), retry_after);
                }
            }
            now += Duration::from_secs_f64(1.0 / a.rate());
        }
        Seen { took: now, ..seen }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// At `rate`, a 429 one second in, after `accepted` in the last second (Retry-After 1 s).
    fn limited(rate: f64, accepted: usize) -> Adaptation {
        let mut a = Adaptation::new(rate, Duration::ZERO);
        let permit = a.permit();
        assert!(
            a.on_rate_limited(secs(1.0), permit, acc(accepted as u32), Some(secs(1.0)))
                .is_some()
        );
        a
    }

    /// Climbs once a second from `from` (exclusive) to `to` seconds; the pace after each.
    fn climb_each_second(a: &mut Adaptation, from: u64, to: u64) -> Vec<f64> {
        (from + 1..=to)
            .map(|s| {
                a.climb(Duration::from_secs(s));
                a.rate()
            })
            .collect()
    }

    #[test]
    fn a_429_drops_the_pace_to_95_percent_of_what_was_accepted() {
        assert_eq!(limited(50.0, 30).rate(), 30.0 * 0.95);
        // No lower than a quarter of the pace, no higher than 95% of it.
        assert_eq!(limited(50.0, 2).rate(), 12.5);
        assert_eq!(limited(50.0, 0).rate(), 12.5);
        assert_eq!(limited(50.0, 100).rate(), 47.5);
    }

    #[test]
    fn one_burst_of_429s_slows_the_pace_once() {
        let mut a = Adaptation::new(50.0, Duration::ZERO);
        let old = a.permit();
        assert_eq!(a.on_rate_limited(secs(1.0), old, acc(30), None), Some(28.5));
        // Sent at the old pace: the pause grows, the pace stays.
        assert_eq!(
            a.on_rate_limited(secs(1.5), old, acc(10), Some(secs(5.0))),
            None
        );
        assert_eq!(a.rate(), 28.5);
        assert_eq!(a.paused_until(), Some(secs(6.5)));
        // Sent at the new pace, when the server took under half of it over the time it
        // was sent to: it slows again.
        let new = a.permit();
        assert_eq!(a.on_rate_limited(secs(3.0), new, acc(20), None), Some(19.0));
    }

    #[test]
    fn the_pause_is_retry_after_else_doubles_until_an_acceptance() {
        let mut a = Adaptation::new(10.0, Duration::ZERO);
        assert_eq!(a.paused_until(), None);
        let pause_at = |a: &mut Adaptation, at: f64, retry_after: Option<Duration>| {
            let permit = a.permit();
            a.on_rate_limited(secs(at), permit, acc(5), retry_after);
            a.paused_until().unwrap() - secs(at)
        };
        assert_eq!(pause_at(&mut a, 0.0, Some(secs(3.0))), secs(3.0));
        // The count of 429s in a row includes the one that had a Retry-After.
        let doubling: Vec<_> = (1..=12)
            .map(|i| pause_at(&mut a, 100.0 * i as f64, None))
            .collect();
        let want: Vec<_> = [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600]
            .map(|tenths| secs(f64::from(tenths) / 10.0))
            .to_vec();
        assert_eq!(doubling, want);
        a.on_accepted(secs(2000.0), acc(1));
        assert_eq!(pause_at(&mut a, 2000.0, None), FIRST_PAUSE);
        // A shorter pause never cuts a longer one short.
        assert_eq!(pause_at(&mut a, 2000.0, Some(Duration::ZERO)), FIRST_PAUSE);
    }

    #[test]
    fn a_stray_429_costs_a_pause_and_a_small_step_and_is_forgotten() {
        let mut a = Adaptation::new(50.0, Duration::ZERO);
        // After 5 s of sending at 50/s, 49 accepted in the last second: met creeping up on
        // a limit, a small step.
        assert_eq!(stray(&mut a, 5.0, counts(49, 245)), Some(49.0 * 0.95));
        // In the second after its pause, another: the pause alone, whatever the count.
        assert_eq!(stray(&mut a, 5.5, counts(20, 260)), None);
        assert_eq!(stray(&mut a, 5.8, counts(2, 270)), None);
        assert_eq!(a.rate(), 49.0 * 0.95);
        // After a full second of sending (the last pause ended at 6.2 s) under what the
        // server accepted before: a limit would not have answered it. It is forgotten, and
        // the climb goes on at once.
        assert_eq!(stray(&mut a, 7.5, counts(46, 330)), None);
        assert_eq!(a.climb(secs(8.5)), Some(50.0));
    }

    #[test]
    fn right_after_a_pause_the_server_stopping_at_the_same_count_is_its_limit() {
        let mut a = Adaptation::new(50.0, Duration::ZERO);
        // A limit of 10: the first 429 cuts to a quarter of the pace, above it.
        assert_eq!(stray(&mut a, 0.2, acc(10)), Some(12.5));
        // In the second after the pause, the server stops at 10 again.
        assert_eq!(stray(&mut a, 0.9, counts(10, 20)), Some(9.5));
        // Learned twice: a 429 under it after a full second of sending is a stray, and
        // the limit stays, the climb held under 97% of it.
        assert_eq!(stray(&mut a, 5.0, counts(9, 45)), None);
        let paces = climb_each_second(&mut a, 5, 60);
        assert_eq!(
            paces.iter().copied().fold(0.0, f64::max),
            10.0 * UNDER_CEILING
        );
    }

    #[test]
    fn the_server_accepting_well_more_than_the_limit_learned_puts_the_pace_back() {
        // Cut from 50 to 12.5 after 9 accepted in the second before a 429.
        let mut a = limited(50.0, 9);
        assert_eq!(a.rate(), 12.5);
        assert_eq!(a.on_accepted(secs(2.0), counts(10, 19)), None);
        // 11: a fifth more and two more than 9.
        assert_eq!(a.on_accepted(secs(2.1), counts(11, 20)), Some(50.0));
        assert_eq!(a.climb(secs(20.0)), None);
    }

    #[test]
    fn a_server_that_took_under_half_the_pace_for_ten_seconds_has_a_limit() {
        // Cut to 12.5 at 1 s for a limit of 5, paused a second by its Retry-After.
        let limit = || {
            let mut a = limited(50.0, 5);
            let old = Permit { epoch: 0 };
            // A 429 for a request sent before the cut: another Retry-After pause, to 12.6 s.
            a.on_rate_limited(secs(11.6), old, acc(0), Some(secs(1.0)));
            a
        };
        // 30 accepted over the last 10 s, 3/s: under half of 12.5, whatever the last second.
        assert_eq!(stray(&mut limit(), 12.8, counts(4, 30)), Some(4.0 * 0.95));
        // 100 over 10 s is no limit: the pause alone.
        assert_eq!(stray(&mut limit(), 12.8, counts(4, 100)), None);
        // Our own pauses are left out: after 429s in a row without Retry-After (for
        // requests sent before the cut) paused us 6.2 s of the 9.4 since the start, 30
        // accepted is no limit either.
        let mut a = limited(50.0, 5);
        let mut at = 3.0;
        for _ in 0..5 {
            a.on_rate_limited(secs(at), Permit { epoch: 0 }, acc(0), None);
            at = a.paused_until().unwrap().as_secs_f64();
        }
        assert!((at - 9.2).abs() < 1e-9, "{at}");
        assert_eq!(stray(&mut a, 9.4, counts(4, 30)), None);
        assert_eq!(a.rate(), 12.5);
    }

    #[test]
    fn stray_429s_with_no_limit_keep_most_of_the_pace() {
        // One request in a hundred answered 429 at random, then one in ten: at least 80%
        // and 50% of --rate 50 accepted, over 5 minutes.
        for (share, kept) in [(0.01, 0.8), (0.10, 0.5)] {
            for seed in 0..5 {
                let mut a = Adaptation::new(50.0, Duration::ZERO);
                let seen = drive(&mut a, &mut Server::new(share, seed), secs(300.0));
                let goodput = seen.goodput();
                assert!(
                    goodput >= kept * 50.0,
                    "{share}, seed {seed}: {goodput:.1}/s"
                );
            }
        }
    }

    #[test]
    fn a_real_limit_is_found_and_held_under_with_few_429s() {
        let limited = |server: Server| {
            let mut a = Adaptation::new(50.0, Duration::ZERO);
            drive(&mut a, &mut server.limit(Duration::ZERO, 30), secs(120.0))
        };
        for seen in [
            limited(Server::new(0.0, 0)),
            limited(Server::new(0.0, 0).without_retry_after()),
        ] {
            assert!(seen.goodput() >= 0.95 * 30.0, "{seen:?}");
            assert!(seen.limited_share() <= 0.01, "{seen:?}");
        }
        // With stray 429s besides, each costs its pause, and the first makes the limit
        // forgotten until the server shows it again; no collapse.
        for seed in 0..5 {
            let seen = limited(Server::new(0.01, seed));
            assert!(seen.goodput() >= 0.8 * 30.0, "seed {seed}: {seen:?}");
        }
        // A limit that falls from 30 to 20 after a minute is found again.
        let mut a = Adaptation::new(50.0, Duration::ZERO);
        let mut server = Server::new(0.0, 0)
            .limit(Duration::ZERO, 30)
            .limit(secs(60.0), 20);
        drive(&mut a, &mut server, secs(120.0));
        assert!((19.0..20.0).contains(&a.rate()), "{}", a.rate());
    }

    #[test]
    fn the_pace_holds_for_ten_seconds_after_a_slowdown() {
        let mut a = limited(50.0, 30);
        let paces = climb_each_second(&mut a, 1, 20);
        // A slowdown at 1 s: the first climb is at 11 s.
        assert!(paces[..9].iter().all(|r| *r == 28.5), "{paces:?}");
        assert!(paces[9] > 28.5, "{paces:?}");
    }

    #[test]
    fn the_climb_is_fast_far_below_the_ceiling_and_slow_near_it() {
        // Cut to 12.5 (a quarter of 50) under a ceiling of 30 (what was accepted).
        let mut a = limited(50.0, 30);
        a.on_trouble(secs(1.0), TROUBLE_STREAK);
        a.on_trouble(secs(1.0), TROUBLE_STREAK);
        assert_eq!(a.rate(), 28.5 / 4.0);
        let paces = climb_each_second(&mut a, 10, 40);
        let steps: Vec<f64> = std::iter::once(28.5 / 4.0)
            .chain(paces.iter().copied())
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| w[1] - w[0])
            .collect();
        for (pace, step) in paces.iter().zip(&steps) {
            let before = pace - step;
            let want = if before < 0.9 * 30.0 {
                30.0 * 0.05
            } else {
                30.0 * 0.005
            };
            assert!(
                (step - want).abs() < 1e-9 || *pace == 30.0 * UNDER_CEILING,
                "{before} -> {pace}"
            );
        }
        assert!(steps.iter().any(|s| (s - 1.5).abs() < 1e-9));
        assert!(steps.iter().any(|s| (s - 0.15).abs() < 1e-9));
    }

    #[test]
    fn the_climb_stops_under_97_percent_of_the_ceiling_for_a_minute_then_probes_past_it() {
        let mut a = limited(50.0, 30);
        let hold = 30.0 * UNDER_CEILING;
        // The 429 was at 1 s: held under 29.1 until 61 s.
        let held = climb_each_second(&mut a, 1, 60);
        assert_eq!(held.iter().copied().fold(0.0, f64::max), hold);
        let probing = climb_each_second(&mut a, 60, 65);
        assert!(
            (hold + 5.0 * 30.0 * 0.005 - probing[4]).abs() < 1e-9,
            "{probing:?}"
        );
    }

    #[test]
    fn a_429_met_creeping_up_takes_that_pace_for_the_ceiling() {
        let mut a = limited(29.5, 29);
        let held = climb_each_second(&mut a, 1, 60);
        assert_eq!(
            held.iter().copied().fold(0.0, f64::max),
            29.5 * UNDER_CEILING
        );
    }

    #[test]
    fn far_past_the_ceiling_without_a_429_the_climb_is_fast_again() {
        // Ceiling 20, pace 19, held at 19.4: a slow climb past 24 (1.2 x 20), then 5 (a
        // tenth of 50) a second.
        let mut a = limited(50.0, 20);
        let paces = climb_each_second(&mut a, 1, 200);
        let fast: Vec<_> = paces
            .windows(2)
            .filter(|w| w[1] - w[0] > 1.0)
            .map(|w| w[0])
            .collect();
        assert!(
            !fast.is_empty() && fast.iter().all(|r| *r > 24.0),
            "{paces:?}"
        );
        assert_eq!(paces.last(), Some(&50.0));
    }

    #[test]
    fn without_a_429_the_climb_is_a_tenth_of_the_rate_a_second_up_to_it() {
        let mut a = Adaptation::new(40.0, Duration::ZERO);
        assert_eq!(a.on_trouble(Duration::ZERO, TROUBLE_STREAK), Some(20.0));
        assert_eq!(a.climb(secs(10.5)), Some(24.0));
        // Not again within a second.
        assert_eq!(a.climb(secs(11.0)), None);
        let paces = climb_each_second(&mut a, 11, 20);
        assert_eq!(paces[..5], [28.0, 32.0, 36.0, 40.0, 40.0]);
        assert_eq!(a.climb(secs(30.0)), None);
    }

    #[test]
    fn only_a_whole_streak_of_failures_halves_the_pace() {
        let mut a = Adaptation::new(40.0, Duration::ZERO);
        for streak in (0..TROUBLE_STREAK).chain([TROUBLE_STREAK + 1]) {
            assert_eq!(a.on_trouble(Duration::ZERO, streak), None, "{streak}");
        }
        assert_eq!(a.on_trouble(Duration::ZERO, TROUBLE_STREAK), Some(20.0));
        assert_eq!(a.on_trouble(Duration::ZERO, 2 * TROUBLE_STREAK), Some(10.0));
    }

    #[test]
    fn the_pace_never_drops_below_one_request_in_ten_seconds_unless_rate_is_lower() {
        let mut a = Adaptation::new(0.15, Duration::ZERO);
        assert_eq!(a.on_trouble(Duration::ZERO, TROUBLE_STREAK), Some(MIN_RATE));
        let mut slow = Adaptation::new(0.05, Duration::ZERO);
        assert_eq!(slow.on_trouble(Duration::ZERO, TROUBLE_STREAK), Some(0.05));
    }
}
