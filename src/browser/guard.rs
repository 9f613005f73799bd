//! The request guard inside the browser: which requests a rendered page may make.
//!
//! It owns the per-request verdict (non-public addresses, by the same rule as static fetch,
//! `crate::fetch::guard::is_non_public`; optional image/font/media blocking). It must not
//! speak CDP: `instance.rs` pauses each request (`Fetch.requestPaused`) and applies the verdict.
//!
//! Known limit: a hostname is resolved here and again by Chromium, so a DNS answer that
//! changes in between (rebinding) is not caught; literal IPs and `localhost` always are.

use std::net::IpAddr;

use url::{Host, Url};

use crate::fetch::guard::{BlockedAddress, is_non_public};

use super::config::BrowserConfig;

/// What the browser says a request is for (CDP `Network.ResourceType`), reduced to what the
/// guard decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// The page itself or a frame.
    Document,
    /// An image.
    Image,
    /// A web font.
    Font,
    /// Audio or video.
    Media,
    /// Anything else (scripts, styles, XHR, fetch, websockets...).
    Other,
}

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Let it through.
    Allow,
    /// Refuse it: the address is not public.
    Blocked(BlockedAddress),
    /// Refuse it: its resource type is blocked for speed.
    Skipped,
}

/// The guard's rules, fixed at pool start.
#[derive(Debug, Clone)]
pub(crate) struct RequestGuard {
    allow_private: bool,
    allow_origins: Vec<url::Origin>,
    block_images: bool,
    block_fonts: bool,
    block_media: bool,
}

impl RequestGuard {
    /// The rules of `config`, with the worker-wide `allow_private_networks`.
    pub(crate) fn new(config: &BrowserConfig, allow_private: bool) -> Self {
        let allow_origins = config
            .guard_allow_origins
            .iter()
            .filter_map(|origin| Url::parse(origin).ok())
            .map(|url| url.origin())
            .collect();
        RequestGuard {
            allow_private,
            allow_origins,
            block_images: config.block_images,
            block_fonts: config.block_fonts,
            block_media: config.block_media,
        }
    }

    /// Whether requests must be paused at all; when not, the browser runs without the
    /// interceptor (one round trip less per request).
    pub(crate) fn intercepts(&self) -> bool {
        !self.allow_private || self.block_images || self.block_fonts || self.block_media
    }

    /// The verdict on a request for `url`, resolving its hostname when needed.
    pub(crate) async fn check(&self, url: &str, resource: Resource) -> Verdict {
        if self.skips(resource) {
            return Verdict::Skipped;
        }
        let Ok(url) = Url::parse(url) else {
            return Verdict::Allow; // Chromium parsed it; a URL we cannot parse has no network host.
        };
        match self.check_address(&url) {
            Some(Ok(())) => Verdict::Allow,
            Some(Err(blocked)) => Verdict::Blocked(blocked),
            None => self.check_resolved(&url).await,
        }
    }

    fn skips(&self, resource: Resource) -> bool {
        match resource {
            Resource::Image => self.block_images,
            Resource::Font => self.block_fonts,
            Resource::Media => self.block_media,
            Resource::Document | Resource::Other => false,
        }
    }

    /// The verdict without DNS: `Some` when the URL decides it (no network host, allowed,
    /// literal IP, `localhost`), `None` when its hostname must be resolved.
    pub(crate) fn check_address(&self, url: &Url) -> Option<Result<(), BlockedAddress>> {
        if self.allow_private || !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
            return Some(Ok(()));
        }
        if self.allow_origins.contains(&url.origin()) {
            return Some(Ok(()));
        }
        let ip = match url.host()? {
            Host::Ipv4(v4) => IpAddr::V4(v4),
            Host::Ipv6(v6) => IpAddr::V6(v6),
            // Chromium answers `localhost` and `*.localhost` itself, without DNS.
            Host::Domain(name) if name == "localhost" || name.ends_with(".localhost") => {
                IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            Host::Domain(_) => return None,
        };
        Some(if is_non_public(ip) { Err(blocked(url, ip)) } else { Ok(()) })
    }

    /// Resolves the hostname and refuses the request if any address is not public (Chromium
    /// may connect to any of them). A failed lookup is let through: Chromium fails it too.
    async fn check_resolved(&self, url: &Url) -> Verdict {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Verdict::Allow;
        };
        let Ok(addrs) = tokio::net::lookup_host((host, port)).await else {
            return Verdict::Allow;
        };
        for addr in addrs {
            if is_non_public(addr.ip()) {
                return Verdict::Blocked(blocked(url, addr.ip()));
            }
        }
        Verdict::Allow
    }
}

fn blocked(url: &Url, addr: IpAddr) -> BlockedAddress {
    BlockedAddress { host: url.host_str().unwrap_or_default().to_string(), addr }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allow_private: bool, origins: &[&str]) -> RequestGuard {
        let config = BrowserConfig {
            guard_allow_origins: origins.iter().map(|o| o.to_string()).collect(),
            block_images: true,
            block_fonts: false,
            block_media: false,
            ..BrowserConfig::default()
        };
        RequestGuard::new(&config, allow_private)
    }

    fn verdict(guard: &RequestGuard, url: &str) -> Option<bool> {
        let url = Url::parse(url).ok()?;
        guard.check_address(&url).map(|v| v.is_ok())
    }

    #[test]
    fn private_literals_and_localhost_are_blocked() {
        let guard = guard(false, &[]);
        assert_eq!(verdict(&guard, "http://127.0.0.1:8080/"), Some(false));
        assert_eq!(verdict(&guard, "http://169.254.169.254/latest/meta-data/"), Some(false));
        assert_eq!(verdict(&guard, "http://[::1]/"), Some(false));
        assert_eq!(verdict(&guard, "http://app.localhost/"), Some(false));
        assert_eq!(verdict(&guard, "ws://10.0.0.1/socket"), Some(false));
        assert_eq!(verdict(&guard, "https://93.184.215.14/"), Some(true));
        assert_eq!(verdict(&guard, "https://example.org/"), None);
        assert_eq!(verdict(&guard, "data:text/plain,hi"), Some(true));
    }

    #[test]
    fn allowed_origin_is_exact() {
        let guard = guard(false, &["http://127.0.0.1:8080"]);
        assert_eq!(verdict(&guard, "http://127.0.0.1:8080/page"), Some(true));
        assert_eq!(verdict(&guard, "http://127.0.0.1:8081/page"), Some(false));
        assert_eq!(verdict(&guard, "https://127.0.0.1:8080/page"), Some(false));
    }

    #[test]
    fn allow_private_lets_everything_through() {
        assert_eq!(verdict(&guard(true, &[]), "http://127.0.0.1/"), Some(true));
    }

    #[tokio::test]
    async fn blocked_types_are_skipped_before_any_address_check() {
        let guard = guard(true, &[]);
        assert_eq!(guard.check("http://127.0.0.1/a.png", Resource::Image).await, Verdict::Skipped);
        assert_eq!(guard.check("http://127.0.0.1/a.woff", Resource::Font).await, Verdict::Allow);
    }
}
