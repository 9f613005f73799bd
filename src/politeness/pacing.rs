//! The pacing interval of an origin: the largest of `politeness.default_delay_ms` (or the
//! first matching `[[politeness.hosts]]` override) and the site's robots.txt `Crawl-delay`
//! (capped by `politeness.max_crawl_delay_secs`).
//!
//! Pure arithmetic over the configuration; the fleet-wide schedule itself is a Redis script
//! in `store/hosts.rs`, and what a wait means for a job is `politeness/mod.rs`.

use std::time::Duration;

use crate::config::{HostOverride, PolitenessConfig};

/// The configured delay of `host` (lower case, without port) on `port`: the first override
/// whose pattern matches, else the default.
pub fn configured_delay(config: &PolitenessConfig, host: &str, port: u16) -> Duration {
    let delay_ms =
        config.hosts.iter().find(|o| pattern_matches(o, host, port)).map_or(config.default_delay_ms, |o| o.delay_ms);
    Duration::from_millis(delay_ms)
}

/// The interval between two requests to the origin: the configured delay, raised to the
/// site's `Crawl-delay` (capped) when it asks for more. A configured delay of zero turns
/// pacing off for the origin, whatever the site asks (the operator's own sites).
pub fn interval(config: &PolitenessConfig, host: &str, port: u16, crawl_delay: Option<Duration>) -> Duration {
    let configured = configured_delay(config, host, port);
    if configured.is_zero() {
        return Duration::ZERO;
    }
    let cap = Duration::from_secs(config.max_crawl_delay_secs);
    configured.max(crawl_delay.unwrap_or_default().min(cap))
}

/// `example.com` (that host on any port), `example.com:8080` (that port only), or
/// `*.example.com` (the domain and every subdomain), case-insensitive.
fn pattern_matches(rule: &HostOverride, host: &str, port: u16) -> bool {
    let pattern = rule.pattern.trim().to_ascii_lowercase();
    let (pattern_host, pattern_port) = match pattern.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.is_empty() => (h.to_string(), p.parse().ok()),
        _ => (pattern.clone(), None),
    };
    if pattern_port.is_some_and(|p: u16| p != port) {
        return false;
    }
    match pattern_host.strip_prefix("*.") {
        Some(domain) => host == domain || host.ends_with(&format!(".{domain}")),
        None => host == pattern_host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hosts: &[(&str, u64)]) -> PolitenessConfig {
        use figment::providers::Format;
        let mut config: crate::config::Config =
            figment::Figment::from(figment::providers::Toml::string(crate::config::DEFAULT_TOML)).extract().unwrap();
        config.politeness.hosts =
            hosts.iter().map(|(p, d)| HostOverride { pattern: (*p).to_string(), delay_ms: *d }).collect();
        config.politeness
    }

    #[test]
    fn overrides_match_hosts_ports_and_subdomains() {
        let c = config(&[("127.0.0.1:8080", 0), ("*.example.com", 200), ("other.org", 5000)]);
        assert_eq!(configured_delay(&c, "127.0.0.1", 8080), Duration::ZERO);
        assert_eq!(configured_delay(&c, "127.0.0.1", 8081), Duration::from_millis(1000));
        assert_eq!(configured_delay(&c, "a.b.example.com", 443), Duration::from_millis(200));
        assert_eq!(configured_delay(&c, "example.com", 80), Duration::from_millis(200));
        assert_eq!(configured_delay(&c, "badexample.com", 80), Duration::from_millis(1000));
        assert_eq!(configured_delay(&c, "other.org", 443), Duration::from_millis(5000));
    }

    #[test]
    fn crawl_delay_raises_the_interval_up_to_the_cap() {
        let c = config(&[("fast.example", 0)]);
        assert_eq!(interval(&c, "a.example", 80, Some(Duration::from_secs(5))), Duration::from_secs(5));
        assert_eq!(interval(&c, "a.example", 80, Some(Duration::from_secs(3600))), Duration::from_secs(30));
        assert_eq!(interval(&c, "a.example", 80, Some(Duration::from_millis(10))), Duration::from_secs(1));
        assert_eq!(interval(&c, "fast.example", 80, Some(Duration::from_secs(5))), Duration::ZERO);
    }
}
