//! What can go wrong in the browser pool, and whether a retry can help.
//!
//! It owns [`BrowserError`] and its [`BrowserError::classify`]; it must not log or count
//! (the caller handles an error once). Reasons come from `crate::failure`.

use std::time::Duration;

use crate::failure::{Failure, FailureReason};
use crate::fetch::guard::BlockedAddress;

use super::config::BrowserConfigError;

/// Which kind of process died.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashKind {
    /// The browser process itself (or its DevTools connection) went away.
    Browser,
    /// The renderer of the job's tab died (`targetCrashed`); the browser lived.
    Renderer,
}

impl CrashKind {
    /// The label value used in metrics and events.
    pub fn as_str(self) -> &'static str {
        match self {
            CrashKind::Browser => "browser",
            CrashKind::Renderer => "renderer",
        }
    }
}

/// Why a render (or the pool itself) failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] BrowserConfigError),
    /// The Chromium binary could not be started, or its profile directory prepared.
    #[error("cannot launch Chromium {executable}")]
    Launch {
        /// The binary that was tried.
        executable: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Chromium started but did not print its DevTools address in time, or exited first.
    #[error("Chromium did not open its DevTools socket within {0:?}")]
    LaunchTimeout(Duration),
    /// Connecting to the DevTools socket failed.
    #[error("cannot connect to Chromium's DevTools socket")]
    Connect(#[source] chromiumoxide::error::CdpError),
    /// A CDP call failed (a transient protocol or connection error).
    #[error("CDP call {call} failed")]
    Cdp {
        /// Which call.
        call: &'static str,
        /// The protocol error.
        #[source]
        source: chromiumoxide::error::CdpError,
    },
    /// A CDP call got no answer in time; the browser is recycled.
    #[error("CDP call {call} got no answer within {after:?}")]
    CdpTimeout {
        /// Which call.
        call: &'static str,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The page did not finish loading within the job's timeout.
    #[error("page did not load within {0:?}")]
    Timeout(Duration),
    /// The page loaded but the `wait_for` selector never matched.
    #[error("selector {selector:?} did not appear within {after:?}")]
    WaitForTimeout {
        /// The job's selector.
        selector: String,
        /// How long it was waited for.
        after: Duration,
    },
    /// The `wait_for` selector is not valid CSS.
    #[error("wait_for {0:?} is not a valid CSS selector")]
    BadSelector(String),
    /// Chromium could not load the page (DNS, connect, TLS...): `net::ERR_*`.
    #[error("navigation to {url} failed: {error_text}")]
    Navigation {
        /// The requested URL.
        url: String,
        /// Chromium's `net::ERR_*` text.
        error_text: String,
    },
    /// The page, or a redirect of it, points at a non-public address.
    #[error(transparent)]
    Blocked(#[from] BlockedAddress),
    /// Only http and https pages are rendered (never `file:`, `chrome:`, ...).
    #[error("scheme {0:?} cannot be rendered")]
    UnsupportedScheme(String),
    /// The rendered DOM is larger than the request's `max_html_bytes` (measured in the page;
    /// it never crossed CDP).
    #[error("rendered HTML is {bytes} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Its size in UTF-8 bytes (at least this much).
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The browser or the tab's renderer crashed during the job.
    #[error("{} crashed during the render", .0.as_str())]
    Crashed(CrashKind),
    /// The browser went over its hard memory limit and was killed during the job.
    #[error("browser evicted at {pss_bytes} bytes PSS (hard limit)")]
    Evicted {
        /// The PSS measured, in bytes.
        pss_bytes: u64,
    },
    /// No tab became free within `lease_timeout_ms`.
    #[error("no browser tab free within {0:?}")]
    PoolExhausted(Duration),
    /// The pool is closed or closing.
    #[error("the browser pool is closed")]
    Closed,
    /// Killing or reaping processes, or a profile directory, failed.
    #[error("browser process housekeeping failed")]
    Io(#[from] std::io::Error),
}

impl BrowserError {
    /// Crashes, evictions, exhaustion, timeouts and transient CDP failures are retryable: a
    /// later attempt runs on a fresh or less loaded browser. A blocked address, a bad scheme or
    /// selector and a broken config are permanent.
    ///
    /// A `wait_for` timeout is retryable (reason `timeout`): the selector may be wrong, but
    /// it may as well be late content (slow API, a loaded 2-core machine, a rate-limited site),
    /// and dead-lettering a good job loses it while a wrong selector costs only the bounded
    /// `max_attempts`; the dead letter then names the selector.
    pub fn classify(&self) -> Failure {
        let message = self.to_string();
        match self {
            BrowserError::Blocked(_) => Failure::permanent(FailureReason::BlockedAddress, message),
            BrowserError::UnsupportedScheme(_) | BrowserError::BadSelector(_) => {
                Failure::permanent(FailureReason::InvalidJob, message)
            }
            BrowserError::Config(_) => Failure::permanent(FailureReason::Unsupported, message),
            BrowserError::TooLarge { .. } => Failure::permanent(FailureReason::BodyTooLarge, message),
            BrowserError::Timeout(_) | BrowserError::WaitForTimeout { .. } => {
                Failure::retryable(FailureReason::Timeout, message)
            }
            BrowserError::Navigation { .. } => Failure::retryable(FailureReason::Connect, message),
            BrowserError::Launch { .. }
            | BrowserError::LaunchTimeout(_)
            | BrowserError::Connect(_)
            | BrowserError::Cdp { .. }
            | BrowserError::CdpTimeout { .. }
            | BrowserError::Crashed(_)
            | BrowserError::Evicted { .. }
            | BrowserError::PoolExhausted(_)
            | BrowserError::Closed
            | BrowserError::Io(_) => Failure::retryable(FailureReason::Browser, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashes_and_evictions_are_retryable_blocks_are_not() {
        assert!(BrowserError::Crashed(CrashKind::Renderer).classify().is_retryable());
        assert!(BrowserError::Evicted { pss_bytes: 1 }.classify().is_retryable());
        let blocked = BlockedAddress { host: "169.254.169.254".into(), addr: [169, 254, 169, 254].into() };
        let failure = BrowserError::Blocked(blocked).classify();
        assert!(!failure.is_retryable());
        assert_eq!(failure.reason, FailureReason::BlockedAddress);
    }

    #[test]
    fn wait_for_timeout_is_a_retryable_timeout() {
        let failure = BrowserError::WaitForTimeout { selector: "#x".into(), after: Duration::from_secs(1) }.classify();
        assert_eq!(failure.reason, FailureReason::Timeout);
        assert!(failure.is_retryable());
    }
}
