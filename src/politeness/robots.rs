//! robots.txt (RFC 9309) for the fleet: fetched once per origin per TTL by one worker (a lock
//! in Redis; the others read its copy), parsed by `robotxt` for the configured user-agent
//! token, and kept parsed in each worker until the fleet's copy expires.
//!
//! RFC 9309 section 2.3.1: a 2xx is parsed (the first 500 KiB); a 4xx (but 429) or too many
//! redirects means everything is allowed; a 429, 5xx or an unreachable server means nothing
//! is allowed for now, and the file is fetched again after
//! `politeness.robots_error_recheck_secs` (the jobs wait in the delay queues meanwhile).
//! It answers "may this URL be fetched"; it must not fetch pages or settle jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use robotxt::Robots;
use url::Url;

use crate::config::PolitenessConfig;
use crate::fetch::{FetchError, Fetcher};
use crate::job::now_ms;
use crate::ops::metrics as m;
use crate::store::hosts::CachedRobots;
use crate::store::{Store, StoreError};

/// Bytes of a robots.txt that are parsed (RFC 9309: at least 500 KiB); more is not downloaded.
pub const ROBOTS_BYTE_LIMIT: usize = robotxt::BYTE_LIMIT;

/// Parsed robots.txt files kept per worker; past this many origins the cache starts over
/// (each origin's copy is still in Redis, one GET away).
const MAX_LOCAL_ORIGINS: usize = 10_000;

/// The `outcome` labels of `riptide_robots_fetches_total`: what the fleet caches.
pub const FETCH_OUTCOMES: [&str; 3] = ["ok", "allow_all", "unreachable"];

/// How often a worker that lost the fetch lock looks for the winner's copy.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// What robots.txt says about one URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RobotsVerdict {
    /// Fetch it, no sooner than `crawl_delay` after the origin's last request.
    Allowed {
        /// The site's `Crawl-delay` for our group, if it set one.
        crawl_delay: Option<Duration>,
    },
    /// The site disallows it for our user agent.
    Denied,
    /// robots.txt could not be had (5xx, unreachable, or another worker is fetching it):
    /// nothing may be fetched for `recheck_in`.
    Unavailable {
        /// When to look again.
        recheck_in: Duration,
    },
}

#[derive(Debug)]
enum Rules {
    Parsed(Robots),
    AllowAll,
    Unreachable,
}

#[derive(Debug)]
struct Entry {
    rules: Rules,
    expires_ms: u64,
}

/// The robots.txt side of politeness, shared by a worker's jobs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RobotsCache {
    local: Arc<Mutex<HashMap<String, Arc<Entry>>>>,
    /// The product token matched against `User-agent` lines (the user agent's first word).
    agent: String,
}

/// Why robots.txt could not be consulted.
#[derive(Debug, thiserror::Error)]
pub enum RobotsError {
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The product token of a User-Agent header: `riptide/0.1 (+url)` gives `riptide`.
pub fn agent_token(user_agent: &str) -> String {
    user_agent.split(|c: char| c == '/' || c.is_whitespace()).find(|s| !s.is_empty()).unwrap_or("*").to_string()
}

impl RobotsCache {
    /// A cache matching groups for the product token of `user_agent`.
    pub fn new(user_agent: &str) -> Self {
        RobotsCache { local: Arc::default(), agent: agent_token(user_agent) }
    }

    /// What the origin's robots.txt says about `url`, fetching it (once for the fleet) when
    /// neither this worker nor Redis has a current copy.
    pub async fn verdict(
        &self,
        origin: &str,
        url: &Url,
        store: &Store,
        fetcher: &Fetcher,
        config: &PolitenessConfig,
        allow_private: bool,
    ) -> Result<RobotsVerdict, RobotsError> {
        let now = now_ms();
        if let Some(entry) = self.local_entry(origin, now) {
            return Ok(judge(&entry, url, now));
        }
        let cached = match store.robots(origin).await? {
            Some(cached) if cached.expires_ms > now => cached,
            _ => match self.fetch_once(origin, url, store, fetcher, config, allow_private).await? {
                Some(cached) => cached,
                None => {
                    // Another worker is fetching it; the job waits a little in the delay queue.
                    return Ok(RobotsVerdict::Unavailable { recheck_in: Duration::from_secs(1) });
                }
            },
        };
        let entry = Arc::new(Entry { rules: self.parse(&cached), expires_ms: cached.expires_ms });
        let verdict = judge(&entry, url, now);
        let mut local = self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if local.len() >= MAX_LOCAL_ORIGINS {
            local.clear();
        }
        local.insert(origin.to_string(), entry);
        Ok(verdict)
    }

    fn local_entry(&self, origin: &str, now: u64) -> Option<Arc<Entry>> {
        let local = self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        local.get(origin).filter(|e| e.expires_ms > now).cloned()
    }

    fn parse(&self, cached: &CachedRobots) -> Rules {
        match cached.status.as_str() {
            "ok" => Rules::Parsed(Robots::parse(&cached.body, self.agent.as_str())),
            "allow_all" => Rules::AllowAll,
            _ => Rules::Unreachable,
        }
    }

    /// Single flight: the worker that takes the lock fetches and caches the file; the others
    /// wait up to the lock's life for its copy. `None` when the copy did not come in time.
    async fn fetch_once(
        &self,
        origin: &str,
        url: &Url,
        store: &Store,
        fetcher: &Fetcher,
        config: &PolitenessConfig,
        allow_private: bool,
    ) -> Result<Option<CachedRobots>, RobotsError> {
        let timeout = Duration::from_millis(config.robots_timeout_ms);
        let lock_life = timeout + Duration::from_secs(2);
        if store.lock_robots(origin, lock_life).await? {
            // The copy may have landed between our read and the lock (its fetcher's lock had
            // run out): use it rather than fetching the file a second time.
            if let Some(cached) = store.robots(origin).await?.filter(|c| c.expires_ms > now_ms()) {
                return Ok(Some(cached));
            }
            let cached = fetch(url, fetcher, config, allow_private, timeout).await;
            store.save_robots(origin, &cached).await?;
            return Ok(Some(cached));
        }
        let wait = Duration::from_millis(config.max_inline_wait_ms).min(lock_life);
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(LOCK_POLL).await;
            if let Some(cached) = store.robots(origin).await?.filter(|c| c.expires_ms > now_ms()) {
                return Ok(Some(cached));
            }
        }
        Ok(None)
    }
}

/// The verdict on one URL with no fleet and no cache (`riptide extract`): fetch the origin's
/// robots.txt now, parse it, judge.
pub async fn check_once(url: &Url, fetcher: &Fetcher, config: &crate::config::Config) -> RobotsVerdict {
    let timeout = Duration::from_millis(config.politeness.robots_timeout_ms);
    let cached = fetch(url, fetcher, &config.politeness, config.allow_private_networks, timeout).await;
    let entry =
        Entry { rules: RobotsCache::new(&config.fetch.user_agent).parse(&cached), expires_ms: cached.expires_ms };
    judge(&entry, url, now_ms())
}

/// Fetches the origin's robots.txt and turns the outcome into what the fleet caches.
async fn fetch(
    url: &Url,
    fetcher: &Fetcher,
    config: &PolitenessConfig,
    allow_private: bool,
    timeout: Duration,
) -> CachedRobots {
    let mut robots_url = url.clone();
    robots_url.set_path("/robots.txt");
    robots_url.set_query(None);
    robots_url.set_fragment(None);
    let fetched_ms = now_ms();
    let ttl_ms = config.robots_ttl_secs.min(86_400).saturating_mul(1000);
    let recheck_ms = config.robots_error_recheck_secs.saturating_mul(1000);
    let (status, body, life_ms) = match fetcher
        .fetch_robots(&robots_url, ROBOTS_BYTE_LIMIT, timeout, allow_private)
        .await
    {
        Ok(response) if (200..300).contains(&response.status) => ("ok", response.body, ttl_ms),
        Ok(response) if response.status == 429 || response.status >= 500 => ("unreachable", Vec::new(), recheck_ms),
        // 3xx left over (no Location) and 4xx: no usable file, everything is allowed.
        Ok(_) => ("allow_all", Vec::new(), ttl_ms),
        Err(FetchError::TooManyRedirects(_)) => ("allow_all", Vec::new(), ttl_ms),
        // An address the guard refuses: robots.txt is moot, because the page request meets the
        // same guard and ends as `blocked_address`, a clear permanent refusal. Judging it
        // "unreachable" instead would defer such jobs for ever. Kept only until the recheck, in
        // case the operator's address rules change.
        Err(FetchError::Blocked(_)) => ("allow_all", Vec::new(), recheck_ms),
        Err(error) => {
            tracing::info!(url = %crate::redact::url(robots_url.as_str()), %error, "robots.txt unreachable; the origin waits.");
            ("unreachable", Vec::new(), recheck_ms)
        }
    };
    metrics::counter!(m::ROBOTS_FETCHES_TOTAL, "outcome" => status).increment(1);
    CachedRobots { status: status.to_string(), body, fetched_ms, expires_ms: fetched_ms.saturating_add(life_ms) }
}

fn judge(entry: &Entry, url: &Url, now: u64) -> RobotsVerdict {
    match &entry.rules {
        Rules::AllowAll => RobotsVerdict::Allowed { crawl_delay: None },
        Rules::Unreachable => {
            RobotsVerdict::Unavailable { recheck_in: Duration::from_millis(entry.expires_ms.saturating_sub(now)) }
        }
        Rules::Parsed(robots) if robots.is_url_allowed(url) => {
            RobotsVerdict::Allowed { crawl_delay: robots.crawl_delay() }
        }
        Rules::Parsed(_) => RobotsVerdict::Denied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &str) -> Entry {
        Entry { rules: Rules::Parsed(Robots::parse(body.as_bytes(), "riptide")), expires_ms: u64::MAX }
    }

    fn verdict(body: &str, url: &str) -> RobotsVerdict {
        judge(&entry(body), &Url::parse(url).unwrap(), 0)
    }

    #[test]
    fn agent_tokens() {
        assert_eq!(agent_token("riptide/0.1 (+https://x)"), "riptide");
        assert_eq!(agent_token("  MyBot"), "MyBot");
        assert_eq!(agent_token(""), "*");
    }

    #[test]
    fn rules_for_our_group_and_the_default_group() {
        let body = "User-agent: *\nDisallow: /private\n\nUser-agent: RIPTIDE\nDisallow: /no\nCrawl-delay: 3\n";
        assert_eq!(verdict(body, "http://a.example/no/x"), RobotsVerdict::Denied);
        // Our own group applies, not the default one.
        assert!(matches!(verdict(body, "http://a.example/private"), RobotsVerdict::Allowed { .. }));
        assert_eq!(
            verdict(body, "http://a.example/yes"),
            RobotsVerdict::Allowed { crawl_delay: Some(Duration::from_secs(3)) }
        );
        let star = "User-agent: *\nDisallow: /private\nAllow: /private/ok\n";
        assert_eq!(verdict(star, "http://a.example/private/x"), RobotsVerdict::Denied);
        assert!(matches!(verdict(star, "http://a.example/private/ok"), RobotsVerdict::Allowed { .. }));
        assert!(matches!(verdict(star, "http://a.example/robots.txt"), RobotsVerdict::Allowed { .. }));
    }

    #[test]
    fn hostile_bodies_parse_without_harm() {
        let mut huge = String::from("User-agent: *\n");
        while huge.len() < 600 * 1024 {
            huge.push_str("Disallow: /x\n");
        }
        huge.push_str("Disallow: /\n");
        // The rule past 500 KiB is not read.
        assert!(matches!(verdict(&huge, "http://a.example/y"), RobotsVerdict::Allowed { .. }));
        let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let rules = Entry { rules: Rules::Parsed(Robots::parse(&binary, "riptide")), expires_ms: u64::MAX };
        let _ = judge(&rules, &Url::parse("http://a.example/").unwrap(), 0);
    }

    #[test]
    fn unreachable_waits_until_the_recheck() {
        let e = Entry { rules: Rules::Unreachable, expires_ms: 5_000 };
        assert_eq!(
            judge(&e, &Url::parse("http://a.example/").unwrap(), 1_000),
            RobotsVerdict::Unavailable { recheck_in: Duration::from_secs(4) }
        );
    }
}
