//! The pacer shared between processes: one GCRA schedule kept in Redis, so every importer
//! naming the same Redis and workspace takes its turns from one budget.
//!
//! Each turn is one round trip: a Lua script reads Redis's own clock (`TIME`, so machines
//! with skewed clocks agree), reserves the next slot on the schedule and says how long to
//! wait for it. Within the process, turns are still taken in arrival order. A 429 pauses
//! every importer on the schedule (the pause is kept in Redis), and the lowest `--rate` among
//! them wins. The pace each importer asks at follows [`Adaptation`]'s rules on its own clock.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::adapt::{AcceptLog, Adaptation};
use super::{Pacer, Permit, Turn};

/// Put before each script: the time now in microseconds, as the caller gave it (tests inject
/// time) or else by Redis's own clock.
const CLOCK: &str = r"
local function clock(given)
  local now = tonumber(given)
  if now then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
";

/// Reserves the next slot of the schedule, GCRA over `KEYS[1]` (the theoretical arrival
/// time), after the pause in `KEYS[2]`. `ARGV`: this importer's pace and `--rate`
/// (requests/s), `--burst`, its name, and the time now in microseconds, or empty for Redis's
/// own clock (tests inject time through it). The lowest `--rate` of the importers seen in the
/// last 10 s wins (`KEYS[3]` their rates, `KEYS[4]` when each was seen). Returns the wait in
/// microseconds until the reserved slot, and that lowest rate. Keys expire once idle, and
/// lost keys (a restarted Redis) only start the schedule again from now.
const RESERVE: &str = r"
local now = clock(ARGV[5])
redis.call('ZADD', KEYS[4], now, ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - 10000000)) do
  redis.call('ZREM', KEYS[4], gone)
  redis.call('ZREM', KEYS[3], gone)
end
redis.call('PEXPIRE', KEYS[3], 60000)
redis.call('PEXPIRE', KEYS[4], 60000)
local lowest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2]
local rate = math.min(tonumber(ARGV[1]), tonumber(lowest))
local interval = math.floor(1000000 / rate + 0.5)
local tolerance = interval * (tonumber(ARGV[3]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local pause = tonumber(redis.call('GET', KEYS[2]))
if pause and tat < pause then tat = pause end
local at = tat - tolerance
if at < now then at = now end
if pause and at < pause then at = pause end
local next = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.floor((next - now) / 1000) + 1000)
return {at - now, lowest}
";

/// Pauses the schedule for `ARGV[1]` microseconds from now (`ARGV[2]`, or empty for Redis's
/// clock) unless it is paused longer already: a 429 seen by one importer pauses them all.
const PAUSE: &str = r"
local now = clock(ARGV[2])
local pause = tonumber(ARGV[1])
local until_ = now + pause
local current = tonumber(redis.call('GET', KEYS[1])) or 0
if until_ > current then
  redis.call('SET', KEYS[1], string.format('%d', until_), 'PX', math.floor(pause / 1000) + 1000)
end
return 0
";

/// Where a shared schedule lives, and whose it is.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The prefix of its keys, with a `{hash tag}` so a Redis Cluster keeps them on one node.
    prefix: String,
}

impl Schedule {
    /// The schedule of the workspace named `workspace` (site id and region, or the sandbox).
    pub fn of(workspace: &str) -> Schedule {
        Schedule {
            prefix: format!("cio-import:{{{workspace}}}"),
        }
    }

    fn key(&self, what: &str) -> String {
        format!("{}:{what}", self.prefix)
    }
}

/// The scripts, loaded once (the redis crate sends each by its hash, the source only when
/// Redis does not know it yet).
pub struct Scripts {
    reserve: redis::Script,
    pause: redis::Script,
}

impl Default for Scripts {
    fn default() -> Scripts {
        Scripts {
            reserve: redis::Script::new(&format!("{CLOCK}{RESERVE}")),
            pause: redis::Script::new(&format!("{CLOCK}{PAUSE}")),
        }
    }
}

/// One importer's ask for a turn.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// Its pace now, and its `--rate`, in requests per second.
    pub rate: f64,
    pub max_rate: f64,
    pub burst: u32,
    /// Names it among the importers sharing the schedule.
    pub name: &'a str,
    /// Overrides Redis's clock (tests).
    pub now: Option<Duration>,
}

/// What a reservation gave: the wait until the slot, and the lowest `--rate` sharing it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    pub wait: Duration,
    pub lowest_rate: f64,
}

fn micros(now: Option<Duration>) -> String {
    now.map_or(String::new(), |d| d.as_micros().to_string())
}

impl Scripts {
    /// Reserves one slot on `schedule`.
    pub async fn reserve(
        &self,
        conn: &mut ConnectionManager,
        schedule: &Schedule,
        ask: Ask<'_>,
    ) -> redis::RedisResult<Slot> {
        let (wait, lowest): (i64, f64) = self
            .reserve
            .key(schedule.key("pace"))
            .key(schedule.key("pause"))
            .key(schedule.key("rates"))
            .key(schedule.key("seen"))
            .arg(ask.rate)
            .arg(ask.max_rate)
            .arg(ask.burst)
            .arg(ask.name)
            .arg(micros(ask.now))
            .invoke_async(conn)
            .await?;
        Ok(Slot {
            wait: Duration::from_micros(wait.max(0) as u64),
            lowest_rate: lowest,
        })
    }

    /// Pauses everyone on `schedule` for `pause` from now.
    pub async fn pause(
        &self,
        conn: &mut ConnectionManager,
        schedule: &Schedule,
        pause: Duration,
        now: Option<Duration>,
    ) -> redis::RedisResult<()> {
        self.pause
            .key(schedule.key("pause"))
            .arg(pause.as_micros().to_string())
            .arg(micros(now))
            .invoke_async(conn)
            .await
    }
}

/// The pacer whose schedule is in Redis.
pub struct SharedPacer {
    conn: ConnectionManager,
    scripts: Arc<Scripts>,
    schedule: Arc<Schedule>,
    burst: u32,
    /// `--rate`.
    max_rate: f64,
    /// Names this importer among those sharing the schedule.
    name: String,
    /// Told once, when another importer's lower `--rate` wins.
    warn: Box<dyn Fn(&str) + Send + Sync>,
    warned: AtomicBool,
    origin: Instant,
    state: Mutex<State>,
    /// Waiters take turns in arrival order (tokio's mutex is fair), as with the local pacer.
    turn: tokio::sync::Mutex<()>,
    /// How long Redis may stay unreachable before the run stops.
    timeout: Duration,
    /// Cancelled when it did: the run stops, its unsent records kept for `--resume`.
    stop: CancellationToken,
    /// Why the run stopped, once it did.
    lost: Mutex<Option<String>>,
    /// Names the Redis in messages, without its password.
    shown: String,
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

struct State {
    adapt: Adaptation,
    /// When requests were accepted lately, counted as the local pacer counts them.
    accepted: AcceptLog,
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
                return Err(format!(
                    "--shared-limit {shown}: Redis did not answer for {}s ({}); start it, or \
                     leave --shared-limit out to pace this importer alone",
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

impl SharedPacer {
    /// Paces at `rate` requests per second on the schedule `link` reaches.
    pub fn new(link: Link, rate: f64, burst: u32) -> SharedPacer {
        SharedPacer {
            conn: link.conn,
            scripts: Arc::new(Scripts::default()),
            schedule: Arc::new(link.schedule),
            max_rate: rate,
            name: ulid::Ulid::generate().to_string(),
            warn: link.warn,
            warned: AtomicBool::new(false),
            timeout: link.timeout,
            stop: link.stop,
            lost: Mutex::new(None),
            shown: link.shown,
            burst,
            origin: Instant::now(),
            state: Mutex::new(State {
                adapt: Adaptation::new(rate, Duration::ZERO),
                accepted: AcceptLog::default(),
            }),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Why the run stopped, if Redis stayed unreachable past the timeout.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another worker panicked; the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn since(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.origin)
    }
}

/// The first wait after Redis fails to answer, doubled on each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Pacer for SharedPacer {
    fn acquire(&self) -> Turn<'_> {
        Box::pin(async move {
            let _turn = self.turn.lock().await;
            let mut backoff = FIRST_BACKOFF;
            let mut down_since = None;
            loop {
                let (rate, paused_until, permit) = {
                    let mut s = self.lock();
                    s.adapt.climb(self.since(Instant::now()));
                    let paused_until = s.adapt.paused_until().map(|d| self.origin + d);
                    (s.adapt.rate(), paused_until, s.adapt.permit())
                };
                if let Some(until) = paused_until
                    && until > Instant::now()
                {
                    tokio::time::sleep_until(until).await;
                    continue;
                }
                let mut conn = self.conn.clone();
                // The wait counts from when Redis read its clock, which is nearer the ask
                // than the answer: counted from the answer, a slow one (a reconnect, a
                // script reloaded) would send late, into the next request's second.
                let asked = Instant::now();
                let ask = Ask {
                    rate,
                    max_rate: self.max_rate,
                    burst: self.burst,
                    name: &self.name,
                    now: None,
                };
                match self.scripts.reserve(&mut conn, &self.schedule, ask).await {
                    Ok(slot) => {
                        if slot.lowest_rate < self.max_rate && !self.warned.swap(true, Relaxed) {
                            (self.warn)(&format!(
                                "--shared-limit: another importer on this schedule has --rate \
                                 {}; the lowest wins, so this one goes no faster than that",
                                slot.lowest_rate
                            ));
                        }
                        // The slot is ours: a waiter dropped during this sleep leaves it
                        // unused, which only costs pace, never budget.
                        tokio::time::sleep_until(asked + slot.wait).await;
                        return permit;
                    }
                    Err(e) => {
                        // Nothing goes unpaced: wait, and ask again (the connection manager
                        // reconnects), until the timeout stops the run.
                        let since = *down_since.get_or_insert_with(Instant::now);
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
        self.lock().adapt.rate()
    }

    fn on_accepted(&self) {
        let since = self.since(Instant::now());
        let mut s = self.lock();
        let accepted = s.accepted.accepted(since);
        // The pace is read from the adaptation at every turn.
        let _ = s.adapt.on_accepted(since, accepted);
    }

    fn on_rate_limited(&self, permit: Permit, retry_after: Option<Duration>) {
        let since = self.since(Instant::now());
        let mut s = self.lock();
        let accepted = s.accepted.counts(since);
        let _ = s
            .adapt
            .on_rate_limited(since, permit, accepted, retry_after);
        // Everyone pauses as long as this importer does.
        let Some(pause) = s
            .adapt
            .paused_until()
            .map(|until| until.saturating_sub(since))
        else {
            return;
        };
        let (mut conn, scripts, schedule) = (
            self.conn.clone(),
            self.scripts.clone(),
            self.schedule.clone(),
        );
        // Not awaited by the worker that saw the 429; a pause Redis misses still holds here.
        tokio::spawn(async move {
            let _ = scripts.pause(&mut conn, &schedule, pause, None).await;
        });
    }

    fn on_trouble(&self, streak: u32) {
        let now = self.since(Instant::now());
        self.lock().adapt.on_trouble(now, streak);
    }
}
