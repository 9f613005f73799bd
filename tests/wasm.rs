#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The tiered WASM pool against real components: the embedded `article` extractor, a
//! hostile component (`tests/components/hostile`: loops, over-allocates, panics, fails on
//! command) and one with a mismatched WIT (`tests/components/mismatched`), both built here from
//! source once per run. No timing assertions: deadlines are generous (two loaded cores).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use riptide::wasm::{
    ArtifactOutcome, BreakerState, ExtractedBy, ExtractorPool, Tier, WasmConfig, WasmError, WasmEvent,
};
use riptide_extractor::Options;

/// A page the real extractor finds an article in.
const PAGE: &str = "<html><head><title>Tides</title></head><body><article><h1>Tides</h1>\
    <p>The tide rises and falls twice a day, pulled by the moon and, to a lesser degree, the sun. \
    Sailors have timed their departures by it for as long as there have been harbours to leave.</p>\
    <p>Spring tides come with the new and full moon; neap tides with the quarters, when the pulls \
    of sun and moon partly cancel and the water moves least.</p></article></body></html>";

const BUDGET: Duration = Duration::from_secs(20);

/// Builds the test components once per run; returns their directory.
fn components() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        // Read at run time: a test binary reused from a clone at another path (one shared
        // target dir) would otherwise carry that clone's path.
        let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
        let root = root.as_path();
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let target =
            exe.ancestors().find(|p| p.join("CACHEDIR.TAG").exists()).unwrap_or(root).join("riptide-test-components");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(root)
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .args(["-p", "riptide-test-hostile", "-p", "riptide-test-mismatched", "--target-dir"])
            .arg(&target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .map_err(|e| format!("running cargo: {e}"))?;
        if !status.success() {
            return Err(format!(
                "building the test components failed ({status}); is the wasm32-wasip2 target installed? \
                 `rustup target add wasm32-wasip2` (scripts/setup.sh does it)"
            ));
        }
        Ok(target.join("wasm32-wasip2/release"))
    });
    built.as_deref().unwrap_or_else(|e| panic!("{e}"))
}

fn component(name: &str) -> PathBuf {
    components().join(format!("riptide_test_{name}.wasm"))
}

/// A directory of named extractors, each a copy of a test component.
fn extractor_dir(items: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, source) in items {
        std::fs::copy(component(source), dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

fn config(cache: &Path) -> WasmConfig {
    WasmConfig { aot_cache_dir: Some(cache.to_path_buf()), slots: 8, hot_max_total: 4, ..WasmConfig::default() }
}

async fn extract(
    pool: &ExtractorPool,
    extractor: &str,
    html: &str,
    budget: Duration,
) -> Result<riptide::wasm::Extraction, WasmError> {
    pool.extract(extractor, html.to_owned(), "https://example.org/tides".to_owned(), Options::default(), budget).await
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<WasmEvent>) -> Vec<WasmEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_extractor_serves_from_the_hot_tier() {
    let cache = tempfile::tempdir().unwrap();
    let pool = ExtractorPool::start(config(cache.path())).await.unwrap();
    let stats = pool.stats();
    let article = &stats.extractors[0];
    assert_eq!((article.name.as_str(), article.tier), ("article", Tier::Hot), "{stats:?}");
    assert!(article.hot_idle >= 1);

    let got = extract(&pool, "article", PAGE, BUDGET).await.unwrap();
    assert_eq!((got.engine, got.tier), (ExtractedBy::Wasm, Tier::Hot));
    assert_eq!(got.engine.as_str(), "wasm");
    assert!(got.document.text.contains("Spring tides"), "{:?}", got.document.text);

    let lease = pool.lease("article").await.unwrap();
    assert_eq!(lease.tier().as_str(), "hot");
    lease.release().await;
    let unknown = pool.lease("nope").await.unwrap_err();
    assert!(matches!(unknown, WasmError::UnknownExtractor(_)));
    assert!(!unknown.classify().is_retryable());
    pool.close().await;
    assert!(matches!(pool.lease("article").await, Err(WasmError::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_released_uncalled_goes_back_to_the_hot_list() {
    let cache = tempfile::tempdir().unwrap();
    let pool = ExtractorPool::start(config(cache.path())).await.unwrap();
    let idle = || pool.stats().extractors[0].hot_idle;
    let full = pool.stats().extractors[0].hot_target;
    assert!(full >= 1 && idle() == full, "{:?}", pool.stats());
    let in_use = pool.stats().slots_in_use;

    let lease = pool.lease("article").await.unwrap();
    assert_eq!((lease.tier(), idle()), (Tier::Hot, full - 1));
    lease.release().await;
    assert_eq!((idle(), pool.stats().slots_in_use), (full, in_use), "kept, not torn down and rebuilt");
    // The Drop fallback shelves it too.
    drop(pool.lease("article").await.unwrap());
    assert_eq!(idle(), full);
    // A called instance is used up; the refill replaces it.
    extract(&pool, "article", PAGE, BUDGET).await.unwrap();
    assert_eq!(pool.stats().extractors[0].leases_hot, 3);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_calls_are_stopped_and_the_pool_keeps_serving() {
    let cache = tempfile::tempdir().unwrap();
    let dir = extractor_dir(&[("hostile", "hostile")]);
    let cfg = WasmConfig {
        components_dir: Some(dir.path().to_path_buf()),
        call_memory_cap_bytes: 64 << 20,
        breaker_failure_threshold: 100,
        ..config(cache.path())
    };
    let pool = ExtractorPool::start(cfg).await.unwrap();

    let looped = extract(&pool, "hostile", "loop", Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(looped, WasmError::Timeout(_)), "{looped:?}");
    assert!(!looped.classify().is_retryable());

    let hog = extract(&pool, "hostile", "alloc", BUDGET).await.unwrap_err();
    assert!(matches!(hog, WasmError::MemoryCap { cap, .. } if cap == 64 << 20), "{hog:?}");
    assert!(!hog.classify().is_retryable());

    let panicked = extract(&pool, "hostile", "panic", BUDGET).await.unwrap_err();
    assert!(matches!(panicked, WasmError::Trap { .. }), "{panicked:?}");
    assert!(!panicked.classify().is_retryable());

    let echo = extract(&pool, "hostile", "still here", BUDGET).await.unwrap();
    assert_eq!(echo.document.text, "still here");
    let article = extract(&pool, "article", PAGE, BUDGET).await.unwrap();
    assert_eq!(article.engine, ExtractedBy::Wasm);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_with_another_wit_is_refused_at_load() {
    let cache = tempfile::tempdir().unwrap();
    let dir = extractor_dir(&[("odd", "mismatched")]);
    let cfg = WasmConfig { components_dir: Some(dir.path().to_path_buf()), ..config(cache.path()) };
    let err = ExtractorPool::start(cfg).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, WasmError::Contract { ref extractor, .. } if extractor == "odd"), "{err:?}");
    assert!(message.contains("`extract`"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_falls_back_and_closes_again() {
    let cache = tempfile::tempdir().unwrap();
    let dir = extractor_dir(&[("hostile", "hostile")]);
    let cfg = WasmConfig {
        components_dir: Some(dir.path().to_path_buf()),
        breaker_failure_threshold: 2,
        breaker_open_ms: 300,
        ..config(cache.path())
    };
    let pool = ExtractorPool::start(cfg).await.unwrap();
    let mut events = pool.subscribe();

    // Two distinct pages (one page failing twice would not open it).
    for i in 0..2 {
        let err = extract(&pool, "hostile", &format!("internal {i}"), BUDGET).await.unwrap_err();
        assert!(matches!(err, WasmError::Extractor(riptide_extractor::ExtractError::Internal { .. })), "{err:?}");
    }
    assert_eq!(pool.stats().extractors[1].breaker, BreakerState::Open);
    let fallback = extract(&pool, "hostile", PAGE, BUDGET).await.unwrap();
    assert_eq!(fallback.engine, ExtractedBy::NativeFallback);
    assert_eq!(fallback.engine.as_str(), "native-fallback");
    assert!(fallback.document.text.contains("Spring tides"));

    tokio::time::sleep(Duration::from_millis(400)).await;
    let probe = extract(&pool, "hostile", "probe", BUDGET).await.unwrap();
    assert_eq!((probe.engine, probe.document.text.as_str()), (ExtractedBy::Wasm, "probe"));
    assert_eq!(pool.stats().extractors[1].breaker, BreakerState::Closed);

    let keys: Vec<&str> = drain(&mut events).iter().map(|e| e.routing_key()).collect();
    for key in ["wasm.breaker.opened", "wasm.breaker.half_open", "wasm.breaker.closed"] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trapping_page_fails_alone_distinct_ones_open_the_breaker() {
    let cache = tempfile::tempdir().unwrap();
    let dir = extractor_dir(&[("hostile", "hostile")]);
    let cfg = WasmConfig {
        components_dir: Some(dir.path().to_path_buf()),
        breaker_failure_threshold: 3,
        breaker_open_ms: 600_000,
        ..config(cache.path())
    };
    let pool = ExtractorPool::start(cfg).await.unwrap();
    let breaker = |pool: &ExtractorPool| pool.stats().extractors[1].breaker;

    // The same trapping page, again and again: each job fails permanently with its reason, and
    // the component stays trusted.
    for _ in 0..10 {
        let err = extract(&pool, "hostile", "panic", BUDGET).await.unwrap_err();
        assert!(matches!(err, WasmError::Trap { .. }), "{err:?}");
        assert!(!err.classify().is_retryable());
    }
    assert_eq!(breaker(&pool), BreakerState::Closed);
    assert_eq!(extract(&pool, "hostile", "fine", BUDGET).await.unwrap().engine, ExtractedBy::Wasm);

    // Distinct trapping pages in a row: that is the component's health.
    for i in 0..3 {
        let err = extract(&pool, "hostile", &format!("panic {i}"), BUDGET).await.unwrap_err();
        assert!(matches!(err, WasmError::Trap { .. }), "{err:?}");
    }
    assert_eq!(breaker(&pool), BreakerState::Open);
    assert_eq!(extract(&pool, "hostile", PAGE, BUDGET).await.unwrap().engine, ExtractedBy::NativeFallback);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_survive_a_restart_and_strangers_files_are_removed() {
    let cache = tempfile::tempdir().unwrap();
    let pool = ExtractorPool::start(config(cache.path())).await.unwrap();
    assert_eq!(pool.stats().extractors[0].artifact, ArtifactOutcome::Compiled);
    pool.close().await;

    // A restarted worker serves its first document without compiling anything.
    let pool = ExtractorPool::start(config(cache.path())).await.unwrap();
    let stats = pool.stats();
    assert_eq!((stats.extractors[0].artifact, stats.compiles), (ArtifactOutcome::Loaded, 0), "{stats:?}");
    extract(&pool, "article", PAGE, BUDGET).await.unwrap();
    assert_eq!(pool.stats().compiles, 0);
    pool.close().await;

    // A stranger's artifact beside ours is removed unread (and ours still loads).
    let stranger = cache.path().join("stranger.cwasm");
    std::fs::write(&stranger, b"not an artifact").unwrap();
    let pool = ExtractorPool::start(config(cache.path())).await.unwrap();
    let stats = pool.stats();
    assert_eq!((stats.extractors[0].artifact, stats.artifacts_rejected), (ArtifactOutcome::Loaded, 1), "{stats:?}");
    assert!(!stranger.exists());
    pool.close().await;
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

/// Every log line this test binary writes, for the tests that check a refusal was logged.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(|| LogSink)
            .try_init();
    });
}

/// True if one log line holds every needle.
fn logged(needles: &[&str]) -> bool {
    let logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&logs).lines().any(|line| needles.iter().all(|n| line.contains(n)))
}

/// The artifact files in a cache directory.
fn cwasm_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    out.sort();
    out
}

/// Starts a pool on `cfg`, checks `article` came the `expected` way and serves a page, closes it.
async fn start_expecting(cfg: WasmConfig, expected: ArtifactOutcome) -> riptide::wasm::WasmPoolStats {
    let pool = ExtractorPool::start(cfg).await.unwrap();
    let stats = pool.stats();
    assert_eq!(stats.extractors[0].artifact, expected, "{stats:?}");
    let got = extract(&pool, "article", PAGE, BUDGET).await.unwrap();
    assert!(got.document.text.contains("Spring tides"));
    pool.close().await;
    stats
}

/// Rewrites the manifest entry of `file` with `edit`.
fn edit_manifest(cache: &Path, file: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = cache.join("riptide-aot.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    edit(&mut manifest["files"][name.as_str()]);
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

/// The artifact checksum as riptide's manifest spells it (XXH3-128, 32 hex digits).
fn checksum_hex(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_and_foreign_artifacts_are_refused_rebuilt_and_logged() {
    capture_logs();
    let cases = ["corrupt", "truncated", "foreign engine (manifest)", "foreign engine (bytes)", "stranger's file"];
    for case in cases {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().to_string_lossy().into_owned();
        start_expecting(config(cache.path()), ArtifactOutcome::Compiled).await;
        let ours = cwasm_files(cache.path());
        assert_eq!(ours.len(), 1, "{case}");
        let file = &ours[0];
        match case {
            "corrupt" => {
                let mut bytes = std::fs::read(file).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
                std::fs::write(file, bytes).unwrap();
            }
            "truncated" => {
                let len = std::fs::metadata(file).unwrap().len();
                std::fs::OpenOptions::new().write(true).open(file).unwrap().set_len(len / 2).unwrap();
            }
            "foreign engine (manifest)" => {
                edit_manifest(cache.path(), file, |e| e["engine"] = "0000000000000000".into());
            }
            "foreign engine (bytes)" => {
                // Compiled by an engine with other settings (fuel), vouched for by checksum under
                // this engine's name: wasmtime's own header check must refuse it.
                let fuel = WasmConfig { fuel_per_call: Some(1 << 40), ..config(cache.path()) };
                start_expecting(fuel, ArtifactOutcome::Compiled).await;
                let other = cwasm_files(cache.path()).into_iter().find(|f| f != file).unwrap();
                let bytes = std::fs::read(&other).unwrap();
                std::fs::write(file, &bytes).unwrap();
                edit_manifest(cache.path(), file, |e| e["checksum"] = checksum_hex(&bytes).into());
            }
            _ => {
                // A file riptide did not write, under the very name it would load.
                let bytes = std::fs::read(file).unwrap();
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                let path = cache.path().join("riptide-aot.json");
                let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                m["files"].as_object_mut().unwrap().remove(&name);
                std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
                std::fs::write(file, bytes).unwrap();
            }
        }
        let stats = start_expecting(config(cache.path()), ArtifactOutcome::Rebuilt).await;
        assert_eq!((stats.compiles, stats.artifacts_rejected), (1, 1), "{case}: {stats:?}");
        assert!(
            logged(&[&dir, "Refused a compiled artifact"]) || logged(&[&dir, "riptide did not write"]),
            "{case}: no log line"
        );
        // The rebuilt artifact is good: the next start compiles nothing.
        let stats = start_expecting(config(cache.path()), ArtifactOutcome::Loaded).await;
        assert_eq!(stats.compiles, 0, "{case}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_others_can_write_is_refused() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    capture_logs();
    // Group-writable: made private again, its artifacts refused and rebuilt.
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_string_lossy().into_owned();
    start_expecting(config(cache.path()), ArtifactOutcome::Compiled).await;
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
    start_expecting(config(cache.path()), ArtifactOutcome::Rebuilt).await;
    assert!(logged(&[&dir, "writable by others"]));
    assert_eq!(std::fs::metadata(cache.path()).unwrap().mode() & 0o777, 0o700);
    start_expecting(config(cache.path()), ArtifactOutcome::Loaded).await;

    // Owned by another user (needs root to arrange; CI and these machines run as root): not
    // used at all, every component compiled in memory, nothing written there.
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("not root: the other-owner case needs chown; skipped");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_string_lossy().into_owned();
    start_expecting(config(cache.path()), ArtifactOutcome::Compiled).await;
    std::os::unix::fs::chown(cache.path(), Some(65_534), Some(65_534)).unwrap();
    let before = cwasm_files(cache.path());
    let stats = start_expecting(config(cache.path()), ArtifactOutcome::Rebuilt).await;
    assert_eq!((stats.compiles, stats.artifacts_rejected), (1, 1), "{stats:?}");
    assert!(logged(&[&dir, "not used", "owned by uid 65534"]));
    assert_eq!(cwasm_files(cache.path()), before, "a foreign directory is left as it is");
    std::os::unix::fs::chown(cache.path(), Some(0), Some(0)).unwrap();
}

/// Makes `dir` read-only until dropped: a read-only bind mount when root (permissions do not
/// stop root), else mode 0500.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        if rustix::process::geteuid().as_raw() == 0 {
            let run = |args: &[&str]| {
                let status = std::process::Command::new("mount").args(args).arg(dir).arg(dir).status().unwrap();
                assert!(status.success(), "mount {args:?}");
            };
            run(&["--bind"]);
            run(&["-o", "remount,bind,ro"]);
        } else {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        }
        assert!(std::fs::write(dir.join("probe"), b"x").is_err(), "{} is still writable", dir.display());
        ReadOnly(dir.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if rustix::process::geteuid().as_raw() == 0 {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        } else {
            let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o700));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_artifact_directory_does_not_stop_the_worker() {
    capture_logs();
    // Empty and read-only: compiled in memory, logged, serving.
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_string_lossy().into_owned();
    {
        let _ro = ReadOnly::new(cache.path());
        let stats = start_expecting(config(cache.path()), ArtifactOutcome::Compiled).await;
        assert_eq!(stats.compiles, 1);
        assert!(logged(&[&dir, "not writable", "compiled in memory"]));
    }
    // Read-only with a valid artifact: still loaded from it.
    start_expecting(config(cache.path()), ArtifactOutcome::Compiled).await;
    {
        let _ro = ReadOnly::new(cache.path());
        let stats = start_expecting(config(cache.path()), ArtifactOutcome::Loaded).await;
        assert_eq!(stats.compiles, 0);
    }
}

#[test]
fn unsafe_code_is_only_in_the_aot_loader() {
    // Where `unsafe` may appear as code: the one loader, and the wit-bindgen glue module of the
    // guest components (their crates set `unsafe_code = "deny"` and allow it on that module).
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let allowed = root.join("src/wasm/aot.rs");
    let glue = [
        "extractor-component/guest/src/lib.rs",
        "tests/components/hostile/src/lib.rs",
        "tests/components/mismatched/src/lib.rs",
    ]
    .map(|p| root.join(p));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "extractor-component"] {
        files.extend(walk(&root.join(dir)).into_iter().filter(|p| p.extension().is_some_and(|x| x == "rs")));
    }
    files.push(root.join("build.rs"));
    // The needles are built, so that this file does not match itself.
    let word = ["un", "safe"].concat();
    let (block, attr) = (format!("{word} {{"), format!("{word}("));
    let (allow_attr, expect_attr) = (format!("allow({word}_code"), format!("expect({word}_code"));
    let mut found = Vec::new();
    let mut allows_in_aot = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let words: Vec<&str> =
                code.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
            let keyword = words.windows(2).any(|w| w[0] == word && ["fn", "impl", "extern", "trait"].contains(&w[1]))
                || code.contains(&block)
                || code.contains(&attr);
            let allow = code.contains(&allow_attr) || code.contains(&expect_attr);
            if file == &allowed {
                allows_in_aot += usize::from(allow);
                continue;
            }
            let generated =
                glue.contains(file) && allow && text.lines().nth(n + 1).is_some_and(|l| l.trim() == "mod bindings {");
            if (keyword || allow) && !generated {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "unsafe code outside src/wasm/aot.rs:\n{}", found.join("\n"));
    assert_eq!(allows_in_aot, 1, "src/wasm/aot.rs allows unsafe_code on exactly one item");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_follow_a_changing_mix_of_extractors() {
    let cache = tempfile::tempdir().unwrap();
    let dir = extractor_dir(&[("alpha", "hostile"), ("beta", "hostile")]);
    let cfg = WasmConfig {
        components_dir: Some(dir.path().to_path_buf()),
        // Rebalanced by hand below, on the latest interval's demand only.
        rebalance_interval_ms: 3_600_000,
        demand_smoothing: 1.0,
        hot_demand: 3.0,
        warm_demand: 1.5,
        ..config(cache.path())
    };
    let pool = ExtractorPool::start(cfg).await.unwrap();
    let mut events = pool.subscribe();
    let tier_of =
        |pool: &ExtractorPool, name: &str| pool.stats().extractors.iter().find(|e| e.name == name).unwrap().tier;
    assert_eq!((tier_of(&pool, "alpha"), tier_of(&pool, "beta")), (Tier::Cold, Tier::Cold));

    // Demand on alpha: its first lease loads the artifact (cold), then alpha turns hot.
    for _ in 0..3 {
        let lease = pool.lease("alpha").await.unwrap();
        assert_eq!(lease.tier(), Tier::Cold);
        lease.release().await;
    }
    pool.rebalance_now().await;
    assert_eq!((tier_of(&pool, "alpha"), tier_of(&pool, "beta")), (Tier::Hot, Tier::Cold));
    let lease = pool.lease("alpha").await.unwrap();
    assert_eq!(lease.tier(), Tier::Hot);
    lease.release().await;

    // The mix shifts to beta (two leases; alpha had one): beta warms, alpha cools to cold.
    pool.lease("beta").await.unwrap().release().await;
    pool.lease("beta").await.unwrap().release().await;
    pool.rebalance_now().await;
    assert_eq!((tier_of(&pool, "alpha"), tier_of(&pool, "beta")), (Tier::Cold, Tier::Warm));
    let lease = pool.lease("beta").await.unwrap();
    assert_eq!(lease.tier(), Tier::Warm);
    lease.release().await;

    let got = drain(&mut events);
    assert!(
        got.contains(&WasmEvent::Promoted { extractor: "alpha".into(), from: Tier::Cold, to: Tier::Hot }),
        "{got:?}"
    );
    assert!(
        got.contains(&WasmEvent::Demoted { extractor: "alpha".into(), from: Tier::Hot, to: Tier::Cold }),
        "{got:?}"
    );
    assert!(
        got.contains(&WasmEvent::Promoted { extractor: "beta".into(), from: Tier::Cold, to: Tier::Warm }),
        "{got:?}"
    );
    assert!(got.iter().any(|e| matches!(e, WasmEvent::Evicted { extractor, .. } if extractor == "alpha")), "{got:?}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_waits_then_fails_retryably() {
    let cache = tempfile::tempdir().unwrap();
    let cfg = WasmConfig {
        slots: 2,
        hot_max_total: 1,
        hot_max_per_extractor: 1,
        lease_timeout_ms: 200,
        ..config(cache.path())
    };
    let pool = ExtractorPool::start(cfg).await.unwrap();
    let first = pool.lease("article").await.unwrap();
    let second = pool.lease("article").await.unwrap();
    let err = pool.lease("article").await.unwrap_err();
    assert!(matches!(err, WasmError::PoolExhausted(_)), "{err:?}");
    assert!(err.classify().is_retryable());
    first.release().await;
    let third = pool.lease("article").await.unwrap();
    // Dropped without release: the Drop fallback returns the slot too.
    drop(second);
    let fourth = pool.lease("article").await.unwrap();
    drop((third, fourth));
    pool.close().await;
}

#[test]
fn default_toml_holds_every_wasm_default() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let text = std::fs::read_to_string(root.join("config/default.toml")).unwrap();
    let file: toml::Table = toml::from_str(&text).unwrap();
    let section = file["wasm"].clone();
    let config: WasmConfig = section.clone().try_into().unwrap();
    assert_eq!(config, WasmConfig::default());
    // Every key of the section, except those whose default is "unset" (TOML has no null).
    let written: Vec<&String> = section.as_table().unwrap().keys().collect();
    let all = toml::Table::try_from(WasmConfig::default()).unwrap();
    let missing: Vec<&String> = all.keys().filter(|k| !written.contains(k)).collect();
    assert!(missing.is_empty(), "config/default.toml [wasm] lacks {missing:?}");
}

#[test]
fn the_config_section_rejects_unknown_keys() {
    let toml = "slots = 4\nhot_max_total = 2\npinned = { article = \"hot\" }\n";
    let config: WasmConfig = toml::from_str(toml).unwrap();
    assert_eq!((config.slots, config.pinned.get("article")), (4, Some(&Tier::Hot)));
    assert!(toml::from_str::<WasmConfig>("slotz = 4").is_err());
}
