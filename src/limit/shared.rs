//! The pacer shared between processes: one GCRA schedule kept in Redis, so every importer
//! naming the same Redis and workspace takes its turns from one budget, and one adaptation
//! of its pace.
//!
//! Each turn is one round trip: a script reads Redis's own clock (`TIME`, so machines with
//! skewed clocks agree), reserves the next slot on the schedule and says when it is. Within
//! the process, turns are still taken in arrival order. The adaptation's state is kept in
//! Redis beside the schedule (`schedule`) and follows [`Adaptation`](super::Adaptation)'s rules, computed here
//! on this importer's copy (`replica`): a 429 seen by one importer pauses them all and
//! lowers the shared pace once per burst, and the climb back is shared. The lowest `--rate`
//! among them wins.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::heard::Event;
use super::replica::{RedisClock, Replica};
use super::schedule::{Ask, Commit, Schedule, Scripts, Slot};
use super::{Pacer, Permit, Turn};

/// The pacer whose schedule is in Redis.
pub struct SharedPacer {
    store: Store,
    burst: u32,
    /// `--rate`.
    max_rate: f64,
    /// Names this importer among those sharing the schedule.
    name: String,
    /// Told once, when another importer's lower `--rate` wins.
    warn: Box<dyn Fn(&str) + Send + Sync>,
    warned: AtomicBool,
    /// Waiters take turns in arrival order (tokio's mutex is fair), as with the local pacer.
    turn: tokio::sync::Mutex<()>,
    /// How long Redis may stay unreachable before the run stops.
    timeout: Duration,
    /// Since when it has been, while it is.
    down_since: Mutex<Option<Instant>>,
    /// Cancelled when it did: the run stops, its unsent records kept for `--resume`.
    stop: CancellationToken,
    /// Why the run stopped, once it did.
    lost: Mutex<Option<String>>,
    /// Names the Redis in messages, without its password.
    shown: String,
}

/// Where the shared state is, and this importer's copy of it: what a write of it needs,
/// handed to the task that writes a 429's pause at once.
#[derive(Clone)]
struct Store {
    conn: ConnectionManager,
    scripts: Arc<Scripts>,
    schedule: Arc<Schedule>,
    state: Arc<Mutex<State>>,
    /// Writes go one at a time, each from what the last one left.
    writing: Arc<tokio::sync::Mutex<()>>,
}

struct State {
    replica: Replica,
    clock: RedisClock,
}

/// Where the shared schedule is, and what to do when it cannot be reached.
pub struct Link {
    pub conn: ConnectionManager,
    pub schedule: Schedule,
    /// The URL without its password.
    pub shown: String,
    /// How long sending waits for an unreachable Redis.
    pub timeout: Duration,
    /// Cancelled when that wait runs out.
    pub stop: CancellationToken,
    /// Tells a warning.
    pub warn: Box<dyn Fn(&str) + Send + Sync>,
}

/// How often a write of the shared state is computed again when other importers keep
/// writing first; past that, its events wait for the next turn.
const WRITE_TRIES: usize = 5;

impl Store {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another worker panicked; the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads Redis's state into the copy.
    async fn read(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let (version, state) = self.scripts.state(conn, &self.schedule).await?;
        let mut s = self.lock();
        let now = s.clock.now();
        s.replica.read(version, state, now);
        Ok(())
    }

    /// Writes what the copy's events changed, computed again from Redis's state whenever
    /// another importer wrote first. When Redis is away the events wait for the next turn.
    async fn write(&self) {
        let _one = self.writing.lock().await;
        let mut conn = self.conn.clone();
        for _ in 0..WRITE_TRIES {
            let Some(write) = self.lock().replica.write() else {
                return;
            };
            let commit = Commit {
                from: write.from,
                state: &write.state,
                now: None,
            };
            match self.scripts.commit(&mut conn, &self.schedule, commit).await {
                Ok(Some(version)) => return self.lock().replica.written(write, version),
                Ok(None) => {
                    if self.read(&mut conn).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }
}

/// A connection to the Redis at `url` (shown as `shown`), tried with backoff for up to
/// `timeout`. Each try and each later command gives up after a couple of seconds, so a
/// Redis gone quiet is noticed.
pub async fn connect(
    url: &str,
    shown: &str,
    timeout: Duration,
) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(url)
        .map_err(|e| format!("--shared-limit {shown}: {}", e.category()))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let deadline = Instant::now() + timeout;
    let mut backoff = FIRST_BACKOFF;
    loop {
        match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
            Ok(conn) => return Ok(conn),
            Err(e) if Instant::now() + backoff >= deadline => {
                // A Redis without TLS on a rediss:// port answers the handshake with nonsense.
                let tls = if url.starts_with("rediss:") {
                    " (rediss:// speaks TLS: is Redis serving TLS on that port, its \
                     --tls-port? For one without TLS, give redis://)"
                } else {
                    ""
                };
                return Err(format!(
                    "--shared-limit {shown}: Redis did not answer for {}s ({}){tls}; start it, \
                     or leave --shared-limit out to pace this importer alone",
                    timeout.as_secs_f64(),
                    e.category()
                ));
            }
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The first wait after Redis fails to answer, doubled on each failure up to [`MAX_BACKOFF`]:
/// a try a second costs Redis nothing, and sending resumes within a second of its return.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A turn woken this much after its slot (or half an interval, when longer) is given up,
/// [`GIVE_UP`] times a turn at most: tokio's timer alone wakes about a millisecond late, and
/// at a fast pace every turn would be.
const LATE_FLOOR: Duration = Duration::from_millis(3);
const GIVE_UP: u32 = 2;

impl SharedPacer {
    /// Paces at `rate` requests per second on the schedule `link` reaches.
    pub fn new(link: Link, rate: f64, burst: u32) -> SharedPacer {
        SharedPacer {
            store: Store {
                conn: link.conn,
                scripts: Arc::new(Scripts::default()),
                schedule: Arc::new(link.schedule),
                state: Arc::new(Mutex::new(State {
                    replica: Replica::new(rate),
                    clock: RedisClock::default(),
                })),
                writing: Arc::default(),
            },
            max_rate: rate,
            name: ulid::Ulid::generate().to_string(),
            warn: link.warn,
            warned: AtomicBool::new(false),
            timeout: link.timeout,
            down_since: Mutex::new(None),
            stop: link.stop,
            lost: Mutex::new(None),
            shown: link.shown,
            burst,
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Why the run stopped, if Redis stayed unreachable past the timeout.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_down_since(&self, since: Option<Instant>) {
        *self.down_since.lock().unwrap_or_else(|e| e.into_inner()) = since;
    }

    /// Applies `event` (made from the state) to this importer's copy; whether it changed it.
    fn heed(&self, event: impl FnOnce(&mut State) -> Event) -> bool {
        let mut s = self.store.lock();
        let event = event(&mut s);
        s.replica.heed(event)
    }

    /// Brings the copy up to date with what a reservation said of Redis's state, applies
    /// the turn's rules, and writes what they changed; the permit for the turn.
    async fn keep_up(&self, conn: &mut ConnectionManager, slot: &Slot) -> Permit {
        let stale = self.store.lock().replica.stale(slot.version);
        if stale {
            // A copy that cannot be read now is read at a later turn.
            let _ = self.store.read(conn).await;
        }
        let changed = {
            let mut s = self.store.lock();
            s.replica.tally.set_others(slot.others);
            let now = s.clock.now();
            let capped = s.replica.heed(Event::MaxRate {
                max_rate: slot.lowest_rate,
            });
            s.replica.heed(Event::Turn { now }) || capped
        };
        if changed {
            self.store.write().await;
        }
        self.store.lock().replica.view().permit()
    }
}

impl Pacer for SharedPacer {
    fn acquire(&self) -> Turn<'_> {
        Box::pin(async move {
            let _turn = self.turn.lock().await;
            let mut backoff = FIRST_BACKOFF;
            let mut down_since = None;
            let mut given_up = 0;
            loop {
                let (paused_until, accepted) = {
                    let mut s = self.store.lock();
                    let now = s.clock.now();
                    let paused = s.replica.view().paused_until();
                    (paused.map(|t| s.clock.local(t)), s.replica.tally.own(now))
                };
                // This importer's own pause holds even before Redis has it.
                if let Some(until) = paused_until
                    && until > Instant::now()
                {
                    tokio::time::sleep_until(until).await;
                    continue;
                }
                let mut conn = self.store.conn.clone();
                let ask = Ask {
                    max_rate: self.max_rate,
                    burst: self.burst,
                    name: &self.name,
                    accepted,
                    now: None,
                };
                let asked = Instant::now();
                let reserved = self
                    .store
                    .scripts
                    .reserve(&mut conn, &self.store.schedule, ask)
                    .await;
                match reserved {
                    Ok(slot) => {
                        self.set_down_since(None);
                        let at = {
                            let mut s = self.store.lock();
                            s.clock.observe(asked, Instant::now(), slot.now);
                            s.clock.local(slot.at)
                        };
                        let permit = self.keep_up(&mut conn, &slot).await;
                        if slot.lowest_rate < self.max_rate && !self.warned.swap(true, Relaxed) {
                            (self.warn)(&format!(
                                "--shared-limit: another importer on this schedule has --rate \
                                 {}; the lowest wins, so this one goes no faster than that",
                                slot.lowest_rate
                            ));
                        }
                        // The slot is ours: a waiter dropped during this sleep leaves it
                        // unused, which only costs pace, never budget.
                        tokio::time::sleep_until(at).await;
                        // Woken well after its slot (the process was not run: a loaded
                        // machine), the turn would go out beside the next one, another
                        // importer's: it is given up, which again costs only pace, and
                        // asked again, a couple of times at most.
                        let interval = 1.0 / slot.lowest_rate.min(self.rate());
                        let late = Duration::from_secs_f64(interval / 2.0).max(LATE_FLOOR);
                        if Instant::now() > at + late && given_up < GIVE_UP {
                            given_up += 1;
                            continue;
                        }
                        return permit;
                    }
                    Err(e) => {
                        // Nothing goes unpaced: wait, and ask again (the connection manager
                        // reconnects), until the timeout stops the run.
                        let since = *down_since.get_or_insert_with(Instant::now);
                        self.set_down_since(Some(since));
                        if since.elapsed() >= self.timeout {
                            *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                                "--shared-limit {}: Redis did not answer for {}s ({}); \
                                     nothing was sent unpaced; start it and run again with \
                                     --resume (or raise --shared-limit-timeout)",
                                self.shown,
                                self.timeout.as_secs_f64(),
                                e.category()
                            ));
                            self.stop.cancel();
                            // The stop ends this wait; no turn is ever given unpaced.
                            std::future::pending::<()>().await;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        })
    }

    fn rate(&self) -> f64 {
        self.store.lock().replica.view().rate()
    }

    fn held_up(&self) -> Option<String> {
        let since = (*self.down_since.lock().unwrap_or_else(|e| e.into_inner()))?;
        Some(format!(
            "waiting for Redis ({:.0} s of {:.0})",
            since.elapsed().as_secs_f64().floor(),
            self.timeout.as_secs_f64()
        ))
    }

    fn on_accepted(&self) {
        // Written at the next turn, if it changed anything.
        self.heed(|s| {
            let now = s.clock.now();
            s.replica.tally.accepted(now)
        });
    }

    fn on_rate_limited(&self, permit: Permit, retry_after: Option<Duration>) {
        let changed = self.heed(|s| {
            let now = s.clock.now();
            s.replica.tally.limited(now, permit, retry_after)
        });
        // Written at once, not awaited by the worker that saw the 429: the others pause
        // as soon as Redis has it, and this importer's own copy pauses it already.
        if changed {
            let store = self.store.clone();
            tokio::spawn(async move { store.write().await });
        }
    }

    fn on_trouble(&self, streak: u32) {
        self.heed(|s| Event::Trouble {
            now: s.clock.now(),
            streak,
        });
    }
}
