//! The request guard inside the browser: which requests a rendered page may make.
//!
//! It owns the rules: the check of a page's own URL before it is leased a tab (scheme, literal
//! non-public hosts, by the same rule as static fetch, `crate::fetch::guard::is_non_public`),
//! the allowed origins, and optional image/font/media blocking. It must not speak CDP:
//! `instance.rs` pauses requests (`Fetch.requestPaused`) only to skip blocked resource types.
//! Addresses of everything a page loads are checked where the connection is made, in the
//! egress proxy (`proxy.rs`), which resolves each name once and connects to what it checked.

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
    /// Let it through (to the egress proxy).
    Allow,
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

    /// Whether requests must be paused at all: only to skip blocked resource types (addresses
    /// are the proxy's).
    pub(crate) fn intercepts(&self) -> bool {
        self.block_images || self.block_fonts || self.block_media
    }

    /// The verdict on a request of type `resource`.
    pub(crate) fn check(&self, resource: Resource) -> Verdict {
        if self.skips(resource) { Verdict::Skipped } else { Verdict::Allow }
    }

    /// What the egress proxy lets through: everything with `allow_private`, else public
    /// addresses and the allowed origins' hosts and ports.
    pub(crate) fn egress_rules(&self, lookup_timeout: std::time::Duration) -> super::proxy::EgressRules {
        let allow = self
            .allow_origins
            .iter()
            .filter_map(|origin| match origin {
                url::Origin::Tuple(_, host, port) => Some((host.to_string(), *port)),
                url::Origin::Opaque(_) => None,
            })
            .map(|(host, port)| (host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
            .collect();
        super::proxy::EgressRules { allow_private: self.allow_private, allow, lookup_timeout }
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

    #[test]
    fn blocked_types_are_skipped() {
        let guard = guard(true, &[]);
        assert_eq!(guard.check(Resource::Image), Verdict::Skipped);
        assert_eq!(guard.check(Resource::Font), Verdict::Allow);
    }

    #[test]
    fn allowed_origins_become_egress_hosts_and_ports() {
        let rules = guard(false, &["http://127.0.0.1:8080", "https://[::1]"]).egress_rules(Default::default());
        assert_eq!(rules.allow, vec![("127.0.0.1".to_owned(), 8080), ("::1".to_owned(), 443)]);
    }
}
