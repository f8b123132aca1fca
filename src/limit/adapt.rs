//! Adapting the pace to what the server accepts, as clock-free arithmetic: the drop on a
//! 429, the shared pause, the hold, the climb back and the slowdown on trouble. Every
//! method takes `now` (time since an origin the pacer picks) and the facts it saw, so a
//! pacer on any clock, or one that keeps this state in a shared store, runs the same rules.

use std::time::Duration;

use super::Permit;

/// The slowest pace adaptation goes to: one request every ten seconds.
const MIN_RATE: f64 = 0.1;
/// After a slowdown, hold the new pace this long before climbing.
pub(super) const HOLD: Duration = Duration::from_secs(10);
/// How often the pace may climb.
pub(super) const CLIMB_EVERY: Duration = Duration::from_secs(1);
/// The window over which accepted requests are counted to learn the server's real rate.
pub(super) const ACCEPT_WINDOW: Duration = Duration::from_secs(1);
/// After a 429 the pace is set this far below what the server accepted, so the next
/// window has room.
const BELOW_ACCEPTED: f64 = 0.95;
/// Climbing back after a 429, the pace stops this far under the limit it learned ...
pub(super) const UNDER_CEILING: f64 = 0.97;
/// ... until this long after the 429, then probes past it in case the limit rose. A 429
/// costs a pause of a second or so: meeting one a minute rather than every 20 s took the
/// goodput at a fixed limit from about 91% to about 95% (bench/ratelimit.rs).
pub(super) const PROBE_AFTER: Duration = Duration::from_secs(60);
/// A streak of this many 5xx or network failures halves the pace.
pub(super) const TROUBLE_STREAK: u32 = 5;

/// The pace and what it learned. Methods that may change the pace return it when they set
/// it: the pacer then restarts its schedule at that pace.
#[derive(Debug)]
pub struct Adaptation {
    /// `--rate`: the pace never goes above it.
    max_rate: f64,
    rate: f64,
    /// Bumped on every slowdown; a 429 for a request sent in an older epoch only extends
    /// the pause, so one burst of 429s slows the pace once, not once per request.
    epoch: u64,
    paused_until: Option<Duration>,
    /// The limit the last 429 showed: what the server accepted, or the pace itself when it
    /// was creeping up on that; climbing slows near it.
    ceiling: Option<f64>,
    /// After a 429: the pace to climb no higher than, and until when.
    hold: Option<(f64, Duration)>,
    last_change: Duration,
    last_slowdown: Option<Duration>,
    consecutive_429: u32,
}

impl Adaptation {
    /// Starts at `max_rate`, the fastest it will go.
    pub fn new(max_rate: f64, now: Duration) -> Adaptation {
        Adaptation {
            max_rate,
            rate: max_rate,
            epoch: 0,
            paused_until: None,
            ceiling: None,
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

    /// Until when everyone waits after a 429 (it may be past).
    pub fn paused_until(&self) -> Option<Duration> {
        self.paused_until
    }

    /// Marks a request sent now with the current pace.
    pub fn permit(&self) -> Permit {
        Permit { epoch: self.epoch }
    }

    /// A request was accepted: the next 429 without Retry-After pauses from the start again.
    pub fn on_accepted(&mut self) {
        self.consecutive_429 = 0;
    }

    /// A 429 for the request sent with `permit`, when `accepted` requests were accepted in
    /// the last [`ACCEPT_WINDOW`]: everyone pauses until `retry_after` (or a backoff of our
    /// own when the server gave none), and the pace drops to what the server accepted.
    pub fn on_rate_limited(
        &mut self,
        now: Duration,
        permit: Permit,
        accepted: usize,
        retry_after: Option<Duration>,
    ) -> Option<f64> {
        self.consecutive_429 = self.consecutive_429.saturating_add(1);
        let pause = retry_after.unwrap_or_else(|| {
            // Without the server's word, double the pause on each 429 in a row, up to a minute.
            Duration::from_secs(1 << (self.consecutive_429 - 1).min(6)).min(Duration::from_secs(60))
        });
        let until = now + pause;
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        if permit.epoch != self.epoch {
            return None;
        }
        let accepted = accepted as f64;
        let rate = self.rate;
        let new = (accepted * BELOW_ACCEPTED).clamp(rate * 0.25, rate * BELOW_ACCEPTED);
        // The limit is near what the server accepted, not the pace that outran it: climbing
        // fast back toward that pace only meets the next 429 sooner. But a 429 met creeping up
        // on the limit (the pace within a tenth of what was accepted) puts it just under that
        // pace: a second's count is a whole number, a request or so below it.
        let ceiling = if rate <= accepted * 1.1 {
            rate
        } else {
            accepted.clamp(new, rate)
        };
        self.ceiling = Some(ceiling);
        // Only a hold above the new pace means anything: when the server accepted next to
        // nothing, the pace climbs slowly from the cut instead.
        let hold = ceiling * UNDER_CEILING;
        self.hold = (hold > new).then_some((hold, now + PROBE_AFTER));
        Some(self.slow_down(new, now))
    }

    /// A 5xx or network failure; `streak` is how many came in a row across all workers.
    pub fn on_trouble(&mut self, now: Duration, streak: u32) -> Option<f64> {
        (streak > 0 && streak.is_multiple_of(TROUBLE_STREAK))
            .then(|| self.slow_down(self.rate * 0.5, now))
    }

    /// Climbs back toward `--rate` while no 429 comes: quickly far below the learned limit,
    /// slowly near it, and not past [`UNDER_CEILING`] of it for [`PROBE_AFTER`] after the 429,
    /// so a server with a fixed limit sees few 429s. At most once every [`CLIMB_EVERY`].
    pub fn climb(&mut self, now: Duration) -> Option<f64> {
        if self.rate >= self.max_rate
            || now.saturating_sub(self.last_change) < CLIMB_EVERY
            || self
                .last_slowdown
                .is_some_and(|t| now.saturating_sub(t) < HOLD)
        {
            return None;
        }
        let step = match self.ceiling {
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
        if self.ceiling.is_some_and(|c| new > c * 1.2) {
            // Well past the last 429's pace without another: the limit has moved.
            self.ceiling = None;
        }
        Some(self.set_rate(new, now))
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
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// At `rate`, a 429 one second in, after `accepted` in the last second (Retry-After 1 s).
    fn limited(rate: f64, accepted: usize) -> Adaptation {
        let mut a = Adaptation::new(rate, Duration::ZERO);
        let permit = a.permit();
        assert!(
            a.on_rate_limited(secs(1.0), permit, accepted, Some(secs(1.0)))
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
        assert_eq!(a.on_rate_limited(secs(1.0), old, 30, None), Some(28.5));
        // Sent at the old pace: the pause grows, the pace stays.
        assert_eq!(a.on_rate_limited(secs(1.5), old, 10, Some(secs(5.0))), None);
        assert_eq!(a.rate(), 28.5);
        assert_eq!(a.paused_until(), Some(secs(6.5)));
        // Sent at the new pace: it slows again.
        let new = a.permit();
        assert_eq!(a.on_rate_limited(secs(2.0), new, 20, None), Some(19.0));
    }

    #[test]
    fn the_pause_is_retry_after_else_doubles_until_an_acceptance() {
        let mut a = Adaptation::new(10.0, Duration::ZERO);
        assert_eq!(a.paused_until(), None);
        let pause_at = |a: &mut Adaptation, at: f64, retry_after: Option<Duration>| {
            let permit = a.permit();
            a.on_rate_limited(secs(at), permit, 5, retry_after);
            a.paused_until().unwrap() - secs(at)
        };
        assert_eq!(pause_at(&mut a, 0.0, Some(secs(3.0))), secs(3.0));
        // The count of 429s in a row includes the one that had a Retry-After.
        let doubling: Vec<_> = (1..=9)
            .map(|i| pause_at(&mut a, 100.0 * i as f64, None))
            .collect();
        let want: Vec<_> = [2, 4, 8, 16, 32, 60, 60, 60, 60]
            .map(|s| secs(s as f64))
            .to_vec();
        assert_eq!(doubling, want);
        a.on_accepted();
        assert_eq!(pause_at(&mut a, 2000.0, None), secs(1.0));
        // A shorter pause never cuts a longer one short.
        assert_eq!(pause_at(&mut a, 2000.0, Some(Duration::ZERO)), secs(1.0));
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
