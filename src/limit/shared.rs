//! The pacer shared between processes: one GCRA schedule kept in Redis, so every importer
//! naming the same Redis and workspace takes its turns from one budget.
//!
//! Each turn is one round trip: a Lua script reads Redis's own clock (`TIME`, so machines
//! with skewed clocks agree), reserves the next slot on the schedule and says how long to
//! wait for it. Within the process, turns are still taken in arrival order. The adaptation
//! to 429s follows [`Adaptation`]'s rules on this process's clock; the pace it sets is the
//! interval the script spaces this process's reservations by.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::adapt::{ACCEPT_WINDOW, Adaptation};
use super::{Pacer, Permit, Turn};

/// Reserves the next slot of the schedule at `KEYS[1]`: GCRA with interval `ARGV[1]` and
/// tolerance `ARGV[2]` (microseconds). `ARGV[3]` is the time now in microseconds, or empty
/// for Redis's own clock (tests inject time through it). Returns the wait, in microseconds,
/// until the reserved slot. The key expires once the schedule is idle, and a lost key (a
/// restarted Redis) only starts the schedule again from now.
const RESERVE: &str = r"
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local at = tat - tolerance
if at < now then at = now end
local next = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.floor((next - now) / 1000) + 1000)
return at - now
";

/// Where a shared schedule lives, and whose it is.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The Redis key, with a `{hash tag}` so a Redis Cluster keeps it on one node.
    pub key: String,
}

impl Schedule {
    /// The schedule of the workspace named `workspace` (site id and region, or the sandbox).
    pub fn of(workspace: &str) -> Schedule {
        Schedule {
            key: format!("cio-import:{{{workspace}}}:pace"),
        }
    }
}

/// The pacer whose schedule is in Redis.
pub struct SharedPacer {
    conn: ConnectionManager,
    script: redis::Script,
    schedule: Schedule,
    burst: u32,
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
}

struct State {
    adapt: Adaptation,
    /// When the requests of the last [`ACCEPT_WINDOW`] were accepted.
    accepted: VecDeque<Instant>,
}

/// Reserves one slot on `schedule` at `rate` (with `burst` back to back) through `conn`;
/// `now` overrides Redis's clock. The wait until the slot.
pub async fn reserve(
    conn: &mut ConnectionManager,
    script: &redis::Script,
    schedule: &Schedule,
    rate: f64,
    burst: u32,
    now: Option<Duration>,
) -> redis::RedisResult<Duration> {
    let interval = (1e6 / rate).round().max(1.0) as u64;
    let tolerance = interval * u64::from(burst.saturating_sub(1));
    let now = now.map_or(String::new(), |d| d.as_micros().to_string());
    let wait: i64 = script
        .key(&schedule.key)
        .arg(interval)
        .arg(tolerance)
        .arg(now)
        .invoke_async(conn)
        .await?;
    Ok(Duration::from_micros(wait.max(0) as u64))
}

/// The script that reserves a slot.
pub fn reserve_script() -> redis::Script {
    redis::Script::new(RESERVE)
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
            script: reserve_script(),
            schedule: link.schedule,
            timeout: link.timeout,
            stop: link.stop,
            lost: Mutex::new(None),
            shown: link.shown,
            burst,
            origin: Instant::now(),
            state: Mutex::new(State {
                adapt: Adaptation::new(rate, Duration::ZERO),
                accepted: VecDeque::new(),
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
                match reserve(
                    &mut conn,
                    &self.script,
                    &self.schedule,
                    rate,
                    self.burst,
                    None,
                )
                .await
                {
                    Ok(wait) => {
                        // The slot is ours: a waiter dropped during this sleep leaves it
                        // unused, which only costs pace, never budget.
                        tokio::time::sleep(wait).await;
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
        let now = Instant::now();
        let mut s = self.lock();
        s.adapt.on_accepted();
        s.accepted.push_back(now);
        while s
            .accepted
            .front()
            .is_some_and(|t| now.duration_since(*t) > ACCEPT_WINDOW)
        {
            s.accepted.pop_front();
        }
    }

    fn on_rate_limited(&self, permit: Permit, retry_after: Option<Duration>) {
        let now = Instant::now();
        let mut s = self.lock();
        let accepted = s
            .accepted
            .iter()
            .filter(|t| now.duration_since(**t) <= ACCEPT_WINDOW)
            .count();
        s.adapt
            .on_rate_limited(self.since(now), permit, accepted, retry_after);
    }

    fn on_trouble(&self, streak: u32) {
        let now = self.since(Instant::now());
        self.lock().adapt.on_trouble(now, streak);
    }
}
