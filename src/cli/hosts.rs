//! `riptide hosts [ORIGIN]`: the fleet's politeness state per origin (next request slot,
//! block, robots.txt status and fetch time), and the paced / blocked counts `riptide stats`
//! shows. It reads Redis only; it changes nothing.

use serde::Serialize;

use crate::config::Config;
use crate::job::now_ms;
use crate::store::Store;

/// Origins looked at, at most: beyond this the counts say so.
const MAX_ORIGINS: usize = 10_000;

/// One origin's row.
#[derive(Debug, Clone, Serialize)]
pub struct HostRow {
    /// `scheme://host:port`.
    pub origin: String,
    /// Milliseconds until the origin's next free request slot (0: free now).
    pub next_slot_in_ms: u64,
    /// Milliseconds the origin stays blocked (0: not blocked).
    pub blocked_for_ms: u64,
    /// Refusals (429/503) in a row.
    pub block_streak: u64,
    /// robots.txt: `ok`, `allow_all`, `unreachable`, or none cached.
    pub robots: Option<String>,
    /// When robots.txt was fetched, Unix ms.
    pub robots_fetched_ms: Option<u64>,
    /// When the fleet fetches it again, Unix ms.
    pub robots_expires_ms: Option<u64>,
}

/// How many origins are paced now (a request slot reserved ahead) and blocked now.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostCounts {
    /// Origins with a request slot reserved in the future.
    pub paced: u64,
    /// Origins blocked after a 429 or 503.
    pub blocked: u64,
    /// Whether there were more origins than were looked at.
    pub truncated: bool,
}

/// The state of `origin`, or of every origin with politeness state.
pub async fn rows(config: &Config, origin: Option<&str>) -> anyhow::Result<Vec<HostRow>> {
    let store = Store::new(&config.redis_url, &config.namespace, &config.store)?;
    let origins = match origin {
        Some(origin) => vec![normalize_origin(origin)],
        None => store.known_origins().await?.into_iter().take(MAX_ORIGINS).collect(),
    };
    let now = now_ms();
    let mut rows = Vec::with_capacity(origins.len());
    for origin in origins {
        let state = store.host_state(&origin).await?;
        let (robots, robots_fetched_ms, robots_expires_ms) = match state.robots {
            Some((status, fetched, expires)) => (Some(status), Some(fetched), Some(expires)),
            None => (None, None, None),
        };
        rows.push(HostRow {
            origin,
            next_slot_in_ms: state.next_slot_ms.saturating_sub(now),
            blocked_for_ms: state.blocked_until_ms.saturating_sub(now),
            block_streak: state.block_streak,
            robots,
            robots_fetched_ms,
            robots_expires_ms,
        });
    }
    Ok(rows)
}

/// The paced and blocked counts for `riptide stats`.
pub async fn counts(config: &Config) -> anyhow::Result<HostCounts> {
    let store = Store::new(&config.redis_url, &config.namespace, &config.store)?;
    let origins = store.known_origins().await?;
    let truncated = origins.len() > MAX_ORIGINS;
    let rows = rows_of(config, origins.into_iter().take(MAX_ORIGINS).collect()).await?;
    Ok(HostCounts {
        paced: rows.iter().filter(|r| r.next_slot_in_ms > 0).count() as u64,
        blocked: rows.iter().filter(|r| r.blocked_for_ms > 0).count() as u64,
        truncated,
    })
}

async fn rows_of(config: &Config, origins: Vec<String>) -> anyhow::Result<Vec<HostRow>> {
    let mut all = Vec::with_capacity(origins.len());
    for origin in origins {
        all.extend(rows(config, Some(&origin)).await?);
    }
    Ok(all)
}

/// `http://Example.com/x` or `example.com:8080` to the `scheme://host:port` the keys use.
fn normalize_origin(raw: &str) -> String {
    let with_scheme = if raw.contains("://") { raw.to_string() } else { format!("http://{raw}") };
    match url::Url::parse(&with_scheme) {
        Ok(url) => crate::fetch::canonical::origin_key(&url),
        Err(_) => raw.to_string(),
    }
}

/// The table.
pub fn render(rows: &[HostRow]) -> String {
    let mut out = format!(
        "{:<40} {:>10} {:>10} {:>6} {:<12} {:>12}\n",
        "origin", "next in", "blocked", "streak", "robots", "robots age"
    );
    let now = now_ms();
    for row in rows {
        let age = row.robots_fetched_ms.map_or("-".to_string(), |t| format!("{}s", now.saturating_sub(t) / 1000));
        out.push_str(&format!(
            "{:<40} {:>8}ms {:>8}ms {:>6} {:<12} {:>12}\n",
            row.origin,
            row.next_slot_in_ms,
            row.blocked_for_ms,
            row.block_streak,
            row.robots.as_deref().unwrap_or("-"),
            age
        ));
    }
    if rows.is_empty() {
        out.push_str("(no origin has politeness state)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_spelled_as_the_keys_spell_them() {
        assert_eq!(normalize_origin("Example.com"), "http://example.com:80");
        assert_eq!(normalize_origin("https://example.com/x"), "https://example.com:443");
        assert_eq!(normalize_origin("127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
