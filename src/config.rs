//! The configuration tree: `config/default.toml`, then an optional file, then `RIPTIDE_*`
//! environment variables, checked as a whole before any connection opens.
//!
//! It owns loading and validation only; it must not open connections. Runtime knobs such as
//! the log format are CLI flags (see `cli/mod.rs`), not configuration.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

/// The defaults, compiled in so the binary runs without the repository beside it.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variables under the `RIPTIDE_` prefix that are not configuration keys.
/// (`GUEST_WASM` is read by the build script, `EXTRACTOR_WASM` by the extraction benchmark.)
const NON_CONFIG_ENV: &[&str] = &["CONFIG", "LOG", "LOG_FORMAT", "GUEST_WASM", "EXTRACTOR_WASM"];

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value has the wrong type, a key is unknown, or a file does not parse. figment's
    /// message names the key and where the value came from (file or variable).
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// The file given with `--config` does not exist.
    #[error("configuration file {0} does not exist")]
    MissingFile(String),
    /// Values that parse but cannot work together; every problem is listed, one per line.
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// The whole configuration of a riptide process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// RabbitMQ URL (`amqp://user:pass@host:port/vhost`); its password is never logged.
    pub amqp_url: String,
    /// Redis URL; documents and job state live there.
    pub redis_url: String,
    /// Address of the operations HTTP server.
    pub ops_addr: SocketAddr,
    /// Whether fetches may reach loopback, private, link-local and metadata addresses.
    pub allow_private_networks: bool,
    /// Prefix of every exchange, queue and Redis key.
    pub namespace: String,
    /// How a worker consumes.
    pub worker: WorkerConfig,
    /// Defaults and bounds applied to incoming jobs.
    pub job: JobLimits,
    /// The static HTTP fetcher.
    pub fetch: FetchConfig,
    /// The retry schedule.
    pub retry: RetryConfig,
    /// Redis storage.
    pub store: StoreConfig,
    /// Operations: polling and the management API.
    pub ops: OpsConfig,
    /// The tiered WASM extractor pool (every key has a default; see `src/wasm/config.rs`).
    #[serde(default)]
    pub wasm: crate::wasm::WasmConfig,
    /// The headless browser pool (every key has a default; see `src/browser/config.rs`).
    #[serde(default)]
    pub browser: crate::browser::BrowserConfig,
    /// Politeness shared by the fleet: pacing, host backoff, robots.txt.
    pub politeness: PolitenessConfig,
}

/// Politeness towards the sites crawled, held by every worker of a namespace together (the
/// state lives in Redis; see `src/politeness/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolitenessConfig {
    /// Least time between two requests to one origin (scheme, host, port) by the whole
    /// fleet, in milliseconds; 0 turns pacing off (robots.txt and host backoff stay).
    pub default_delay_ms: u64,
    /// A job whose pacing slot is at most this far away waits for it in its worker slot;
    /// a later slot is kept and the job waits in a delay queue instead, in milliseconds.
    pub max_inline_wait_ms: u64,
    /// Largest robots.txt `Crawl-delay` honoured, in seconds (a longer one is cut to this).
    pub max_crawl_delay_secs: u64,
    /// Longest block of an origin after a 429 or 503, `Retry-After` included, in seconds; 0
    /// turns host backoff off (each refused job still follows the retry rules).
    pub max_block_secs: u64,
    /// First block of an origin that refused without `Retry-After`, in milliseconds; it
    /// doubles (with jitter) while the origin keeps refusing.
    pub base_block_ms: u64,
    /// An origin that has not refused for this long starts again from `base_block_ms`, in seconds.
    pub block_quiet_secs: u64,
    /// Whether robots.txt is fetched and obeyed.
    pub obey_robots: bool,
    /// Hosts (exact, case-insensitive) whose robots.txt is not consulted: the operator's own.
    pub robots_exempt_hosts: Vec<String>,
    /// How long a fetched robots.txt is used before it is fetched again, in seconds (at most 86400).
    pub robots_ttl_secs: u64,
    /// After a robots.txt answered 5xx or could not be reached, jobs of the origin wait and
    /// the file is fetched again after this long, in seconds.
    pub robots_error_recheck_secs: u64,
    /// Time limit of one robots.txt fetch, in milliseconds.
    pub robots_timeout_ms: u64,
    /// Per-origin overrides, first match wins.
    pub hosts: Vec<HostOverride>,
}

/// A pacing override for the origins a pattern matches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostOverride {
    /// A host (`example.com`), a host and port (`127.0.0.1:8080`), or `*.example.com` for
    /// every subdomain (and the domain itself).
    pub pattern: String,
    /// The delay between two requests to a matching origin, in milliseconds (0 = no pacing).
    pub delay_ms: u64,
}

/// Operations settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    /// Milliseconds between polls of queue depths, Redis readiness and the heartbeat.
    pub poll_interval_ms: u64,
    /// RabbitMQ management API base URL for `riptide stats`; empty to skip it.
    pub management_url: String,
}

/// How a worker consumes jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Jobs processed at the same time by one process (a semaphore; deliveries wait for a slot).
    pub concurrency: usize,
    /// Unacked deliveries the broker may push per lane (`basic.qos`).
    pub prefetch: u16,
    /// Seconds in-flight jobs get to finish after a stop signal, before they are handed back.
    pub shutdown_grace_secs: u64,
    /// One delivery in this many comes from the normal lane while the high lane has work.
    pub high_lane_weight: u32,
    /// Wire format of published results.
    pub result_format: WireFormat,
    /// Which extractor runs jobs: `wasm` (the sandboxed component pool) or `native`.
    pub engine: ExtractBackend,
    /// Whether this worker may render pages in headless Chromium (`render` headless or auto).
    /// The browser pool starts on the first job that needs it.
    pub headless: bool,
}

/// Defaults and bounds for job fields; a job outside them is dead-lettered with a reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobLimits {
    /// Timeout of a job that names none, in milliseconds.
    pub default_timeout_ms: u64,
    /// Largest timeout a job may ask for, in milliseconds.
    pub max_timeout_ms: u64,
    /// Attempts of a job that names none.
    pub default_max_attempts: u32,
    /// Largest `max_attempts` a job may ask for.
    pub max_attempts_limit: u32,
    /// Largest job message accepted, in bytes; larger ones are dead-lettered unread.
    pub max_message_bytes: usize,
    /// Longest URL accepted, in bytes.
    pub max_url_bytes: usize,
}

/// The static HTTP fetcher.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    /// TCP (and TLS) connect timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Redirects followed before the fetch fails with `too_many_redirects`.
    pub max_redirects: usize,
    /// Cap on the decoded body, in bytes; above it the fetch fails with `body_too_large`.
    pub max_body_bytes: usize,
    /// The User-Agent header sent with every request (pages, robots.txt, rendered pages);
    /// its first word (before `/`) is the token matched against robots.txt groups.
    pub user_agent: String,
    /// Query parameters removed from canonical URLs (document keys, dedup, pacing keys):
    /// names, or prefixes ending in `*`, compared case-insensitively.
    pub tracking_params: Vec<String>,
}

/// The retry schedule (exponential backoff with full jitter).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Upper bound of the first retry's delay, in milliseconds.
    pub base_delay_ms: u64,
    /// Cap of the delay's upper bound, in milliseconds.
    pub max_delay_ms: u64,
    /// Growth of the upper bound per attempt.
    pub factor: f32,
}

/// Redis storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Lifetime of a stored document, in seconds.
    pub doc_ttl_secs: u64,
    /// Lifetime of a job's state record, in seconds.
    pub job_ttl_secs: u64,
    /// Connections in the Redis pool.
    pub pool_size: usize,
    /// Longest pause between tries while Redis is unreachable, in milliseconds.
    pub max_wait_backoff_ms: u64,
}

/// Which extractor runs jobs (`worker.engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtractBackend {
    /// The sandboxed WASM component from the tiered pool.
    #[default]
    Wasm,
    /// The native core in process (no sandbox; for comparison and debugging).
    Native,
}

/// How messages are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// `application/json`.
    Json,
    /// `application/msgpack`.
    Msgpack,
}

impl Config {
    /// Loads the defaults, then `file` (which must exist when given), then `RIPTIDE_*`
    /// variables, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.display().to_string()));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("RIPTIDE_").split("__").ignore(NON_CONFIG_ENV));
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Gathers every problem before failing, so one start shows them all.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, message: &str| {
            if !ok {
                problems.push(message.to_string());
            }
        };
        check(
            self.amqp_url.starts_with("amqp://") || self.amqp_url.starts_with("amqps://"),
            "amqp_url: must start with amqp:// or amqps://",
        );
        check(
            self.redis_url.starts_with("redis://") || self.redis_url.starts_with("rediss://"),
            "redis_url: must start with redis:// or rediss://",
        );
        check(
            !self.namespace.is_empty()
                && self.namespace.len() <= 64
                && self.namespace.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
            "namespace: 1 to 64 characters of [A-Za-z0-9._-]",
        );
        check(self.worker.concurrency >= 1, "worker.concurrency: must be at least 1");
        check(self.worker.prefetch >= 1, "worker.prefetch: must be at least 1");
        check(self.worker.high_lane_weight >= 1, "worker.high_lane_weight: must be at least 1");
        check(self.job.default_timeout_ms >= 100, "job.default_timeout_ms: must be at least 100");
        check(
            self.job.default_timeout_ms <= self.job.max_timeout_ms,
            "job.default_timeout_ms: must not exceed job.max_timeout_ms",
        );
        check(self.job.default_max_attempts >= 1, "job.default_max_attempts: must be at least 1");
        check(
            self.job.default_max_attempts <= self.job.max_attempts_limit,
            "job.default_max_attempts: must not exceed job.max_attempts_limit",
        );
        check(self.job.max_message_bytes >= 1024, "job.max_message_bytes: must be at least 1024");
        check(self.job.max_url_bytes >= 16, "job.max_url_bytes: must be at least 16");
        check(self.fetch.connect_timeout_ms >= 10, "fetch.connect_timeout_ms: must be at least 10");
        check(self.fetch.max_body_bytes >= 1024, "fetch.max_body_bytes: must be at least 1024");
        check(self.retry.base_delay_ms >= 1, "retry.base_delay_ms: must be at least 1");
        check(
            self.retry.base_delay_ms <= self.retry.max_delay_ms,
            "retry.base_delay_ms: must not exceed retry.max_delay_ms",
        );
        check(self.retry.factor >= 1.0, "retry.factor: must be at least 1.0");
        check(self.store.pool_size >= 1, "store.pool_size: must be at least 1");
        check(self.store.doc_ttl_secs >= 1, "store.doc_ttl_secs: must be at least 1");
        check(self.store.job_ttl_secs >= 1, "store.job_ttl_secs: must be at least 1");
        check(self.ops.poll_interval_ms >= 100, "ops.poll_interval_ms: must be at least 100");
        let p = &self.politeness;
        check(p.robots_ttl_secs >= 1 && p.robots_ttl_secs <= 86_400, "politeness.robots_ttl_secs: 1 to 86400");
        check(p.robots_error_recheck_secs >= 1, "politeness.robots_error_recheck_secs: must be at least 1");
        check(p.robots_timeout_ms >= 100, "politeness.robots_timeout_ms: must be at least 100");
        check(p.base_block_ms >= 1, "politeness.base_block_ms: must be at least 1");
        check(p.hosts.iter().all(|h| !h.pattern.trim().is_empty()), "politeness.hosts: a pattern must not be empty");
        check(!self.fetch.user_agent.trim().is_empty(), "fetch.user_agent: must not be empty");
        problems.extend(self.wasm.problems());
        // Checked here, before any connection, not when the pool first launches.
        if let Err(error) = self.browser.validate() {
            problems.extend(error.problems.into_iter().map(|problem| format!("browser.{problem}")));
        }
        if let Some(problem) = crate::browser::isolation_problem(&self.browser) {
            problems.push(format!("browser: {problem}"));
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(problems)) }
    }

    /// The grace period given to in-flight jobs on shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.worker.shutdown_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let config: Config = Figment::from(Toml::string(DEFAULT_TOML)).extract().unwrap();
        config.validate().unwrap();
        assert_eq!(config.namespace, "riptide");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let mut config: Config = Figment::from(Toml::string(DEFAULT_TOML)).extract().unwrap();
        config.worker.concurrency = 0;
        config.retry.factor = 0.5;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("worker.concurrency"), "{message}");
        assert!(message.contains("retry.factor"), "{message}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let figment = Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string("[worker]\nconcurrency = \"many\""));
        let message = figment.extract::<Config>().unwrap_err().to_string();
        assert!(message.contains("concurrency"), "{message}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let figment = Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string("[worker]\nconcurency = 3"));
        let message = figment.extract::<Config>().unwrap_err().to_string();
        assert!(message.contains("concurency"), "{message}");
    }

    /// `config/default.toml` is the one place defaults live: every key the configuration has
    /// is written there (a key missing from it would take a default from code that no
    /// operator reads).
    #[test]
    fn default_toml_holds_every_key() {
        fn keys(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
            if let toml::Value::Table(table) = value {
                for (key, inner) in table {
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    out.push(path.clone());
                    keys(&path, inner, out);
                }
            }
        }
        let config: Config = Figment::from(Toml::string(DEFAULT_TOML)).extract().unwrap();
        let (mut from_code, mut written) = (Vec::new(), Vec::new());
        keys("", &toml::Value::try_from(&config).unwrap(), &mut from_code);
        keys("", &toml::from_str(DEFAULT_TOML).unwrap(), &mut written);
        // Defaults that depend on the machine are described in a comment of the file instead.
        const MACHINE_DEPENDENT: &[&str] = &["browser.executable"];
        let missing: Vec<&String> =
            from_code.iter().filter(|k| !written.contains(k) && !MACHINE_DEPENDENT.contains(&k.as_str())).collect();
        assert!(missing.is_empty(), "keys without a line in config/default.toml: {missing:?}");
    }
}
