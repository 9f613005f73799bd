#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The tiered WASM pool (issue 4) against real components: the embedded `article` extractor, a
//! hostile component (`tests/components/hostile`: loops, over-allocates, panics, fails on
//! command) and one with a mismatched WIT (`tests/components/mismatched`), both built here from
//! source once per run. No timing assertions: deadlines are generous (two loaded cores).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use riptide::wasm::{ArtifactOutcome, BreakerState, Engine, ExtractorPool, Tier, WasmConfig, WasmError, WasmEvent};
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
    assert_eq!((got.engine, got.tier), (Engine::Wasm, Tier::Hot));
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
    assert_eq!(article.engine, Engine::Wasm);
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
    assert_eq!(fallback.engine, Engine::NativeFallback);
    assert_eq!(fallback.engine.as_str(), "native-fallback");
    assert!(fallback.document.text.contains("Spring tides"));

    tokio::time::sleep(Duration::from_millis(400)).await;
    let probe = extract(&pool, "hostile", "probe", BUDGET).await.unwrap();
    assert_eq!((probe.engine, probe.document.text.as_str()), (Engine::Wasm, "probe"));
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
    assert_eq!(extract(&pool, "hostile", "fine", BUDGET).await.unwrap().engine, Engine::Wasm);

    // Distinct trapping pages in a row: that is the component's health.
    for i in 0..3 {
        let err = extract(&pool, "hostile", &format!("panic {i}"), BUDGET).await.unwrap_err();
        assert!(matches!(err, WasmError::Trap { .. }), "{err:?}");
    }
    assert_eq!(breaker(&pool), BreakerState::Open);
    assert_eq!(extract(&pool, "hostile", PAGE, BUDGET).await.unwrap().engine, Engine::NativeFallback);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_survive_a_restart_and_corrupt_ones_are_rebuilt() {
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

    // Corrupt every artifact (same size, flipped bytes) and drop a stranger's file beside them.
    let files = riptide_wasm_files(&cache.path().join("wasmtime"));
    assert!(!files.is_empty());
    for file in &files {
        let mut bytes = std::fs::read(file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(file, bytes).unwrap();
    }
    std::fs::write(files[0].with_file_name("foreign"), b"not an artifact").unwrap();

    let pool = ExtractorPool::start(config(cache.path())).await.unwrap();
    let stats = pool.stats();
    assert_eq!(stats.extractors[0].artifact, ArtifactOutcome::Rebuilt, "{stats:?}");
    assert!(stats.artifacts_rejected >= 2, "{stats:?}");
    assert!(!files[0].with_file_name("foreign").exists());
    extract(&pool, "article", PAGE, BUDGET).await.unwrap();
    pool.close().await;
}

/// Artifact files under wasmtime's cache directory (not its `.stats` files).
fn riptide_wasm_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".stats") && !name.contains(".wip-") {
            out.push(entry);
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
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
fn the_config_section_rejects_unknown_keys() {
    let toml = "slots = 4\nhot_max_total = 2\npinned = { article = \"hot\" }\n";
    let config: WasmConfig = toml::from_str(toml).unwrap();
    assert_eq!((config.slots, config.pinned.get("article")), (4, Some(&Tier::Hot)));
    assert!(toml::from_str::<WasmConfig>("slotz = 4").is_err());
}
