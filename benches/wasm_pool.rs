//! Lease + release latency of the WASM pool per tier (hot: a pop; warm: an instantiation; cold:
//! a verified artifact load, link and instantiation), the pool's compile-and-store of a new
//! component, and a fresh `Component::from_file` compile as the yardstick; all in one run,
//! with a summary of medians and each one's ratio to the fresh compile.
//!
//! Run: `cargo bench --bench wasm_pool` (the embedded `article` component is the subject).
//! It must not assert anything: figures vary with the machine's load.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use riptide::wasm::{ExtractorPool, Tier, WasmConfig};

thread_local! {
    /// Every timed iteration, by case, for the summary (criterion keeps its own statistics).
    static SAMPLES: RefCell<BTreeMap<&'static str, Vec<Duration>>> = const { RefCell::new(BTreeMap::new()) };
}

fn record(case: &'static str, d: Duration) {
    SAMPLES.with(|s| s.borrow_mut().entry(case).or_default().push(d));
}

fn config(cache: &Path, components: &Path) -> WasmConfig {
    let mut pinned = BTreeMap::new();
    pinned.insert("article".to_owned(), Tier::Hot);
    pinned.insert("warm".to_owned(), Tier::Warm);
    pinned.insert("cold".to_owned(), Tier::Cold);
    WasmConfig {
        aot_cache_dir: Some(cache.to_path_buf()),
        components_dir: Some(components.to_path_buf()),
        slots: 16,
        hot_max_per_extractor: 8,
        hot_max_total: 8,
        rebalance_interval_ms: 3_600_000,
        pinned,
        ..WasmConfig::default()
    }
}

/// Waits (untimed) until `article` has an idle hot instance again.
fn wait_hot(pool: &ExtractorPool) {
    for _ in 0..10_000 {
        if pool.stats().extractors[0].hot_idle > 0 {
            return;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

fn lease_case(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    pool: &ExtractorPool,
    name: &'static str,
    case: &'static str,
) {
    c.bench_function(case, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if name == "article" {
                    wait_hot(pool);
                }
                let start = Instant::now();
                rt.block_on(async {
                    let lease = pool.lease(name).await.unwrap();
                    lease.release().await;
                });
                let d = start.elapsed();
                record(case, d);
                total += d;
            }
            total
        })
    });
}

fn slow_case(c: &mut Criterion, case: &'static str, mut run: impl FnMut()) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10).warm_up_time(Duration::from_millis(1)).measurement_time(Duration::from_secs(5));
    group.bench_function(case, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                run();
                let d = start.elapsed();
                record(case, d);
                total += d;
            }
            total
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let work = tempfile::tempdir().unwrap();
    let components = work.path().join("components");
    std::fs::create_dir_all(&components).unwrap();
    let wasm = riptide::wasm::default_component();
    assert!(!wasm.is_empty(), "this build has no embedded component");
    for name in ["warm", "cold"] {
        std::fs::write(components.join(format!("{name}.wasm")), wasm).unwrap();
    }
    let article = components.join("article-file.wasm.src");
    std::fs::write(&article, wasm).unwrap();
    let pool = rt.block_on(ExtractorPool::start(config(&work.path().join("cache"), &components))).unwrap();

    lease_case(c, &rt, &pool, "article", "lease_release_hot");
    lease_case(c, &rt, &pool, "warm", "lease_release_warm");
    lease_case(c, &rt, &pool, "cold", "lease_release_cold_from_aot");

    // The yardstick: a fresh compile with the same engine settings and no artifact cache.
    let mut plain = wasmtime::Config::new();
    plain.epoch_interruption(true);
    let engine = wasmtime::Engine::new(&plain).unwrap();
    slow_case(c, "component_from_file", || {
        wasmtime::component::Component::from_file(&engine, &article).unwrap();
    });
    // The pool's compile-and-store of a component it has no artifact for.
    let mut n = 0;
    slow_case(c, "pool_compile_and_store", || {
        n += 1;
        let fresh = WasmConfig {
            aot_cache_dir: Some(work.path().join(format!("fresh-{n}"))),
            components_dir: None,
            ..config(work.path(), &components)
        };
        rt.block_on(riptide::wasm::precompile(&fresh)).unwrap();
    });
    rt.block_on(pool.close());
    summary();
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn summary() {
    SAMPLES.with(|s| {
        let mut s = s.borrow_mut();
        let compile = median(s.get_mut("component_from_file").map(Vec::as_mut_slice).unwrap_or_default());
        println!("\nsummary (median over every timed iteration; ratio = median / fresh Component::from_file compile)");
        println!("{:<30} {:>8} {:>14} {:>12}", "case", "samples", "median", "ratio");
        for (case, v) in s.iter_mut() {
            let m = median(v);
            let ratio = m.as_secs_f64() / compile.as_secs_f64().max(f64::MIN_POSITIVE);
            println!("{case:<30} {:>8} {:>14} {:>12.2e}", v.len(), format!("{m:?}"), ratio);
        }
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
