//! Pacing: one GCRA limiter shared by every worker, the shared pause after a 429, adaptation
//! to the rate the server really accepts, backoff with full jitter, and Retry-After.
//!
//! Time comes from tokio's clock (through [`TokioClock`]), so all of it runs under tokio's
//! paused clock in tests.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::ops::Add;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use rand::RngExt;
use tokio::time::Instant;

/// A governor clock reading tokio's time, so paused-clock tests drive the limiter.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

/// A point on [`TokioClock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tick(Instant);

impl Add<Nanos> for Tick {
    type Output = Tick;
    fn add(self, n: Nanos) -> Tick {
        Tick(self.0 + Duration::from(n))
    }
}

impl Reference for Tick {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }
    fn saturating_sub(&self, d: Nanos) -> Self {
        self.0.checked_sub(d.into()).map_or(*self, Tick)
    }
}

impl Clock for TokioClock {
    type Instant = Tick;
    fn now(&self) -> Tick {
        Tick(Instant::now())
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Tick>>;

/// The slowest pace adaptation goes to: one request every ten seconds.
const MIN_RATE: f64 = 0.1;
/// After a slowdown, hold the new pace this long before climbing.
const HOLD: Duration = Duration::from_secs(10);
/// How often the pace may climb.
const CLIMB_EVERY: Duration = Duration::from_secs(1);
/// The window over which accepted requests are counted to learn the server's real rate.
const ACCEPT_WINDOW: Duration = Duration::from_secs(1);
/// After a 429 the pace is set this far below what the server accepted, so the next
/// window has room.
const BELOW_ACCEPTED: f64 = 0.95;
/// Climbing back after a 429, the pace stops this far under the limit it learned ...
const UNDER_CEILING: f64 = 0.97;
/// ... until this long after the 429, then probes past it in case the limit rose. A 429
/// costs a pause of a second or so: meeting one a minute rather than every 20 s took the
/// goodput at a fixed limit from about 91% to about 95% (bench/ratelimit.rs).
const PROBE_AFTER: Duration = Duration::from_secs(60);
/// A streak of this many 5xx or network failures halves the pace.
const TROUBLE_STREAK: u32 = 5;

/// The shared pacer: every request, first try or retry, waits here.
pub struct Pacer {
    max_rate: f64,
    burst: NonZeroU32,
    state: Mutex<State>,
    /// Waiters take turns in arrival order (tokio's mutex is fair), so records go out in the
    /// order they were handed to workers and a stop leaves no gaps behind sent records.
    turn: tokio::sync::Mutex<()>,
}

struct State {
    limiter: Arc<Limiter>,
    rate: f64,
    /// Bumped on every slowdown; a 429 for a request sent in an older epoch only extends
    /// the pause, so one burst of 429s slows the pace once, not once per request.
    epoch: u64,
    paused_until: Option<Instant>,
    /// The limit the last 429 showed: what the server accepted, or the pace itself when it
    /// was creeping up on that; climbing slows near it.
    ceiling: Option<f64>,
    /// After a 429: the pace to climb no higher than, and until when.
    hold: Option<(f64, Instant)>,
    last_change: Instant,
    last_slowdown: Option<Instant>,
    accepted: VecDeque<Instant>,
    consecutive_429: u32,
}

/// Handed out by [`Pacer::acquire`]; tells the pacer which pace a request was sent at.
#[derive(Debug, Clone, Copy)]
pub struct Permit {
    epoch: u64,
}

/// Each request takes this many cells of the limiter, so that `EARLY` can be a fraction of
/// one request's interval.
const CELLS: NonZeroU32 = NonZeroU32::new(100).unwrap();
/// How far ahead of its slot on the smooth pace a request may go. Tokio's timer wakes about a
/// millisecond late, and GCRA starts the next interval from when a late request went, so
/// without this every interval stretches (a 50/s pace ran at 46/s). Letting a request go up to
/// this early (and never more than a tenth of an interval) keeps the average interval exact,
/// and a second still never holds more than rate + burst requests.
const EARLY: Duration = Duration::from_millis(2);

fn limiter(rate: f64, burst: NonZeroU32) -> Arc<Limiter> {
    let cell =
        Duration::from_secs_f64(1.0 / rate / f64::from(CELLS.get())).max(Duration::from_nanos(1));
    // At most a tenth of an interval early, so even fast paces never fit an extra request
    // into a second.
    let early = (EARLY.as_secs_f64() / cell.as_secs_f64())
        .round()
        .min(f64::from(CELLS.get()) / 10.0) as u32;
    let cells = burst
        .get()
        .saturating_mul(CELLS.get())
        .saturating_add(early);
    // with_period only fails for a zero period, which the max above rules out.
    let quota = Quota::with_period(cell)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(cells).unwrap_or(CELLS));
    Arc::new(RateLimiter::direct_with_clock(quota, TokioClock))
}

impl Pacer {
    /// `rate` requests per second at most, `burst` allowed at once above the smooth pace.
    pub fn new(rate: f64, burst: NonZeroU32) -> Pacer {
        Pacer {
            max_rate: rate,
            burst,
            state: Mutex::new(State {
                limiter: limiter(rate, burst),
                rate,
                epoch: 0,
                paused_until: None,
                ceiling: None,
                hold: None,
                last_change: Instant::now(),
                last_slowdown: None,
                accepted: VecDeque::new(),
                consecutive_429: 0,
            }),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another worker panicked; the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the shared pause to end and for the pace to allow one more request.
    /// Cancel-safe: a waiter dropped mid-wait gives up its turn and takes no permit.
    pub async fn acquire(&self) -> Permit {
        let _turn = self.turn.lock().await;
        loop {
            let (limiter, paused_until, epoch) = {
                let mut s = self.lock();
                self.climb(&mut s, Instant::now());
                (s.limiter.clone(), s.paused_until, s.epoch)
            };
            if let Some(until) = paused_until
                && until > Instant::now()
            {
                tokio::time::sleep_until(until).await;
                continue;
            }
            match limiter.check_n(CELLS) {
                // Every limiter holds at least CELLS, so capacity is never short.
                Ok(Ok(())) | Err(_) => return Permit { epoch },
                Ok(Err(not_until)) => {
                    tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await;
                }
            }
        }
    }

    /// The current pace, in requests per second.
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }

    /// A request was accepted.
    pub fn on_accepted(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        s.consecutive_429 = 0;
        s.accepted.push_back(now);
        while s
            .accepted
            .front()
            .is_some_and(|t| now.duration_since(*t) > ACCEPT_WINDOW)
        {
            s.accepted.pop_front();
        }
    }

    /// A 429: everyone pauses until `retry_after` (or a backoff of our own when the server
    /// gave none), and the pace drops to what the server accepted in the last second.
    pub fn on_rate_limited(&self, permit: Permit, retry_after: Option<Duration>) {
        let now = Instant::now();
        let mut s = self.lock();
        s.consecutive_429 = s.consecutive_429.saturating_add(1);
        let pause = retry_after.unwrap_or_else(|| {
            // Without the server's word, double the pause on each 429 in a row, up to a minute.
            Duration::from_secs(1 << (s.consecutive_429 - 1).min(6)).min(Duration::from_secs(60))
        });
        let until = now + pause;
        s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
        if permit.epoch != s.epoch {
            return;
        }
        let accepted = s
            .accepted
            .iter()
            .filter(|t| now.duration_since(**t) <= ACCEPT_WINDOW)
            .count() as f64;
        let rate = s.rate;
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
        s.ceiling = Some(ceiling);
        // Only a hold above the new pace means anything: when the server accepted next to
        // nothing, the pace climbs slowly from the cut instead.
        let hold = ceiling * UNDER_CEILING;
        s.hold = (hold > new).then_some((hold, now + PROBE_AFTER));
        self.slow_down(&mut s, new, now);
    }

    /// A 5xx or network failure; `streak` is how many came in a row across all workers.
    pub fn on_trouble(&self, streak: u32) {
        if streak > 0 && streak.is_multiple_of(TROUBLE_STREAK) {
            let mut s = self.lock();
            let new = s.rate * 0.5;
            self.slow_down(&mut s, new, Instant::now());
        }
    }

    fn set_rate(&self, s: &mut State, rate: f64, now: Instant) {
        s.rate = rate.clamp(MIN_RATE.min(self.max_rate), self.max_rate);
        s.limiter = limiter(s.rate, self.burst);
        s.last_change = now;
    }

    fn slow_down(&self, s: &mut State, rate: f64, now: Instant) {
        self.set_rate(s, rate, now);
        s.epoch += 1;
        s.last_slowdown = Some(now);
    }

    /// Climbs back toward `--rate` while no 429 comes: quickly far below the learned limit,
    /// slowly near it, and not past [`UNDER_CEILING`] of it for [`PROBE_AFTER`] after the 429,
    /// so a server with a fixed limit sees few 429s.
    fn climb(&self, s: &mut State, now: Instant) {
        if s.rate >= self.max_rate
            || now.saturating_duration_since(s.last_change) < CLIMB_EVERY
            || s.last_slowdown
                .is_some_and(|t| now.saturating_duration_since(t) < HOLD)
        {
            return;
        }
        let step = match s.ceiling {
            None => self.max_rate * 0.10,
            Some(c) if s.rate < 0.9 * c => c * 0.05,
            Some(c) => c * 0.005,
        };
        let mut new = s.rate + step;
        if let Some((hold, until)) = s.hold
            && now < until
        {
            new = new.min(hold);
            if new <= s.rate {
                return;
            }
        }
        if s.ceiling.is_some_and(|c| new > c * 1.2) {
            // Well past the last 429's pace without another: the limit has moved.
            s.ceiling = None;
        }
        self.set_rate(s, new, now);
    }
}

/// Backoff before retry number `retry` (1-based): full jitter, a random wait between zero
/// and min(cap, base x 2^(retry-1)), so retrying workers spread out instead of colliding.
pub fn backoff(retry: u32, rng: &mut impl rand::Rng) -> Duration {
    const BASE: Duration = Duration::from_millis(250);
    // Customer.io's own Node client caps at 5 s; a little longer rides out a short outage,
    // and the pacer's slowdown, not this wait, is what protects a struggling endpoint.
    const CAP: Duration = Duration::from_secs(10);
    let ceiling = BASE
        .checked_mul(1u32 << (retry.saturating_sub(1)).min(16))
        .map_or(CAP, |d| d.min(CAP));
    Duration::from_nanos(rng.random_range(0..=ceiling.as_nanos() as u64))
}

/// Reads a Retry-After value: delay-seconds or an HTTP date, relative to `now`. A date in
/// the past means "now"; anything else unreadable is ignored (None).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    /// The most instants in any window of `window` that starts at one of them.
    fn max_in_window(times: &[Instant], window: Duration) -> usize {
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| t.duration_since(times[i]) < window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn smooth_pace_never_lets_more_than_rate_plus_burst_into_a_second() {
        let pacer = Pacer::new(50.0, nz(1));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..500 {
            pacer.acquire().await;
            times.push(Instant::now());
        }
        let elapsed = start.elapsed().as_secs_f64();
        // 500 requests at 50/s: the first goes at once, the rest 20 ms apart (the second up to
        // EARLY ahead of its slot).
        assert!((elapsed - 499.0 / 50.0).abs() < 0.01, "{elapsed}");
        assert!(max_in_window(&times, Duration::from_secs(1)) <= 51);
        assert!(
            times
                .windows(2)
                .all(|w| w[1] - w[0] >= Duration::from_millis(20) - EARLY)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_pace_never_fits_an_extra_request_into_a_second_either() {
        let pacer = Pacer::new(1000.0, nz(1));
        let mut times = Vec::new();
        for _ in 0..3000 {
            pacer.acquire().await;
            times.push(Instant::now());
        }
        assert!(max_in_window(&times, Duration::from_secs(1)) <= 1001);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_share_one_pace() {
        let pacer = Arc::new(Pacer::new(20.0, nz(1)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let p = pacer.clone();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        p.acquire().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // 100 requests at 20/s take 99 intervals of 50 ms however many workers ask.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((4.9..5.1).contains(&elapsed), "{elapsed}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_everyone_until_retry_after() {
        let pacer = Arc::new(Pacer::new(50.0, nz(1)));
        let permit = pacer.acquire().await;
        pacer.on_rate_limited(permit, Some(Duration::from_secs(3)));
        let start = Instant::now();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let p = pacer.clone();
                tokio::spawn(async move {
                    p.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        for w in waiters {
            let at = w.await.unwrap();
            assert!(at.duration_since(start) >= Duration::from_secs(3));
        }
    }

    /// A pacer at `rate` whose server accepted `accepted` requests over the last second, then
    /// answered 429; with the permit of the request that got it.
    async fn limited(rate: f64, accepted: u32) -> (Pacer, Permit) {
        let pacer = Pacer::new(rate, nz(1));
        for _ in 0..accepted {
            pacer.on_accepted();
            tokio::time::advance(Duration::from_millis(990) / accepted).await;
        }
        let permit = pacer.acquire().await;
        pacer.on_rate_limited(permit, Some(Duration::from_secs(1)));
        (pacer, permit)
    }

    /// Lets `secs` seconds pass, taking a permit each second (which is when the pace climbs);
    /// returns the highest pace seen.
    async fn seconds_pass(pacer: &Pacer, secs: u64) -> f64 {
        let mut highest: f64 = 0.0;
        for _ in 0..secs {
            tokio::time::advance(CLIMB_EVERY).await;
            pacer.acquire().await;
            highest = highest.max(pacer.rate());
        }
        highest
    }

    #[tokio::test(start_paused = true)]
    async fn pace_drops_to_what_the_server_accepted_then_climbs_slowly_never_past_rate() {
        let (pacer, permit) = limited(50.0, 30).await;
        let dropped = pacer.rate();
        assert!((27.0..=29.0).contains(&dropped), "{dropped}");

        // More 429s for requests sent at the old pace extend the pause but do not slow again.
        pacer.on_rate_limited(permit, Some(Duration::from_secs(1)));
        assert_eq!(pacer.rate(), dropped);

        // Held for a while, then a slow climb near the old 429 pace.
        tokio::time::advance(HOLD / 2).await;
        pacer.acquire().await;
        assert_eq!(pacer.rate(), dropped);
        let mut last = dropped;
        for _ in 0..30 {
            seconds_pass(&pacer, 1).await;
            let r = pacer.rate();
            assert!(r >= last && r - last <= 50.0 * 0.05 + 1e-9, "{last} -> {r}");
            last = r;
        }
        assert!(last > dropped);
        // Long without a 429, it gets back to --rate and no further.
        assert_eq!(seconds_pass(&pacer, 200).await, 50.0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_holds_under_the_learned_limit_then_probes_past_it() {
        let (pacer, _) = limited(50.0, 30).await;
        let hold = 30.0 * UNDER_CEILING;
        // Every second until the probe is due: up to the hold level, and no further.
        let highest = seconds_pass(&pacer, PROBE_AFTER.as_secs() - 1).await;
        assert!((highest - hold).abs() < 1e-9, "{highest} vs {hold}");
        // Then past it, slowly.
        seconds_pass(&pacer, 5).await;
        let probing = pacer.rate();
        assert!(probing > hold && probing <= 30.0 + 1e-9, "{probing}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_met_creeping_up_holds_under_that_pace() {
        // Sending at 29.5/s, of which the last second's count was 29, when the 429 came.
        let (pacer, _) = limited(29.5, 29).await;
        let held = seconds_pass(&pacer, PROBE_AFTER.as_secs() - 1).await;
        assert!((held - 29.5 * UNDER_CEILING).abs() < 1e-9, "{held}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_slowdown_for_failures_does_not_bring_the_hold_back() {
        let (pacer, _) = limited(30.0, 29).await;
        assert_eq!(seconds_pass(&pacer, 120).await, 30.0);
        pacer.on_trouble(TROUBLE_STREAK);
        assert_eq!(pacer.rate(), 15.0);
        seconds_pass(&pacer, 45).await;
        assert_eq!(pacer.rate(), 30.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_when_next_to_nothing_was_accepted_still_climbs_after_the_hold() {
        let (pacer, _) = limited(50.0, 2).await;
        let cut = pacer.rate();
        assert_eq!(cut, 12.5);
        seconds_pass(&pacer, HOLD.as_secs() + 5).await;
        assert!(pacer.rate() > cut, "{}", pacer.rate());
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_without_retry_after_pauses_longer_each_time() {
        let pacer = Pacer::new(10.0, nz(1));
        let mut pauses = Vec::new();
        for _ in 0..3 {
            let permit = pacer.acquire().await;
            pacer.on_rate_limited(permit, None);
            let start = Instant::now();
            pacer.acquire().await;
            pauses.push(start.elapsed());
        }
        assert!(pauses[0] >= Duration::from_secs(1));
        assert!(pauses[1] >= Duration::from_secs(2));
        assert!(pauses[2] >= Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_streak_of_failures_halves_the_pace() {
        let pacer = Pacer::new(40.0, nz(1));
        for streak in 1..TROUBLE_STREAK {
            pacer.on_trouble(streak);
        }
        assert_eq!(pacer.rate(), 40.0);
        pacer.on_trouble(TROUBLE_STREAK);
        assert_eq!(pacer.rate(), 20.0);
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 1..=10u32 {
            let ceiling =
                Duration::from_millis(250 * (1 << (retry - 1))).min(Duration::from_secs(10));
            let waits: Vec<_> = (0..200).map(|_| backoff(retry, &mut rng)).collect();
            assert!(waits.iter().all(|w| *w <= ceiling));
            // Spread across the range, not stuck at one end.
            assert!(waits.iter().any(|w| *w < ceiling / 4));
            assert!(waits.iter().any(|w| *w > ceiling * 3 / 4));
        }
        assert!(backoff(u32::MAX, &mut rng) <= Duration::from_secs(10));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
