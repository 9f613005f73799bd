//! The fleet's per-origin state in Redis: the pacing schedule, host blocks and the robots.txt
//! cache, each decision one round trip (a Lua script run by `redis::Script`, which sends
//! EVALSHA and reloads the script on NOSCRIPT).
//!
//! Keys, all under `{ns}:host:{ORIGIN}:` with the origin in braces, so that one origin's
//! keys share a Redis Cluster hash slot and one script may touch them together:
//! - `pace`: the next free request time of the origin (Unix ms, Redis's clock);
//! - `block`: a hash `until` (Unix ms), `streak` (refusals in a row), `last` (the last
//!   refusal, Unix ms), `announced` (whether the end of the block was told);
//! - `robots`: a hash `status` (`ok`, `allow_all`, `unreachable`), `body`, `fetched_ms`,
//!   `expires_ms`, with the same lifetime;
//! - `robots:lock`: the single-flight lock of one worker fetching robots.txt.
//!
//! It stores and decides atomically; what the numbers mean for a job is `politeness/`.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};

use super::{Store, StoreError};

/// One acquire: is the origin blocked, else reserve the next request slot.
/// KEYS: pace, block. ARGV: interval ms, longest wait reserved to be waited in place, shortest
/// wait reserved to be kept through a deferral (a wait in between is told, not reserved).
/// Returns {blocked (0/1), wait ms, unblocked now (0/1),
/// Redis's clock in ms}.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = tonumber(redis.call('HGET', KEYS[2], 'until') or '0')
if until_ms > now then
  return {1, until_ms - now, 0, now, 0}
end
local unblocked = 0
if until_ms > 0 and redis.call('HGET', KEYS[2], 'announced') == '0' then
  redis.call('HSET', KEYS[2], 'announced', '1')
  unblocked = 1
end
local interval = tonumber(ARGV[1])
if interval <= 0 then
  return {0, 0, unblocked, now, 0}
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(tat, now)
local wait = slot - now
if wait > tonumber(ARGV[2]) and wait < tonumber(ARGV[3]) then
  return {0, wait, unblocked, now, 0}
end
local nxt = slot + interval
redis.call('SET', KEYS[1], nxt, 'PX', nxt - now + 60000)
return {0, wait, unblocked, now, 1}
";

/// A refusal (429/503) of the origin. KEYS: block. ARGV: retry-after ms (-1 when none), base
/// ms, max ms, quiet ms, a random number in [0, 1) for the jitter. Returns {block ms from now,
/// newly blocked (0/1)}.
const REFUSED: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retry_after = tonumber(ARGV[1])
local base, max, quiet, rand = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local until_old = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
local streak = tonumber(redis.call('HGET', KEYS[1], 'streak') or '0')
if now - last > quiet then streak = 0 end
local fresh = until_old <= now
local block
if retry_after >= 0 then
  block = math.min(retry_after, max)
else
  block = math.min(base * (2 ^ math.min(streak, 40)), max)
  block = math.floor(block * (0.75 + 0.5 * rand))
  block = math.min(math.max(block, 1), max)
end
local new_until = math.max(until_old, now + block)
if fresh then streak = streak + 1 end
redis.call('HSET', KEYS[1], 'until', new_until, 'streak', streak, 'last', now, 'announced', '0')
redis.call('PEXPIRE', KEYS[1], new_until - now + quiet + 60000)
local newly = 0
if fresh then newly = 1 end
return {new_until - now, newly}
";

/// The scripts, hashed once (`redis::Script` sends EVALSHA and loads the source on NOSCRIPT).
static ACQUIRE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ACQUIRE));
static REFUSED_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(REFUSED));

/// What the fleet's pacing and blocks say about one request, and Redis's clock then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquisition {
    /// The decision.
    pub acquired: Acquired,
    /// Redis's clock when it decided (Unix ms): slots are times on that clock, so the workers
    /// of a fleet agree on them whatever their own clocks say.
    pub redis_now_ms: u64,
}

/// The decision of one acquire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The origin is blocked for this long yet.
    Blocked(Duration),
    /// The origin's next slot is `wait` from now (reserved for the caller when `reserved`);
    /// `unblocked` when this call saw a block end first.
    Slot {
        /// How long until the slot.
        wait: Duration,
        /// Whether the slot is the caller's (else only told: the caller could not keep it).
        reserved: bool,
        /// This caller is the first to see the origin's block over (it tells the events).
        unblocked: bool,
    },
}

/// A robots.txt as cached for the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRobots {
    /// `ok` (a body to parse), `allow_all` (4xx) or `unreachable` (5xx, network).
    pub status: String,
    /// The file (the first 500 KiB at most), for `ok`.
    pub body: Vec<u8>,
    /// When it was fetched, Unix ms.
    pub fetched_ms: u64,
    /// When the fleet fetches it again, Unix ms.
    pub expires_ms: u64,
}

/// An origin's state, for `riptide hosts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostState {
    /// The next free request time, Unix ms (0 when none is scheduled).
    pub next_slot_ms: u64,
    /// Blocked until, Unix ms (0 when never blocked recently).
    pub blocked_until_ms: u64,
    /// Refusals in a row.
    pub block_streak: u64,
    /// robots.txt status and fetch time, when cached.
    pub robots: Option<(String, u64, u64)>,
}

/// Politeness round trips to Redis made by this process (scripts, robots reads and writes),
/// for `riptide bench --politeness`; not a metric (the benchmark reads it in process).
static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);

/// Politeness round trips to Redis made by this process so far.
pub fn round_trips() -> u64 {
    ROUND_TRIPS.load(Ordering::Relaxed)
}

fn count_round_trip() {
    ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Store {
    /// The key of one of `origin`'s politeness records.
    pub fn host_key(&self, origin: &str, what: &str) -> String {
        format!("{}:host:{{{origin}}}:{what}", self.prefix)
    }

    /// Checks the origin's block and reserves its next request slot `interval` after the
    /// last one (no reservation when `interval` is zero). One round trip.
    pub async fn acquire_slot(
        &self,
        origin: &str,
        interval: Duration,
        (inline, deferred): (Duration, Duration),
    ) -> Result<Acquisition, StoreError> {
        count_round_trip();
        let mut conn = self.pool.get().await?;
        let (blocked, wait, unblocked, now, reserved): (u8, i64, u8, i64, u8) = ACQUIRE_SCRIPT
            .key(self.host_key(origin, "pace"))
            .key(self.host_key(origin, "block"))
            .arg(millis(interval))
            .arg(millis(inline))
            .arg(millis(deferred))
            .invoke_async(&mut conn)
            .await?;
        let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
        let acquired = if blocked == 1 {
            Acquired::Blocked(wait)
        } else {
            Acquired::Slot { wait, reserved: reserved == 1, unblocked: unblocked == 1 }
        };
        Ok(Acquisition { acquired, redis_now_ms: u64::try_from(now).unwrap_or(0) })
    }

    /// Records a refusal (429/503) of the origin and blocks it for the fleet: `retry_after`
    /// when the site said, else the doubling backoff. Returns the block's length and whether
    /// this refusal started it (rather than extending a block that was on).
    pub async fn record_refusal(
        &self,
        origin: &str,
        retry_after: Option<Duration>,
        base: Duration,
        max: Duration,
        quiet: Duration,
    ) -> Result<(Duration, bool), StoreError> {
        count_round_trip();
        let mut conn = self.pool.get().await?;
        let retry_after = retry_after.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let (block, newly): (i64, u8) = REFUSED_SCRIPT
            .key(self.host_key(origin, "block"))
            .arg(retry_after)
            .arg(millis(base))
            .arg(millis(max))
            .arg(millis(quiet))
            .arg(fastrand::f64())
            .invoke_async(&mut conn)
            .await?;
        Ok((Duration::from_millis(u64::try_from(block).unwrap_or(0)), newly == 1))
    }

    /// The cached robots.txt of the origin, if the fleet has one.
    pub async fn robots(&self, origin: &str) -> Result<Option<CachedRobots>, StoreError> {
        count_round_trip();
        let mut conn = self.pool.get().await?;
        let (status, body, fetched, expires): (Option<String>, Option<Vec<u8>>, Option<u64>, Option<u64>) =
            redis::cmd("HMGET")
                .arg(self.host_key(origin, "robots"))
                .arg(&["status", "body", "fetched_ms", "expires_ms"])
                .query_async(&mut conn)
                .await?;
        Ok(status.map(|status| CachedRobots {
            status,
            body: body.unwrap_or_default(),
            fetched_ms: fetched.unwrap_or(0),
            expires_ms: expires.unwrap_or(0),
        }))
    }

    /// Caches the origin's robots.txt for the fleet until `cached.expires_ms`, and releases
    /// the fetch lock, in one MULTI.
    pub async fn save_robots(&self, origin: &str, cached: &CachedRobots) -> Result<(), StoreError> {
        count_round_trip();
        let key = self.host_key(origin, "robots");
        let ttl_ms = cached.expires_ms.saturating_sub(crate::job::now_ms()).max(1);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(&key)
            .ignore()
            .hset_multiple(
                &key,
                &[
                    ("status", cached.status.as_bytes().to_vec()),
                    ("body", cached.body.clone()),
                    ("fetched_ms", cached.fetched_ms.to_string().into_bytes()),
                    ("expires_ms", cached.expires_ms.to_string().into_bytes()),
                ],
            )
            .ignore()
            .pexpire(&key, i64::try_from(ttl_ms).unwrap_or(i64::MAX))
            .ignore()
            .del(self.host_key(origin, "robots:lock"))
            .ignore();
        let mut conn = self.pool.get().await?;
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Takes the origin's robots.txt fetch lock for `ttl` (single flight: one worker of the
    /// fleet fetches, the others read its copy). `false` when another worker holds it.
    pub async fn lock_robots(&self, origin: &str, ttl: Duration) -> Result<bool, StoreError> {
        count_round_trip();
        let mut conn = self.pool.get().await?;
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.host_key(origin, "robots:lock"))
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl).max(1))
            .query_async(&mut conn)
            .await?;
        Ok(taken.is_some())
    }

    /// The origin's pacing, block and robots state, for `riptide hosts`.
    pub async fn host_state(&self, origin: &str) -> Result<HostState, StoreError> {
        let mut conn = self.pool.get().await?;
        let next_slot_ms: Option<u64> = conn.get(self.host_key(origin, "pace")).await?;
        let block: HashMap<String, String> = conn.hgetall(self.host_key(origin, "block")).await?;
        let number = |field: &str| block.get(field).and_then(|v| v.parse().ok()).unwrap_or(0);
        let robots = self.robots(origin).await?.map(|r| (r.status, r.fetched_ms, r.expires_ms));
        Ok(HostState {
            next_slot_ms: next_slot_ms.unwrap_or(0),
            blocked_until_ms: number("until"),
            block_streak: number("streak"),
            robots,
        })
    }

    /// Origins with politeness state (pacing or block records), by SCAN.
    pub async fn known_origins(&self) -> Result<Vec<String>, StoreError> {
        let mut origins = Vec::new();
        for key in self.keys_matching(&format!("{}:host:{{*}}:*", self.prefix)).await? {
            let inner = key.split_once(":host:{").and_then(|(_, rest)| rest.rsplit_once("}:")).map(|(o, _)| o);
            if let Some(origin) = inner
                && !origins.iter().any(|o: &String| o == origin)
            {
                origins.push(origin.to_string());
            }
        }
        origins.sort();
        Ok(origins)
    }
}
