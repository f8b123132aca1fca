//! The pacer of one process: one GCRA limiter (governor, on tokio's clock) shared by every
//! worker, turns taken in arrival order, and the rules of [`Adaptation`] for its pace.
//!
//! Time comes from tokio's clock (through `TokioClock`), so all of it runs under tokio's
//! paused clock in tests.

use std::num::NonZeroU32;
use std::ops::Add;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use super::adapt::Adaptation;
use super::heard::{Event, Tally};
use super::{Pacer, Permit, Turn};

/// A governor clock reading tokio's time, so paused-clock tests drive the limiter.
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

/// A point on [`TokioClock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Tick(Instant);

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

/// The pacer of one process: every request, first try or retry, waits here.
pub struct LocalPacer {
    burst: NonZeroU32,
    /// Where the adaptation's time starts.
    origin: Instant,
    state: Mutex<State>,
    /// Waiters take turns in arrival order (tokio's mutex is fair), so records go out in the
    /// order they were handed to workers and a stop leaves no gaps behind sent records.
    turn: tokio::sync::Mutex<()>,
}

struct State {
    /// Paces at the adaptation's rate; a new one starts whenever that rate is set.
    limiter: Arc<Limiter>,
    adapt: Adaptation,
    tally: Tally,
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

impl LocalPacer {
    /// `rate` requests per second at most, `burst` allowed at once above the smooth pace.
    pub fn new(rate: f64, burst: NonZeroU32) -> LocalPacer {
        LocalPacer {
            burst,
            origin: Instant::now(),
            state: Mutex::new(State {
                limiter: limiter(rate, burst),
                adapt: Adaptation::new(rate, Duration::ZERO),
                tally: Tally::default(),
            }),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another worker panicked; the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `now` on the adaptation's time.
    fn since(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.origin)
    }

    /// Applies `event` (made from the state) to the adaptation, and starts the limiter
    /// afresh when that set a pace.
    fn heed(&self, event: impl FnOnce(&mut State) -> Event) {
        let mut s = self.lock();
        let event = event(&mut s);
        if let Some(rate) = event.apply(&mut s.adapt) {
            s.limiter = limiter(rate, self.burst);
        }
    }
}

impl Pacer for LocalPacer {
    fn acquire(&self) -> Turn<'_> {
        Box::pin(async move {
            let _turn = self.turn.lock().await;
            loop {
                let now = self.since(Instant::now());
                self.heed(|_| Event::Turn { now });
                let (limiter, paused_until, permit) = {
                    let s = self.lock();
                    let paused_until = s.adapt.paused_until().map(|d| self.origin + d);
                    (s.limiter.clone(), paused_until, s.adapt.permit())
                };
                if let Some(until) = paused_until
                    && until > Instant::now()
                {
                    tokio::time::sleep_until(until).await;
                    continue;
                }
                match limiter.check_n(CELLS) {
                    // Every limiter holds at least CELLS, so capacity is never short.
                    Ok(Ok(())) | Err(_) => return permit,
                    Ok(Err(not_until)) => {
                        tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await;
                    }
                }
            }
        })
    }

    fn rate(&self) -> f64 {
        self.lock().adapt.rate()
    }

    fn on_accepted(&self) {
        let now = self.since(Instant::now());
        self.heed(|s| s.tally.accepted(now));
    }

    fn on_rate_limited(&self, permit: Permit, retry_after: Option<Duration>) {
        let now = self.since(Instant::now());
        self.heed(|s| s.tally.limited(now, permit, retry_after));
    }

    fn on_trouble(&self, streak: u32) {
        let now = self.since(Instant::now());
        self.heed(|_| Event::Trouble { now, streak });
    }
}

#[cfg(test)]
mod tests {
    use super::super::adapt::{
        CLIMB_EVERY, FIRST_PAUSE, HOLD, PROBE_AFTER, TROUBLE_STREAK, UNDER_CEILING,
    };
    use super::super::sim::{Seen, Server};
    use super::*;

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
        let pacer = LocalPacer::new(50.0, nz(1));
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
        let pacer = LocalPacer::new(1000.0, nz(1));
        let mut times = Vec::new();
        for _ in 0..3000 {
            pacer.acquire().await;
            times.push(Instant::now());
        }
        assert!(max_in_window(&times, Duration::from_secs(1)) <= 1001);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_share_one_pace() {
        let pacer = Arc::new(LocalPacer::new(20.0, nz(1)));
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
        let pacer = Arc::new(LocalPacer::new(50.0, nz(1)));
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
    async fn limited(rate: f64, accepted: u32) -> (LocalPacer, Permit) {
        let pacer = LocalPacer::new(rate, nz(1));
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
    async fn seconds_pass(pacer: &LocalPacer, secs: u64) -> f64 {
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
        let pacer = LocalPacer::new(10.0, nz(1));
        let mut pauses = Vec::new();
        for _ in 0..3 {
            let permit = pacer.acquire().await;
            pacer.on_rate_limited(permit, None);
            let start = Instant::now();
            pacer.acquire().await;
            pauses.push(start.elapsed());
        }
        assert!(pauses[0] >= FIRST_PAUSE);
        assert!(pauses[1] >= 2 * FIRST_PAUSE);
        assert!(pauses[2] >= 4 * FIRST_PAUSE);
    }

    /// Ten workers send through a pacer at `--rate 50` to `server` for `run`, each request
    /// answered 20 ms after its turn; with the pacer, for its pace at the end.
    async fn served(server: Server, run: u64) -> (Seen, Arc<LocalPacer>) {
        let pacer = Arc::new(LocalPacer::new(50.0, nz(1)));
        let latency = Duration::from_millis(20);
        let seen = server
            .serve(pacer.clone(), 10, latency, Duration::from_secs(run))
            .await;
        (seen, pacer)
    }

    #[tokio::test(start_paused = true)]
    async fn stray_429s_with_no_limit_keep_most_of_the_pace() {
        // One request in a hundred answered 429 at random (no Retry-After), then one in ten:
        // at least 80% and 50% of --rate 50 accepted over two minutes.
        for (share, kept) in [(0.01, 0.8), (0.10, 0.5)] {
            for seed in 0..3 {
                let (seen, _) = served(Server::new(share, seed), 120).await;
                let goodput = seen.goodput();
                assert!(
                    goodput >= kept * 50.0,
                    "{share}, seed {seed}: {goodput:.1}/s"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_real_limit_is_found_with_few_429s_and_again_when_it_falls() {
        // 30 a sliding second, 429s with Retry-After as the sandbox gives them.
        let (seen, _) = served(Server::new(0.0, 0).limit(Duration::ZERO, 30), 60).await;
        assert!(seen.goodput() >= 0.95 * 30.0, "{seen:?}");
        assert!(seen.limited_share() <= 0.01, "{seen:?}");
        let falls = Server::new(0.0, 0)
            .limit(Duration::ZERO, 30)
            .limit(Duration::from_secs(60), 20);
        let (seen, pacer) = served(falls, 120).await;
        assert!((19.0..20.0).contains(&pacer.rate()), "{}", pacer.rate());
        assert!(seen.limited_share() <= 0.01, "{seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_streak_of_failures_halves_the_pace() {
        let pacer = LocalPacer::new(40.0, nz(1));
        for streak in 1..TROUBLE_STREAK {
            pacer.on_trouble(streak);
        }
        assert_eq!(pacer.rate(), 40.0);
        pacer.on_trouble(TROUBLE_STREAK);
        assert_eq!(pacer.rate(), 20.0);
    }
}
