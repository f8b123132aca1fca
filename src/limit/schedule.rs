//! What the importers sharing a schedule keep in Redis, and the scripts over it: the GCRA
//! schedule of their turns, the pause after a 429, each one's `--rate` and acceptances, and
//! the adaptation's state (serialized, with a version so that a write from a stale copy is
//! refused). Redis stores and counts; the rules are computed in Rust (`adapt`).

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::adapt::{ACCEPT_WINDOW, Accepted, Adaptation};

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
/// time), after the pause in `KEYS[2]`, at the pace in the adaptation's state (`KEYS[5]`).
/// `ARGV`: this importer's `--rate` (requests/s), `--burst`, its name, what it accepted in
/// the last second and lately, the accept window in microseconds, and the time now in
/// microseconds, or empty for Redis's own clock. The lowest `--rate` of the importers seen in
/// the last 10 s wins (`KEYS[3]` their rates, `KEYS[4]` when each was seen, `KEYS[6]` what
/// each accepted). Returns the slot and the time now (microseconds), that lowest rate, the
/// state's version (0 when there is none), and what the other importers accepted in the last
/// second (those seen within it) and lately. Keys expire once idle, and lost keys (a
/// restarted Redis) only start the schedule and the adaptation again from now.
const RESERVE: &str = r"
local now = clock(ARGV[7])
local name = ARGV[3]
redis.call('ZADD', KEYS[4], now, name)
redis.call('ZADD', KEYS[3], ARGV[1], name)
redis.call('HSET', KEYS[6], name, ARGV[4] .. ' ' .. ARGV[5])
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - 10000000)) do
  redis.call('ZREM', KEYS[4], gone)
  redis.call('ZREM', KEYS[3], gone)
  redis.call('HDEL', KEYS[6], gone)
end
for i = 3, 6 do redis.call('PEXPIRE', KEYS[i], 60000) end
local last_second, lately = 0, 0
local seen = redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES')
for i = 1, #seen, 2 do
  local counts = seen[i] ~= name and redis.call('HGET', KEYS[6], seen[i])
  if counts then
    local s, l = string.match(counts, '(%d+) (%d+)')
    lately = lately + tonumber(l)
    if tonumber(seen[i + 1]) >= now - tonumber(ARGV[6]) then
      last_second = last_second + tonumber(s)
    end
  end
end
local lowest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2]
local state = redis.call('HMGET', KEYS[5], 'v', 'rate')
local rate = math.min(tonumber(state[2]) or tonumber(ARGV[1]), tonumber(lowest))
local interval = math.floor(1000000 / rate + 0.5)
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local pause = tonumber(redis.call('GET', KEYS[2]))
if pause and tat < pause then tat = pause end
local at = tat - tolerance
if at < now then at = now end
if pause and at < pause then at = pause end
local next = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.floor((next - now) / 1000) + 1000)
return {at, now, lowest, tonumber(state[1]) or 0, last_second, lately}
";

/// Writes the adaptation's state `ARGV[2]` (its pace `ARGV[3]`) over `KEYS[1]` if its
/// version is still `ARGV[1]`, and pauses the schedule (`KEYS[2]`) until `ARGV[4]`
/// (microseconds, or empty) unless it is paused longer already: a 429 seen by one importer
/// pauses them all. `ARGV[5]` is the time now, or empty for Redis's clock. Returns the new
/// version, or 0 when another importer wrote first.
const COMMIT: &str = r"
local version = tonumber(redis.call('HGET', KEYS[1], 'v')) or 0
if version ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', version + 1, 'state', ARGV[2], 'rate', ARGV[3])
redis.call('PEXPIRE', KEYS[1], 60000)
local until_ = tonumber(ARGV[4])
local now = clock(ARGV[5])
if until_ and until_ > now and until_ > (tonumber(redis.call('GET', KEYS[2])) or 0) then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', math.floor((until_ - now) / 1000) + 1000)
end
return version + 1
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
    commit: redis::Script,
}

impl Default for Scripts {
    fn default() -> Scripts {
        Scripts {
            reserve: redis::Script::new(&format!("{CLOCK}{RESERVE}")),
            commit: redis::Script::new(&format!("{CLOCK}{COMMIT}")),
        }
    }
}

/// One importer's ask for a turn.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// Its `--rate`, in requests per second.
    pub max_rate: f64,
    pub burst: u32,
    /// Names it among the importers sharing the schedule.
    pub name: &'a str,
    /// What it accepted lately, for the others' counts.
    pub accepted: Accepted,
    /// Overrides Redis's clock (tests).
    pub now: Option<Duration>,
}

/// What a reservation gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// When the slot is, and when Redis reserved it, on Redis's clock.
    pub at: Duration,
    pub now: Duration,
    /// The lowest `--rate` sharing the schedule.
    pub lowest_rate: f64,
    /// The version of the adaptation's state (0: none yet).
    pub version: u64,
    /// What the other importers accepted lately.
    pub others: Accepted,
}

/// A change to the adaptation's state.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    /// The version it was computed from.
    pub from: u64,
    pub state: &'a Adaptation,
    /// Overrides Redis's clock (tests).
    pub now: Option<Duration>,
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
        let (at, now, lowest, version, last_second, lately): (u64, u64, f64, u64, u32, u32) = self
            .reserve
            .key(schedule.key("pace"))
            .key(schedule.key("pause"))
            .key(schedule.key("rates"))
            .key(schedule.key("seen"))
            .key(schedule.key("adapt"))
            .key(schedule.key("accepted"))
            .arg(ask.max_rate)
            .arg(ask.burst)
            .arg(ask.name)
            .arg(ask.accepted.last_second)
            .arg(ask.accepted.lately)
            .arg(ACCEPT_WINDOW.as_micros().to_string())
            .arg(micros(ask.now))
            .invoke_async(conn)
            .await?;
        Ok(Slot {
            at: Duration::from_micros(at),
            now: Duration::from_micros(now),
            lowest_rate: lowest,
            version,
            others: Accepted {
                last_second,
                lately,
            },
        })
    }

    /// Writes `commit` unless another importer wrote first; the new version, if written.
    pub async fn commit(
        &self,
        conn: &mut ConnectionManager,
        schedule: &Schedule,
        commit: Commit<'_>,
    ) -> redis::RedisResult<Option<u64>> {
        let state = serde_json::to_string(commit.state).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Client, "state", e.to_string()))
        })?;
        let version: u64 = self
            .commit
            .key(schedule.key("adapt"))
            .key(schedule.key("pause"))
            .arg(commit.from)
            .arg(state)
            .arg(commit.state.rate())
            .arg(micros(commit.state.paused_until()))
            .arg(micros(commit.now))
            .invoke_async(conn)
            .await?;
        Ok((version > 0).then_some(version))
    }

    /// The adaptation's state on `schedule` and its version: none (version 0) before any
    /// was written, after a restart of Redis, or when another release wrote it unreadably.
    pub async fn state(
        &self,
        conn: &mut ConnectionManager,
        schedule: &Schedule,
    ) -> redis::RedisResult<(u64, Option<Adaptation>)> {
        let (version, state): (Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(schedule.key("adapt"))
            .arg("v")
            .arg("state")
            .query_async(conn)
            .await?;
        let state = state.and_then(|s| serde_json::from_str(&s).ok());
        Ok((version.unwrap_or(0), state))
    }
}
