//! Static fetching: one HTTP GET with timeouts, a redirect limit, a cap on the decoded body,
//! charset decoding and the SSRF guard of `guard.rs`.
//!
//! It knows no queue and no storage: it turns a URL into a [`FetchedPage`] or a [`FetchError`]
//! that knows whether retrying can help ([`FetchError::classify`]).

pub mod canonical;
pub mod guard;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, redirect};
use url::Url;

use crate::config::FetchConfig;
use crate::failure::{Failure, FailureReason, Retry};
use guard::{BlockedAddress, GuardedResolver, check_literal_host};

/// Longest `Retry-After` honoured; a site asking for more gets this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A page as fetched and decoded.
#[derive(Debug, Clone)]
pub struct FetchedPage {
    /// The URL after redirects.
    pub final_url: Url,
    /// HTTP status (2xx).
    pub status: u16,
    /// The body decoded to UTF-8.
    pub html: String,
    /// The body size before decoding, in bytes.
    pub body_bytes: usize,
    /// Time from request to the last body byte.
    pub elapsed: Duration,
    /// The response's `ETag` and `Last-Modified`, for a later conditional request.
    pub validators: Validators,
}

/// A response's cache validators, kept with the document so the next crawl of the page can
/// ask "changed since?" (`If-None-Match`, `If-Modified-Since`) and get a bodiless 304.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// `ETag`, as sent (quotes and `W/` included).
    pub etag: Option<String>,
    /// `Last-Modified`, as sent (an HTTP date).
    pub last_modified: Option<String>,
}

/// Longest validator kept; a longer header is hostile or broken and is ignored.
const MAX_VALIDATOR_BYTES: usize = 512;

impl Validators {
    fn from_headers(headers: &HeaderMap) -> Self {
        let value = |name: reqwest::header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= MAX_VALIDATOR_BYTES)
                .map(str::to_string)
        };
        Validators { etag: value(reqwest::header::ETAG), last_modified: value(reqwest::header::LAST_MODIFIED) }
    }

    /// Whether there is anything to ask with.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }

    /// The conditional request headers these validators make.
    pub fn request_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if let Some(etag) = &self.etag {
            headers.push(("if-none-match", etag.clone()));
        }
        if let Some(date) = &self.last_modified {
            headers.push(("if-modified-since", date.clone()));
        }
        headers
    }
}

/// Whether a request carries conditional headers (so a 304 is an answer, not an error).
fn is_conditional(headers: &std::collections::BTreeMap<String, String>) -> bool {
    headers.keys().any(|k| k.eq_ignore_ascii_case("if-none-match") || k.eq_ignore_ascii_case("if-modified-since"))
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The target address is not public and private networks are not allowed.
    #[error(transparent)]
    Blocked(#[from] BlockedAddress),
    /// The site answered with an error status.
    #[error("HTTP {status} from {url}")]
    Status {
        /// The status code.
        status: u16,
        /// Where it came from (after redirects).
        url: String,
        /// The site's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The browser rendered a page but could not tell its HTTP status (no main-document
    /// response was seen): nothing says the page is what the site meant to serve.
    #[error("the HTTP status of {0} is unknown (no main-document response)")]
    UnknownStatus(String),
    /// The job's time budget ran out.
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    /// More redirects than allowed.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    /// The decoded body is over the cap.
    #[error("body is over the {limit}-byte cap")]
    BodyTooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The response is not a page.
    #[error("content type {0:?} is not HTML or text")]
    UnsupportedContentType(String),
    /// A redirect pointed at a scheme other than http or https.
    #[error("redirect to unsupported URL {0}")]
    BadRedirect(String),
    /// DNS, connect, TLS or a broken connection.
    #[error("request failed: {0}")]
    Transport(#[source] reqwest::Error),
}

impl FetchError {
    /// Retryable: timeouts, transport errors, 408, 429 and 5xx. Everything else is permanent.
    pub fn classify(&self) -> Failure {
        let message = self.to_string();
        match self {
            FetchError::Blocked(_) => Failure::permanent(FailureReason::BlockedAddress, message),
            FetchError::Status { status, retry_after, .. } => {
                let retryable = *status == 408 || *status == 429 || *status >= 500;
                let retry = if retryable { Retry::Later { after: *retry_after } } else { Retry::Never };
                Failure { reason: FailureReason::HttpStatus, retry, message }
            }
            // Retryable: a navigation that was cut short may well complete next time.
            FetchError::UnknownStatus(_) => Failure::retryable(FailureReason::Browser, message),
            FetchError::Timeout(_) => Failure::retryable(FailureReason::Timeout, message),
            FetchError::TooManyRedirects(_) => Failure::permanent(FailureReason::TooManyRedirects, message),
            FetchError::BodyTooLarge { .. } => Failure::permanent(FailureReason::BodyTooLarge, message),
            FetchError::UnsupportedContentType(_) => Failure::permanent(FailureReason::UnsupportedContentType, message),
            FetchError::BadRedirect(_) => Failure::permanent(FailureReason::InvalidJob, message),
            FetchError::Transport(_) => Failure::retryable(FailureReason::Connect, message),
        }
    }

    /// Sorts a reqwest error into the variants above by the typed errors in its source chain.
    fn from_reqwest(error: reqwest::Error, timeout: Duration, max_redirects: usize) -> Self {
        if let Some(blocked) = find_source::<BlockedAddress>(&error) {
            return FetchError::Blocked(blocked.clone());
        }
        if let Some(redirect) = find_source::<RedirectRefused>(&error) {
            return match redirect {
                RedirectRefused::TooMany => FetchError::TooManyRedirects(max_redirects),
                RedirectRefused::Blocked(blocked) => FetchError::Blocked(blocked.clone()),
                RedirectRefused::Scheme(url) => FetchError::BadRedirect(crate::redact::url(url)),
            };
        }
        if error.is_timeout() {
            return FetchError::Timeout(timeout);
        }
        // reqwest's message names the full URL, query tokens included; the job id already
        // says which page it was, so the URL stays out of logs, `last_error` and dead letters.
        FetchError::Transport(error.without_url())
    }
}

fn find_source<'a, T: std::error::Error + 'static>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// Why the redirect policy stopped following.
#[derive(Debug, Clone, thiserror::Error)]
enum RedirectRefused {
    #[error("too many redirects")]
    TooMany,
    #[error(transparent)]
    Blocked(BlockedAddress),
    #[error("redirect to unsupported URL {0}")]
    Scheme(String),
}

/// The static fetcher: one shared connection pool for all jobs of a worker.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    config: Arc<FetchConfig>,
}

/// The fetcher could not be built (bad TLS setup or user agent).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct FetcherBuildError(#[from] reqwest::Error);

impl Fetcher {
    /// Builds the client. `allow_private` lets fetches reach non-public addresses.
    pub fn new(config: &FetchConfig, allow_private: bool) -> Result<Self, FetcherBuildError> {
        install_crypto_provider();
        let max_redirects = config.max_redirects;
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                return attempt.error(RedirectRefused::TooMany);
            }
            let target = attempt.url().clone();
            if !matches!(target.scheme(), "http" | "https") {
                return attempt.error(RedirectRefused::Scheme(target.to_string()));
            }
            if let Err(blocked) = check_literal_host(&target, allow_private) {
                return attempt.error(RedirectRefused::Blocked(blocked));
            }
            attempt.follow()
        });
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .redirect(policy)
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .no_proxy()
            .pool_max_idle_per_host(32)
            .build()?;
        Ok(Fetcher { client, config: Arc::new(config.clone()) })
    }

    /// Fetches `url` within `timeout` (the job's whole budget for the fetch).
    pub async fn fetch(
        &self,
        url: &Url,
        headers: &std::collections::BTreeMap<String, String>,
        timeout: Duration,
        allow_private: bool,
    ) -> Result<FetchedPage, FetchError> {
        check_literal_host(url, allow_private)?;
        let started = Instant::now();
        match tokio::time::timeout(timeout, self.fetch_inner(url, headers, timeout)).await {
            Ok(result) => result.map(|mut page| {
                page.elapsed = started.elapsed();
                page
            }),
            Err(_) => Err(FetchError::Timeout(timeout)),
        }
    }

    async fn fetch_inner(
        &self,
        url: &Url,
        headers: &std::collections::BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<FetchedPage, FetchError> {
        let max_redirects = self.config.max_redirects;
        let wrap = |e: reqwest::Error| FetchError::from_reqwest(e, timeout, max_redirects);
        let mut response =
            self.client.get(url.clone()).headers(job_headers(headers)).timeout(timeout).send().await.map_err(wrap)?;
        let status = response.status();
        let final_url = response.url().clone();
        let validators = Validators::from_headers(response.headers());
        if status == StatusCode::NOT_MODIFIED && is_conditional(headers) {
            // No body: the stored document is still the page.
            return Ok(FetchedPage {
                final_url,
                status: status.as_u16(),
                html: String::new(),
                body_bytes: 0,
                elapsed: Duration::ZERO,
                validators,
            });
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                status: status.as_u16(),
                url: crate::redact::url(final_url.as_str()),
                retry_after: retry_after(status, response.headers()),
            });
        }
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
        if let Some(ct) = &content_type
            && !is_page_content_type(ct)
        {
            return Err(FetchError::UnsupportedContentType(ct.clone()));
        }
        let limit = self.config.max_body_bytes;
        if response.content_length().is_some_and(|len| len > limit as u64) {
            return Err(FetchError::BodyTooLarge { limit });
        }
        // reqwest decompresses as it streams, so this cap bounds the decoded size too:
        // a small gzip bomb stops here instead of filling memory.
        let mut body = Vec::with_capacity(response.content_length().unwrap_or(64 * 1024).min(limit as u64) as usize);
        while let Some(chunk) = response.chunk().await.map_err(wrap)? {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::BodyTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        let html = decode_body(&body, content_type.as_deref());
        Ok(FetchedPage {
            final_url,
            status: status.as_u16(),
            html,
            body_bytes: body.len(),
            elapsed: Duration::ZERO,
            validators,
        })
    }
}

/// A robots.txt response: its status and at most the first `limit + 1` bytes of its body (one
/// byte past the limit tells the parser the last line was cut).
#[derive(Debug, Clone)]
pub struct RobotsResponse {
    /// The final status, after redirects.
    pub status: u16,
    /// The body, cut at the limit (not an error: RFC 9309 parses the first 500 KiB).
    pub body: Vec<u8>,
}

impl Fetcher {
    /// Fetches a robots.txt within `timeout`, following up to `fetch.max_redirects` redirects
    /// (RFC 9309: at least five) under the SSRF guard, with any content type; the body is
    /// read up to `limit + 1` bytes and the rest is never downloaded.
    pub async fn fetch_robots(
        &self,
        url: &Url,
        limit: usize,
        timeout: Duration,
        allow_private: bool,
    ) -> Result<RobotsResponse, FetchError> {
        check_literal_host(url, allow_private)?;
        let max_redirects = self.config.max_redirects;
        let wrap = |e: reqwest::Error| FetchError::from_reqwest(e, timeout, max_redirects);
        let fetch = async {
            let mut response = self.client.get(url.clone()).timeout(timeout).send().await.map_err(wrap)?;
            let status = response.status().as_u16();
            let mut body = Vec::new();
            if (200..300).contains(&status) {
                while let Some(chunk) = response.chunk().await.map_err(wrap)? {
                    let room = (limit + 1).saturating_sub(body.len());
                    body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
                    if body.len() > limit {
                        break;
                    }
                }
            }
            Ok(RobotsResponse { status, body })
        };
        tokio::time::timeout(timeout, fetch).await.unwrap_or(Err(FetchError::Timeout(timeout)))
    }
}

/// Installs ring as the process's TLS crypto provider. reqwest is built without a bundled
/// provider, so every HTTP client of riptide calls this first; a second install fails
/// harmlessly when another part of the process did it already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn job_headers(headers: &std::collections::BTreeMap<String, String>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        // Job validation already refused invalid names and values; anything that still does
        // not convert is skipped rather than failing the fetch.
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            map.insert(name, value);
        }
    }
    map
}

fn is_page_content_type(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.is_empty()
        || essence == "text/html"
        || essence == "application/xhtml+xml"
        || essence == "text/plain"
        || essence == "application/xml"
        || essence == "text/xml"
}

/// The status rule every page obeys, fetched or rendered: a 2xx passes; any other status is
/// [`FetchError::Status`] (retryable for 408, 429 and 5xx, with `retry_after`); an unknown
/// status (a browser that could not tell) is [`FetchError::UnknownStatus`], rather than a
/// page stored as if it were fine.
pub fn check_status(status: Option<u16>, url: &Url, retry_after: Option<Duration>) -> Result<u16, FetchError> {
    match status {
        Some(code) if (200..300).contains(&code) => Ok(code),
        Some(code) => Err(FetchError::Status { status: code, url: crate::redact::url(url.as_str()), retry_after }),
        None => Err(FetchError::UnknownStatus(crate::redact::url(url.as_str()))),
    }
}

/// `Retry-After` in seconds or as an HTTP date, on statuses where it means "come back later".
fn retry_after(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(status.as_u16(), headers.get(RETRY_AFTER)?.to_str().ok()?)
}

/// A `Retry-After` value (seconds or an HTTP date), on a status where it means "come back
/// later" (429 and 5xx), capped; `None` otherwise. Shared by fetched and rendered pages.
pub fn parse_retry_after(status: u16, raw: &str) -> Option<Duration> {
    if !(status == 429 || (500..600).contains(&status)) {
        return None;
    }
    let raw = raw.trim();
    let delay = match raw.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(raw).ok()?.duration_since(std::time::SystemTime::now()).ok()?,
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// Decodes the body with the extractor core's rules (BOM, then the header's charset, then a
/// `<meta>` declaration, then UTF-8 or windows-1252), so the static path and the extractor
/// agree on every page.
pub fn decode_body(body: &[u8], content_type: Option<&str>) -> String {
    riptide_extractor::decode_html(body, content_type.and_then(charset_param))
}

fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim().eq_ignore_ascii_case("charset").then(|| value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charset_from_header_meta_or_default() {
        let latin1 = b"<p>caf\xe9</p>";
        assert_eq!(decode_body(latin1, Some("text/html; charset=ISO-8859-1")), "<p>café</p>");
        let with_meta = b"<html><head><meta charset=\"windows-1252\"></head><p>\x93hi\x94</p>";
        assert!(decode_body(with_meta, Some("text/html")).contains("\u{201c}hi\u{201d}"));
        assert_eq!(decode_body("héllo".as_bytes(), None), "héllo");
    }

    #[test]
    fn retryable_statuses() {
        let status = |s: u16| FetchError::Status { status: s, url: String::new(), retry_after: None }.classify();
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(status(408).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(!status(410).is_retryable());
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(StatusCode::SERVICE_UNAVAILABLE, &headers), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(StatusCode::NOT_FOUND, &headers), None);
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let parsed = retry_after(StatusCode::TOO_MANY_REQUESTS, &headers).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
    }
}
