//! The messages riptide speaks: crawl jobs in, results out, and their wire codecs.
//!
//! Plain data and pure functions only: nothing here touches the broker, Redis or the network.
//! A job arrives as a [`JobRequest`] (every field optional, unknown fields ignored) and becomes
//! a [`CrawlJob`] only through [`JobRequest::validate`], which keeps the reason when it refuses.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::{JobLimits, WireFormat};
use crate::failure::{Failure, FailureReason};
pub use riptide_extractor::Mode;

/// Version written into every message riptide produces (`v`).
pub const MESSAGE_VERSION: u8 = 1;
/// Content type of JSON messages.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// Content type of MessagePack messages.
pub const CONTENT_TYPE_MSGPACK: &str = "application/msgpack";
/// Highest job priority; jobs at or above [`HIGH_PRIORITY`] travel in the high lane.
pub const MAX_PRIORITY: u8 = 9;
/// Priority from which a job is routed to the high lane.
pub const HIGH_PRIORITY: u8 = 5;
/// At most this many request headers per job, each name and value at most 1 KiB.
const MAX_HEADERS: usize = 32;
const MAX_HEADER_BYTES: usize = 1024;
/// Bound on the serialized `meta` map, in bytes, since it is echoed into every result.
const MAX_META_BYTES: usize = 16 * 1024;
/// Bound on a producer-chosen job id, in bytes (it becomes part of a Redis key).
const MAX_ID_BYTES: usize = 128;

/// How a page is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Render {
    /// Plain HTTP.
    #[default]
    Static,
    /// A headless browser from the pool.
    Headless,
    /// Static first; headless when the page looks client-rendered.
    Auto,
}

impl Render {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Render::Static => "static",
            Render::Headless => "headless",
            Render::Auto => "auto",
        }
    }
}

/// A crawl job as a producer sends it. Every field but `url` is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    /// Message version; absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
    /// Idempotency key; absent means one derived from the message bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The page to crawl (http or https).
    pub url: String,
    /// What to extract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// How to fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<Render>,
    /// 0 (default) to 9; 5 and above use the high lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Attempts before the job is dead-lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Budget of one attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Serve a stored document younger than this instead of fetching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// CSS selector to wait for (headless only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<String>,
    /// Extractor component name; absent means `article`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extractor: Option<String>,
    /// Opaque map echoed into the result.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

/// A validated crawl job: every field present and within bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrawlJob {
    /// Idempotency key.
    pub id: String,
    /// The page.
    pub url: Url,
    /// What to extract.
    pub mode: Mode,
    /// How to fetch.
    pub render: Render,
    /// 0 to 9.
    pub priority: u8,
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// Budget of one attempt, in milliseconds.
    pub timeout_ms: u64,
    /// Cache freshness accepted by the producer, in seconds.
    pub max_age_secs: Option<u64>,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// CSS selector to wait for (headless only).
    pub wait_for: Option<String>,
    /// Extractor component name.
    pub extractor: String,
    /// Opaque map echoed into the result.
    pub meta: serde_json::Map<String, serde_json::Value>,
}

impl CrawlJob {
    /// Budget of one attempt.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Why a message was refused before any work was done. Refusals are permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    /// Closed set, used as the DLQ reason and as a metric label.
    pub reason: RejectReason,
    /// Human-readable detail, kept in the dead letter.
    pub detail: String,
}

/// The closed set of refusal reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The bytes are not JSON or MessagePack, or are cut short.
    Undecodable,
    /// The message is larger than `job.max_message_bytes`.
    TooLarge,
    /// It decodes, but a field is missing, of the wrong type, or out of bounds.
    InvalidJob,
}

impl RejectReason {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Undecodable => "undecodable",
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidJob => "invalid_job",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn reject(reason: RejectReason, detail: impl Into<String>) -> Rejection {
    Rejection { reason, detail: detail.into() }
}

/// Decodes a job message by its content type (JSON or MessagePack; sniffed when absent).
pub fn decode_request(bytes: &[u8], content_type: Option<&str>, limits: &JobLimits) -> Result<JobRequest, Rejection> {
    if bytes.len() > limits.max_message_bytes {
        return Err(reject(
            RejectReason::TooLarge,
            format!("message is {} bytes, the limit is {}", bytes.len(), limits.max_message_bytes),
        ));
    }
    let format = wire_format_of(bytes, content_type)?;
    ensure_map_shaped(bytes, format)?;
    match format {
        WireFormat::Json => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let reason = if e.inner().is_data() { RejectReason::InvalidJob } else { RejectReason::Undecodable };
                reject(reason, format!("JSON: {}", field_error(e.path(), e.inner())))
            })
        }
        WireFormat::Msgpack => {
            let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
            // Bounded nesting: a message nested 100,000 deep must be refused, not recursed into
            // until the stack overflows (a debug build overflowed well below rmp's own 1024).
            de.set_max_depth(MAX_MESSAGE_DEPTH);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let reason = match e.inner() {
                    rmp_serde::decode::Error::Syntax(_)
                    | rmp_serde::decode::Error::TypeMismatch(_)
                    | rmp_serde::decode::Error::OutOfRange => RejectReason::InvalidJob,
                    _ => RejectReason::Undecodable,
                };
                reject(reason, format!("MessagePack: {}", field_error(e.path(), e.inner())))
            })
        }
    }
}

/// Deepest nesting a job message may have (`meta` holds the only nested values), for both
/// encodings; serde_json stops at 128 on its own.
const MAX_MESSAGE_DEPTH: usize = 32;

/// `field priority: invalid type ...`, or the bare error when it is not inside a field.
fn field_error(path: &serde_path_to_error::Path, error: &dyn std::fmt::Display) -> String {
    let path = path.to_string();
    if path.is_empty() || path == "." { error.to_string() } else { format!("field {path}: {error}") }
}

fn wire_format_of(bytes: &[u8], content_type: Option<&str>) -> Result<WireFormat, Rejection> {
    let essence = content_type.map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some(CONTENT_TYPE_JSON) | Some("text/json") => Ok(WireFormat::Json),
        Some(CONTENT_TYPE_MSGPACK) | Some("application/x-msgpack") | Some("application/vnd.msgpack") => {
            Ok(WireFormat::Msgpack)
        }
        None | Some("") => {
            // Producers that set no content type: JSON objects start with '{'; a MessagePack
            // map starts with a byte in 0x80..=0x8f, 0xde or 0xdf, never with '{' (0x7b).
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            Ok(if first == Some(&b'{') { WireFormat::Json } else { WireFormat::Msgpack })
        }
        Some(other) => Err(reject(
            RejectReason::Undecodable,
            format!("unsupported content type {other:?}: use {CONTENT_TYPE_JSON} or {CONTENT_TYPE_MSGPACK}"),
        )),
    }
}

/// A job is a map; anything else at the top level (a number, a string, random bytes that
/// happen to start like one) is not a job message at all, so it is undecodable rather than
/// an invalid job.
fn ensure_map_shaped(bytes: &[u8], format: WireFormat) -> Result<(), Rejection> {
    let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    let ok = match (format, first) {
        (WireFormat::Json, Some(b)) => b == b'{',
        (WireFormat::Msgpack, Some(b)) => matches!(b, 0x80..=0x8f | 0xde | 0xdf),
        (_, None) => false,
    };
    if ok {
        Ok(())
    } else {
        let what = if format == WireFormat::Json { "a JSON object" } else { "a MessagePack map" };
        Err(reject(RejectReason::Undecodable, format!("the message is not {what} ({} bytes)", bytes.len())))
    }
}

/// A stable id for a job whose producer gave none, so every redelivery gets the same one.
pub fn id_from_bytes(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("h-{}", hex_prefix(&digest, 16))
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

impl JobRequest {
    /// A request for `url` with every other field left to the defaults.
    pub fn for_url(url: impl Into<String>) -> Self {
        JobRequest { url: url.into(), ..JobRequest::default() }
    }

    /// Checks every field against `limits` and fills in defaults. `fallback_id` is used when
    /// the request carries no id.
    pub fn validate(self, limits: &JobLimits, fallback_id: impl FnOnce() -> String) -> Result<CrawlJob, Rejection> {
        let invalid = |detail: String| reject(RejectReason::InvalidJob, detail);
        if let Some(v) = self.v
            && v != MESSAGE_VERSION
        {
            return Err(invalid(format!("unsupported message version v={v}; this worker reads v={MESSAGE_VERSION}")));
        }
        let id = match self.id {
            Some(id) => validate_id(id).map_err(invalid)?,
            None => fallback_id(),
        };
        let url = validate_url(&self.url, limits.max_url_bytes).map_err(invalid)?;
        let priority = self.priority.unwrap_or(0);
        if priority > MAX_PRIORITY {
            return Err(invalid(format!("priority {priority} is above the maximum {MAX_PRIORITY}")));
        }
        let max_attempts = self.max_attempts.unwrap_or(limits.default_max_attempts);
        if !(1..=limits.max_attempts_limit).contains(&max_attempts) {
            return Err(invalid(format!("max_attempts {max_attempts} is outside 1..={}", limits.max_attempts_limit)));
        }
        let timeout_ms = self.timeout_ms.unwrap_or(limits.default_timeout_ms);
        if !(100..=limits.max_timeout_ms).contains(&timeout_ms) {
            return Err(invalid(format!("timeout_ms {timeout_ms} is outside 100..={}", limits.max_timeout_ms)));
        }
        validate_headers(&self.headers).map_err(invalid)?;
        let meta_len = serde_json::to_vec(&self.meta).map(|v| v.len()).unwrap_or(usize::MAX);
        if meta_len > MAX_META_BYTES {
            return Err(invalid(format!("meta is {meta_len} bytes serialized, the limit is {MAX_META_BYTES}")));
        }
        let render = self.render.unwrap_or_default();
        if self.wait_for.is_some() && render == Render::Static {
            return Err(invalid("wait_for needs render headless or auto".to_string()));
        }
        let extractor = self.extractor.unwrap_or_else(|| "article".to_string());
        if extractor.is_empty()
            || extractor.len() > 64
            || !extractor.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(format!("extractor name {extractor:?} is not 1 to 64 characters of [A-Za-z0-9_-]")));
        }
        Ok(CrawlJob {
            id,
            url,
            mode: self.mode.unwrap_or_default(),
            render,
            priority,
            max_attempts,
            timeout_ms,
            max_age_secs: self.max_age_secs,
            headers: self.headers,
            wait_for: self.wait_for,
            extractor,
            meta: self.meta,
        })
    }
}

fn validate_id(id: String) -> Result<String, String> {
    let ok =
        !id.is_empty() && id.len() <= MAX_ID_BYTES && id.chars().all(|c| c.is_ascii_graphic() && c != '{' && c != '}');
    if ok { Ok(id) } else { Err(format!("id {id:?} must be 1 to {MAX_ID_BYTES} printable ASCII characters")) }
}

/// Parses and checks a job URL: http or https, with a host, within the length bound.
pub fn validate_url(raw: &str, max_bytes: usize) -> Result<Url, String> {
    if raw.len() > max_bytes {
        return Err(format!("url is {} bytes, the limit is {max_bytes}", raw.len()));
    }
    let url = Url::parse(raw).map_err(|e| format!("url {raw:?} does not parse: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url scheme {:?} is not allowed: only http and https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("url {raw:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("url must not carry credentials".to_string());
    }
    Ok(url)
}

/// Headers the HTTP client owns: the connection-level (hop-by-hop) ones, message framing and
/// the target. A job setting them could smuggle requests or talk to a proxy in our name.
/// Credentials (`Authorization`, `Cookie`) are allowed for authenticated crawls, and kept out
/// of logs and displays (`redact.rs`).
const REFUSED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

fn validate_headers(headers: &BTreeMap<String, String>) -> Result<(), String> {
    if headers.len() > MAX_HEADERS {
        return Err(format!("headers: {} of them, the limit is {MAX_HEADERS}", headers.len()));
    }
    for (name, value) in headers {
        let name_ok = !name.is_empty()
            && name.len() <= MAX_HEADER_BYTES
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !name_ok {
            return Err(format!("headers: name {name:?} is not a valid token"));
        }
        if value.len() > MAX_HEADER_BYTES || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("headers: {name:?} has an invalid or oversized value"));
        }
        if REFUSED_HEADERS.iter().any(|refused| refused.eq_ignore_ascii_case(name)) {
            return Err(format!("headers: {name:?} cannot be set by a job (the HTTP client owns it)"));
        }
    }
    Ok(())
}

/// Encodes a message in the given format, returning the bytes and their content type.
pub fn encode<T: Serialize>(value: &T, format: WireFormat) -> Result<(Vec<u8>, &'static str), EncodeError> {
    match format {
        WireFormat::Json => Ok((serde_json::to_vec(value)?, CONTENT_TYPE_JSON)),
        WireFormat::Msgpack => Ok((rmp_serde::to_vec_named(value)?, CONTENT_TYPE_MSGPACK)),
    }
}

/// A message could not be encoded (a bug, not an input problem).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// JSON encoding failed.
    #[error("JSON encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    /// MessagePack encoding failed.
    #[error("MessagePack encoding failed: {0}")]
    Msgpack(#[from] rmp_serde::encode::Error),
}

/// How a job ended, as told in its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Fetched and extracted now.
    Ok,
    /// Served from a stored document younger than `max_age_secs`.
    Cached,
    /// The site answered 304 Not Modified to a conditional request: the stored document is
    /// still the page; its TTL and fetch time were refreshed, nothing was extracted.
    #[serde(rename = "not_modified")]
    NotModified,
    /// Dead-lettered; `error` says why.
    Failed,
}

impl Outcome {
    /// The lowercase name, also the result's routing key suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Cached => "cached",
            Outcome::NotModified => "not_modified",
            Outcome::Failed => "failed",
        }
    }
}

/// A short summary of the document, so consumers can route without reading Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Page title.
    pub title: Option<String>,
    /// Words in the main text.
    pub word_count: u32,
    /// Detected or declared language.
    pub language: Option<String>,
    /// The extractor's confidence that the text is the main content (0 to 1).
    pub quality: f32,
}

/// Milliseconds spent per stage of the attempt that produced the result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    /// From first enqueue to the start of this attempt.
    pub queue_wait_ms: u64,
    /// HTTP fetch.
    pub fetch_ms: u64,
    /// Headless rendering (0 when static).
    pub render_ms: u64,
    /// Extraction.
    pub extract_ms: u64,
    /// Redis writes.
    pub store_ms: u64,
}

/// The error that ended a failed job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Closed-set reason (also the DLQ reason).
    pub reason: String,
    /// Human-readable message of the last error.
    pub message: String,
}

/// What a job produced, published on the results exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// Message version.
    pub v: u8,
    /// The job's id.
    pub job_id: String,
    /// The URL asked for.
    pub url: String,
    /// The URL after redirects.
    pub final_url: Option<String>,
    /// The canonical spelling of `url` (document key, dedup and politeness use it): lower-case
    /// host, IDN as ASCII, no default port, dot segments resolved, percent-encoding normalised,
    /// tracking parameters and fragment removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_url: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Redis key of the document (ok and cached).
    pub doc_key: Option<String>,
    /// Document summary (ok and cached).
    pub summary: Option<Summary>,
    /// HTTP status of the page.
    pub http_status: Option<u16>,
    /// How the page was fetched.
    pub render_used: Option<Render>,
    /// Which attempt this was (1-based).
    pub attempt: u32,
    /// Time per stage.
    pub timings: StageTimings,
    /// What ran the extraction (`native` until the WASM pool lands).
    pub engine: Option<String>,
    /// Pool tier that served the extraction, when a pool did.
    pub pool_tier: Option<String>,
    /// The error, when failed.
    pub error: Option<ErrorInfo>,
    /// The job's `meta`, echoed.
    #[serde(default)]
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// When the result was produced, Unix milliseconds.
    pub finished_at_ms: u64,
}

/// A result that is neither JSON nor MessagePack.
#[derive(Debug, thiserror::Error)]
#[error("a result that is neither JSON nor MessagePack: {0}")]
pub struct ResultDecodeError(#[source] rmp_serde::decode::Error);

impl JobResult {
    /// Decodes a result as published (JSON, or MessagePack when `worker.result_format` says so).
    pub fn decode(bytes: &[u8]) -> Result<JobResult, ResultDecodeError> {
        match serde_json::from_slice(bytes) {
            Ok(result) => Ok(result),
            Err(_) => rmp_serde::from_slice(bytes).map_err(ResultDecodeError),
        }
    }

    /// The `failed` result of a dead-lettered job, so downstream consumers hear of it too.
    pub fn failed(job: &CrawlJob, failure: &Failure, attempts: u32) -> JobResult {
        JobResult {
            v: MESSAGE_VERSION,
            job_id: job.id.clone(),
            url: job.url.to_string(),
            final_url: None,
            canonical_url: None,
            outcome: Outcome::Failed,
            doc_key: None,
            summary: None,
            http_status: None,
            render_used: None,
            attempt: attempts,
            timings: StageTimings::default(),
            engine: None,
            pool_tier: None,
            error: Some(ErrorInfo { reason: failure.reason.as_str().to_string(), message: failure.message.clone() }),
            meta: job.meta.clone(),
            finished_at_ms: now_ms(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// A refused message fails permanently, with the reason the refusal names.
impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Self {
        let reason = match rejection.reason {
            RejectReason::Undecodable => FailureReason::Undecodable,
            RejectReason::TooLarge => FailureReason::TooLarge,
            RejectReason::InvalidJob => FailureReason::InvalidJob,
        };
        Failure::permanent(reason, rejection.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use figment::providers::Format;

    fn limits() -> JobLimits {
        let config: Config =
            figment::Figment::from(figment::providers::Toml::string(crate::config::DEFAULT_TOML)).extract().unwrap();
        config.job
    }

    fn decode_validate(bytes: &[u8], ct: Option<&str>) -> Result<CrawlJob, Rejection> {
        decode_request(bytes, ct, &limits())?.validate(&limits(), || id_from_bytes(bytes))
    }

    #[test]
    fn json_and_msgpack_decode_to_the_same_job() {
        let request =
            JobRequest { id: Some("a1".into()), priority: Some(7), ..JobRequest::for_url("https://example.com/x") };
        let (json, ct_json) = encode(&request, WireFormat::Json).unwrap();
        let (mp, ct_mp) = encode(&request, WireFormat::Msgpack).unwrap();
        let a = decode_validate(&json, Some(ct_json)).unwrap();
        let b = decode_validate(&mp, Some(ct_mp)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.priority, 7);
        // Sniffed when the producer sets no content type.
        assert_eq!(decode_validate(&json, None).unwrap(), a);
        assert_eq!(decode_validate(&mp, None).unwrap(), a);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let job =
            decode_validate(br#"{"url":"http://a.example/","future_field":[1,2]}"#, Some("application/json")).unwrap();
        assert_eq!(job.url.as_str(), "http://a.example/");
        assert!(job.id.starts_with("h-"));
    }

    #[test]
    fn refusals_keep_their_reason() {
        let cases: &[(&[u8], Option<&str>, RejectReason, &str)] = &[
            (b"\x00\xffgarbage", None, RejectReason::Undecodable, "MessagePack map"),
            (b"{\"url\": \"http://a", Some("application/json"), RejectReason::Undecodable, "JSON"),
            (br#"{"url": 42}"#, Some("application/json"), RejectReason::InvalidJob, "invalid type"),
            (br#"{"url": "file:///etc/passwd"}"#, Some("application/json"), RejectReason::InvalidJob, "scheme"),
            (
                br#"{"url": "http://a.example/", "mode": "everything"}"#,
                None,
                RejectReason::InvalidJob,
                "unknown variant",
            ),
            (br#"{"url": "http://a.example/", "priority": 12}"#, None, RejectReason::InvalidJob, "priority"),
            (br#"{"url": "http://a.example/", "timeout_ms": 5}"#, None, RejectReason::InvalidJob, "timeout_ms"),
            (br#"{"url": "http://a.example/"}"#, Some("text/plain"), RejectReason::Undecodable, "content type"),
        ];
        for (bytes, ct, reason, needle) in cases {
            let err = decode_validate(bytes, *ct).unwrap_err();
            assert_eq!(err.reason, *reason, "{err}");
            assert!(err.detail.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn truncated_msgpack_is_undecodable() {
        let (mp, _) = encode(&JobRequest::for_url("https://example.com/"), WireFormat::Msgpack).unwrap();
        let err = decode_validate(&mp[..mp.len() / 2], Some(CONTENT_TYPE_MSGPACK)).unwrap_err();
        assert_eq!(err.reason, RejectReason::Undecodable, "{err}");
    }

    #[test]
    fn oversized_message_is_refused_unread() {
        let big = vec![b' '; limits().max_message_bytes + 1];
        assert_eq!(decode_validate(&big, None).unwrap_err().reason, RejectReason::TooLarge);
    }

    #[test]
    fn derived_ids_are_stable() {
        assert_eq!(id_from_bytes(b"abc"), id_from_bytes(b"abc"));
        assert_ne!(id_from_bytes(b"abc"), id_from_bytes(b"abd"));
    }

    /// Every field's bad value is refused with a message naming the field, in both encodings
    /// (12 of 28 such cases used to name none: `expected u8 at line 1 column 98`).
    #[test]
    fn every_bad_field_is_named_in_both_encodings() {
        let cases: &[(&str, serde_json::Value)] = &[
            ("id", serde_json::json!(7)),
            ("url", serde_json::json!(["x"])),
            ("mode", serde_json::json!("everything")),
            ("render", serde_json::json!("maybe")),
            ("priority", serde_json::json!("high")),
            ("priority", serde_json::json!(-1)),
            ("priority", serde_json::json!(300)),
            ("max_attempts", serde_json::json!(-3)),
            ("max_attempts", serde_json::json!(1e10)),
            ("timeout_ms", serde_json::json!(-5)),
            ("timeout_ms", serde_json::json!("soon")),
            ("max_age_secs", serde_json::json!(-1)),
            ("max_age_secs", serde_json::json!(u128::MAX.to_string())),
            ("headers", serde_json::json!(["a"])),
            ("headers", serde_json::json!({"a": 1})),
            ("meta", serde_json::json!("flat")),
            ("wait_for", serde_json::json!(5)),
            ("v", serde_json::json!("one")),
        ];
        for (field, value) in cases {
            let mut job = serde_json::json!({"url": "http://a.example/"});
            job[*field] = value.clone();
            let json = serde_json::to_vec(&job).unwrap();
            let msgpack = rmp_serde::to_vec_named(&job).unwrap();
            for (bytes, ct) in [(json, CONTENT_TYPE_JSON), (msgpack, CONTENT_TYPE_MSGPACK)] {
                let err = decode_validate(&bytes, Some(ct)).unwrap_err();
                assert_eq!(err.reason, RejectReason::InvalidJob, "{field}={value} ({ct}): {err}");
                assert!(err.detail.contains(field), "{field}={value} ({ct}): {err} does not name the field");
            }
        }
    }

    /// A message nested 100,000 deep is refused cleanly (it overflowed the stack of the debug
    /// build, killing the worker at every redelivery).
    #[test]
    fn deep_nesting_is_refused_without_recursing() {
        let depth = 100_000;
        let mut msgpack = vec![0x82, 0xa3];
        msgpack.extend_from_slice(b"url");
        msgpack.push(0xb1);
        msgpack.extend_from_slice(b"http://a.example/");
        msgpack.push(0xa4);
        msgpack.extend_from_slice(b"meta");
        for _ in 0..depth {
            msgpack.extend_from_slice(&[0x81, 0xa1, b'k']);
        }
        msgpack.push(0xc0);
        let err = decode_validate(&msgpack, Some(CONTENT_TYPE_MSGPACK)).unwrap_err();
        assert!(matches!(err.reason, RejectReason::Undecodable | RejectReason::InvalidJob), "{err}");
        let json = format!(r#"{{"url":"http://a.example/","meta":{}{}}}"#, r#"{"k":"#.repeat(depth), "}".repeat(depth));
        let err = decode_validate(json.as_bytes(), Some(CONTENT_TYPE_JSON)).unwrap_err();
        assert!(matches!(err.reason, RejectReason::Undecodable | RejectReason::InvalidJob), "{err}");
    }

    #[test]
    fn hop_by_hop_headers_are_refused_credentials_are_allowed() {
        for name in ["Transfer-Encoding", "Connection", "Proxy-Authorization", "Upgrade", "TE", "Host"] {
            let job = serde_json::json!({"url": "http://a.example/", "headers": {name: "x"}});
            let err = decode_validate(&serde_json::to_vec(&job).unwrap(), None).unwrap_err();
            assert!(err.detail.contains(name), "{name}: {err}");
        }
        let job =
            serde_json::json!({"url": "http://a.example/", "headers": {"Cookie": "a=1", "Authorization": "Bearer t"}});
        assert!(decode_validate(&serde_json::to_vec(&job).unwrap(), None).is_ok());
    }
}
