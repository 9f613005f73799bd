//! How a failed job step is classified: a closed-set reason plus the retry decision.
//!
//! Every module error converts into a [`Failure`] (see the `classify` methods next to each
//! error type); the worker routes to a delay queue or the dead-letter queue from the
//! [`Failure`] alone, never from message text. This module knows no queue and no service.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The closed set of reasons a job can fail for. It labels metrics and dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The message is neither JSON nor MessagePack, or is cut short.
    Undecodable,
    /// The message is larger than allowed.
    TooLarge,
    /// A job field is missing, mistyped or out of bounds.
    InvalidJob,
    /// The URL resolves to an address the SSRF guard refuses.
    BlockedAddress,
    /// The site answered with an HTTP error status.
    HttpStatus,
    /// The attempt ran out of time.
    Timeout,
    /// DNS, TCP or TLS failed, or the connection broke mid-response.
    Connect,
    /// More redirects than `fetch.max_redirects`.
    TooManyRedirects,
    /// The decoded body is larger than `fetch.max_body_bytes`.
    BodyTooLarge,
    /// The response is not HTML or text.
    UnsupportedContentType,
    /// The extractor refused the page or failed on it.
    Extraction,
    /// The requested feature (e.g. headless rendering) is not available in this worker.
    Unsupported,
    /// Redis could not be written or read.
    StoreUnavailable,
    /// The headless browser crashed, was evicted over its memory limit, stopped answering,
    /// or no tab was free in time.
    Browser,
    /// The message was delivered as often as its lane allows (`x-delivery-limit`) without
    /// being settled: workers died or stopped on it every time.
    DeliveryLimit,
    /// The site's robots.txt disallows the URL for our user agent.
    RobotsDenied,
}

impl FailureReason {
    /// Every reason, for initialising per-reason metrics at zero.
    pub const ALL: [FailureReason; 16] = [
        FailureReason::Undecodable,
        FailureReason::TooLarge,
        FailureReason::InvalidJob,
        FailureReason::BlockedAddress,
        FailureReason::HttpStatus,
        FailureReason::Timeout,
        FailureReason::Connect,
        FailureReason::TooManyRedirects,
        FailureReason::BodyTooLarge,
        FailureReason::UnsupportedContentType,
        FailureReason::Extraction,
        FailureReason::Unsupported,
        FailureReason::StoreUnavailable,
        FailureReason::Browser,
        FailureReason::DeliveryLimit,
        FailureReason::RobotsDenied,
    ];

    /// The snake_case name used in labels, headers and results.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Undecodable => "undecodable",
            FailureReason::TooLarge => "too_large",
            FailureReason::InvalidJob => "invalid_job",
            FailureReason::BlockedAddress => "blocked_address",
            FailureReason::HttpStatus => "http_status",
            FailureReason::Timeout => "timeout",
            FailureReason::Connect => "connect",
            FailureReason::TooManyRedirects => "too_many_redirects",
            FailureReason::BodyTooLarge => "body_too_large",
            FailureReason::UnsupportedContentType => "unsupported_content_type",
            FailureReason::Extraction => "extraction",
            FailureReason::Unsupported => "unsupported",
            FailureReason::StoreUnavailable => "store_unavailable",
            FailureReason::Browser => "browser",
            FailureReason::DeliveryLimit => "delivery_limit",
            FailureReason::RobotsDenied => "robots_denied",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The same input will fail the same way: dead-letter now.
    Never,
    /// A later attempt may succeed; `after` is the server's own hint (`Retry-After`).
    Later {
        /// The earliest time worth trying again, when the site said so.
        after: Option<Duration>,
    },
}

/// A classified failure of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Why, from the closed set.
    pub reason: FailureReason,
    /// Whether to retry.
    pub retry: Retry,
    /// The underlying error, for people.
    pub message: String,
}

impl Failure {
    /// A failure that retrying cannot fix.
    pub fn permanent(reason: FailureReason, message: impl Into<String>) -> Self {
        Failure { reason, retry: Retry::Never, message: message.into() }
    }

    /// A failure a later attempt may not hit.
    pub fn retryable(reason: FailureReason, message: impl Into<String>) -> Self {
        Failure { reason, retry: Retry::Later { after: None }, message: message.into() }
    }

    /// Whether a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.retry, Retry::Later { .. })
    }
}
