//! The browser pool's configuration: sizes, limits, timeouts, flags.
//!
//! It owns the typed `[browser]` section and its validation; it must not launch anything
//! (the pool in `pool.rs` reads it). Defaults suit a 2-core, 24 GiB machine.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where Debian's package puts the real binary (`/usr/bin/chromium` is a shell wrapper that
/// adds flags from `/etc/chromium.d` and `exec`s this one).
const DEBIAN_CHROMIUM: &str = "/usr/lib/chromium/chromium";
/// The wrapper, used when the real binary is not where Debian puts it.
const WRAPPER_CHROMIUM: &str = "/usr/bin/chromium";

/// Configuration of the headless Chromium pool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BrowserConfig {
    /// Path of the Chromium binary. Default: `/usr/lib/chromium/chromium` when it exists,
    /// else `/usr/bin/chromium`. A missing binary fails `BrowserPool::start`.
    pub executable: PathBuf,
    /// Directory under which each launched browser gets its own profile (`slot-N-LAUNCH.profile`,
    /// removed when that browser is gone). Default: a
    /// fresh directory under the system temp dir, removed by `close`.
    pub profile_root: Option<PathBuf>,
    /// Browsers kept running even when idle (launched at start, replaced when recycled).
    pub min_browsers: usize,
    /// Most browsers alive at once; each costs ~380 MiB PSS idle. When all are full, a render
    /// waits up to `lease_timeout_ms` for a tab.
    pub max_browsers: usize,
    /// Most jobs (tabs) one browser serves at once. On 2 cores one browser saturates at 3-4.
    pub tabs_per_browser: usize,
    /// Fresh incognito contexts (each with its renderer started) kept ready per browser, so a
    /// lease does not pay for a context and its new renderer. 0 creates every context on the request path.
    pub warm_contexts: usize,
    /// Pages a browser renders before it is recycled (drained, then replaced). 0 = never.
    pub pages_per_browser: u64,
    /// Seconds a browser lives before it is recycled (drained, then replaced). 0 = never.
    pub max_browser_age_secs: u64,
    /// PSS of one browser's process tree, in bytes, above which it takes no new leases and is
    /// recycled as soon as its current jobs end.
    pub soft_limit_bytes: u64,
    /// PSS of one browser's process tree, in bytes, above which it is killed at once; its
    /// jobs fail with a retryable error.
    pub hard_limit_bytes: u64,
    /// Milliseconds between memory measurements (PSS from /proc, JS heap over CDP). The hard
    /// limit can be overshot by what a page allocates in this time.
    pub memory_poll_ms: u64,
    /// Block image requests (faster, less memory; extraction does not need pixels).
    pub block_images: bool,
    /// Block web-font requests.
    pub block_fonts: bool,
    /// Block audio and video requests.
    pub block_media: bool,
    /// Timeout of every CDP call (create context, open tab, evaluate, close), in milliseconds.
    /// A call that times out fails the job with a retryable error and the browser is recycled,
    /// since a browser that stops answering is not trusted again.
    pub cdp_timeout_ms: u64,
    /// Timeout of launching one browser until its DevTools socket answers, in milliseconds.
    pub launch_timeout_ms: u64,
    /// How long a render waits for a free tab when every browser is full, in milliseconds;
    /// then it fails with a retryable `PoolExhausted`.
    pub lease_timeout_ms: u64,
    /// Settle rule for pages without `wait_for`: after `load`, the DOM must stay unchanged for
    /// this many milliseconds (client-rendered pages insert content after load).
    pub settle_quiet_ms: u64,
    /// Longest the settle rule waits for a quiet DOM, in milliseconds; a page that keeps
    /// mutating is taken as it is then (not an error).
    pub settle_max_ms: u64,
    /// Time limit of one DNS lookup by the browsers' egress proxy, in milliseconds; a request
    /// whose lookup runs out is refused (fail closed), and does not hold up other requests.
    pub lookup_timeout_ms: u64,
    /// Origins (`scheme://host:port`) the request guard lets through even when they are not
    /// public, e.g. one internal site or a test fixture. Everything else non-public stays
    /// blocked unless `allow_private_networks` is set for the whole worker.
    pub guard_allow_origins: Vec<String>,
    /// Make this process a child subreaper (Linux), so Chromium helpers orphaned by a killed
    /// browser are re-parented here and reaped by the pool instead of lingering as zombies
    /// under an init that does not reap (as on these VMs). Process-wide; turn off if the host
    /// process manages its own subreaping.
    pub reap_orphans: bool,
    /// Whether Chromium runs with its sandbox: `auto` (on when this machine offers user
    /// namespaces or a setuid `chrome-sandbox`, else off with a warning saying why), `required`
    /// (the pool fails to start without it) or `off` (`--no-sandbox`). The choice is logged at
    /// start and shown in the pool's stats.
    pub sandbox: SandboxPolicy,
    /// User Chromium runs as (a name from /etc/passwd, or `uid` or `uid:gid`). Default: this
    /// process's user, or `nobody` when that is root (Chromium refuses its sandbox as root).
    /// Another user than this process's needs root; each browser's profile and temp
    /// directories are given to that user.
    pub run_as: Option<String>,
    /// Extra Chromium switches, without the leading `--` (e.g. `"lang=de-DE"`). Chromium keeps
    /// only the last `disable-features=`, so one given here replaces the pool's own list.
    pub extra_args: Vec<String>,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        BrowserConfig {
            executable: default_executable(),
            profile_root: None,
            min_browsers: 1,
            max_browsers: 2,
            tabs_per_browser: 3,
            warm_contexts: 2,
            pages_per_browser: 500,
            max_browser_age_secs: 1800,
            soft_limit_bytes: 1536 * MIB,
            hard_limit_bytes: 3072 * MIB,
            memory_poll_ms: 1000,
            block_images: true,
            block_fonts: true,
            block_media: true,
            cdp_timeout_ms: 10_000,
            launch_timeout_ms: 20_000,
            lease_timeout_ms: 30_000,
            settle_quiet_ms: 150,
            settle_max_ms: 3000,
            lookup_timeout_ms: 5000,
            guard_allow_origins: Vec::new(),
            reap_orphans: true,
            sandbox: SandboxPolicy::Auto,
            run_as: None,
            extra_args: Vec::new(),
        }
    }
}

/// One mebibyte.
const MIB: u64 = 1024 * 1024;

fn default_executable() -> PathBuf {
    if std::path::Path::new(DEBIAN_CHROMIUM).exists() {
        PathBuf::from(DEBIAN_CHROMIUM)
    } else {
        PathBuf::from(WRAPPER_CHROMIUM)
    }
}

/// Whether Chromium runs with its sandbox (`browser.sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxPolicy {
    /// On when this machine can run it (user namespaces or a setuid `chrome-sandbox`), else
    /// off with a warning naming why; never on as root.
    #[default]
    Auto,
    /// Always on: a pool that cannot run it fails to start instead of running without it.
    Required,
    /// Always off (`--no-sandbox`): only for hosts where it cannot work and that accept it.
    Off,
}

/// A configuration that cannot work; every problem is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid browser config: {}", .problems.join("; "))]
pub struct BrowserConfigError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl BrowserConfig {
    /// Checks the values against each other and reports every problem together.
    pub fn validate(&self) -> Result<(), BrowserConfigError> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, problem: &str| {
            if !ok {
                problems.push(problem.to_string());
            }
        };
        check(self.max_browsers >= 1, "max_browsers must be at least 1");
        check(self.min_browsers <= self.max_browsers, "min_browsers must not exceed max_browsers");
        check(self.tabs_per_browser >= 1, "tabs_per_browser must be at least 1");
        check(self.soft_limit_bytes <= self.hard_limit_bytes, "soft_limit_bytes must not exceed hard_limit_bytes");
        check(self.memory_poll_ms >= 10, "memory_poll_ms must be at least 10");
        check(self.cdp_timeout_ms >= 100, "cdp_timeout_ms must be at least 100");
        check(self.lookup_timeout_ms >= 10, "lookup_timeout_ms must be at least 10");
        check(self.launch_timeout_ms >= 1000, "launch_timeout_ms must be at least 1000");
        check(self.settle_quiet_ms <= self.settle_max_ms, "settle_quiet_ms must not exceed settle_max_ms");
        check(self.extra_args.iter().all(|arg| !arg.starts_with('-')), "extra_args are written without the leading --");
        check(
            !self.extra_args.iter().any(|arg| arg == "no-sandbox"),
            "extra_args must not hold no-sandbox: set sandbox = \"off\"",
        );
        for origin in &self.guard_allow_origins {
            check(url::Url::parse(origin).is_ok(), &format!("guard_allow_origins: {origin:?} is not a URL"));
        }
        if problems.is_empty() { Ok(()) } else { Err(BrowserConfigError { problems }) }
    }

    /// [`Self::cdp_timeout_ms`] as a duration.
    pub fn cdp_timeout(&self) -> Duration {
        Duration::from_millis(self.cdp_timeout_ms)
    }

    /// Whether any resource type is blocked, so the request interceptor is needed even when
    /// private networks are allowed.
    pub fn blocks_resources(&self) -> bool {
        self.block_images || self.block_fonts || self.block_media
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(BrowserConfig::default().validate(), Ok(()));
    }

    #[test]
    fn every_problem_is_reported() {
        let config = BrowserConfig {
            min_browsers: 3,
            max_browsers: 2,
            soft_limit_bytes: 2,
            hard_limit_bytes: 1,
            extra_args: vec!["--no-sandbox".into()],
            ..BrowserConfig::default()
        };
        let problems = config.validate().err().map(|e| e.problems.len());
        assert_eq!(problems, Some(3));
    }

    #[test]
    fn default_toml_holds_the_defaults() {
        let file: toml::Table = toml::from_str(include_str!("../../config/default.toml")).unwrap_or_default();
        let section = file.get("browser").cloned().unwrap_or(toml::Value::Table(toml::Table::new()));
        let parsed: Result<BrowserConfig, _> = section.clone().try_into();
        assert_eq!(parsed.ok(), Some(BrowserConfig::default()));
        // Every key is written out but `executable` (it depends on the machine); `profile_root`
        // and `run_as` default to none, which TOML cannot write.
        let written = section.as_table().map(toml::Table::len).unwrap_or(0);
        let all = toml::Table::try_from(BrowserConfig::default()).map(|t| t.len()).unwrap_or(0);
        assert_eq!(written + 1, all, "a default missing from config/default.toml");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let parsed: Result<BrowserConfig, _> = toml::from_str("max_browser = 3");
        assert!(parsed.is_err());
        let parsed: Result<BrowserConfig, _> = toml::from_str("max_browsers = 3");
        assert_eq!(parsed.map(|c| c.max_browsers).ok(), Some(3));
    }
}
