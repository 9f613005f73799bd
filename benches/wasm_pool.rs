//! Lease latencies of the WASM pool per tier, in one run, each median against a fresh
//! `Component::from_file` compile (the yardstick):
//!
//! - `lease_<tier>`: until the caller holds a callable instance (hot: a pop; warm: an
//!   instantiation from the `InstancePre`; cold: a verified artifact load, link and
//!   instantiation);
//! - `lease_release_<tier>`: lease then `release()` of the never-called instance. A pristine
//!   instance of a hot extractor goes back to its hot list, so `lease_release_hot` is a pop and a
//!   push, NOT the cost of serving a document: see the `used_*` cases for that;
//! - `used_<tier>_*`: a real small extraction: `lease`, `call` (until the document is back: what
//!   a job waits; it includes the used instance's teardown, which runs in the call's task before
//!   the document returns), and for warm `slot_back` (until its slot is free again, measured from
//!   the lease);
//! - `block_on_empty`: what `rt.block_on` of a ready future costs, included in every case above;
//! - `pool_compile_and_store`: the pool's compile and store of a component it has no artifact
//!   for.
//!
//! The production Prometheus recorder is installed, so metric updates cost what they cost in a
//! worker. Run: `cargo bench --bench wasm_pool` (the embedded `article` component is the
//! subject). It must not assert anything: figures vary with the machine's load.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use riptide::wasm::{ExtractorPool, Tier, WasmConfig};

/// A small article page: enough for the extractor to do real work, small enough that the call
/// does not hide the pool's own costs.
const PAGE: &str = "<html><head><title>Tides</title></head><body><article><h1>Tides</h1>\
    <p>Spring tides happen twice a month, when the sun and the moon line up and their pulls add \
    up. Neap tides fall between them, when the two pull at right angles.</p>\
    <p>Harbour masters publish tables a year ahead, because the motions are regular enough to \
    predict to the minute.</p></article></body></html>";
const BUDGET: Duration = Duration::from_secs(20);

thread_local! {
    /// Every timed iteration, by case in order of first appearance, for the summary (criterion
    /// keeps its own statistics of each benchmark's total).
    static SAMPLES: RefCell<Vec<(&'static str, Vec<Duration>)>> = const { RefCell::new(Vec::new()) };
}

fn record(case: &'static str, d: Duration) {
    SAMPLES.with(|s| {
        let mut s = s.borrow_mut();
        match s.iter_mut().find(|(c, _)| *c == case) {
            Some((_, v)) => v.push(d),
            None => s.push((case, vec![d])),
        }
    });
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

/// Polls (untimed unless the caller times it) until `ok` holds, for at most a second.
fn wait_until(mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(1);
    while !ok() && Instant::now() < until {
        std::thread::yield_now();
    }
}

/// Waits (untimed) until `article` has its full hot list again (the refill after a used lease).
fn wait_hot(pool: &ExtractorPool) {
    wait_until(|| {
        let stats = pool.stats();
        stats.extractors[0].hot_idle >= stats.extractors[0].hot_target
    });
}

fn lease_case(c: &mut Criterion, rt: &tokio::runtime::Runtime, pool: &ExtractorPool, name: &str, tier: &'static str) {
    let (lease_only, both) = match tier {
        "hot" => ("lease_hot", "lease_release_hot"),
        "warm" => ("lease_warm", "lease_release_warm"),
        _ => ("lease_cold_from_aot", "lease_release_cold_from_aot"),
    };
    c.bench_function(both, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                wait_hot(pool);
                let start = Instant::now();
                let leased = rt.block_on(async {
                    let lease = pool.lease(name).await.unwrap();
                    let leased = start.elapsed();
                    lease.release().await;
                    leased
                });
                let d = start.elapsed();
                record(lease_only, leased);
                record(both, d);
                total += d;
            }
            total
        })
    });
}

/// Lease, one real extraction (the instance is then discarded, never reused), and for an
/// extractor without a hot list, the wait until its slot is free again (teardown done).
fn used_case(c: &mut Criterion, rt: &tokio::runtime::Runtime, pool: &ExtractorPool, name: &str, tier: &'static str) {
    let [lease_c, call_c, slot_c] = match tier {
        "hot" => ["used_hot_lease", "used_hot_call", "used_hot_slot_back"],
        _ => ["used_warm_lease", "used_warm_call", "used_warm_slot_back"],
    };
    let busy = || pool.stats().slots_in_use;
    c.bench_function(call_c, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                wait_hot(pool);
                let before = busy();
                let start = Instant::now();
                let (leased, called) = rt.block_on(async {
                    let lease = pool.lease(name).await.unwrap();
                    let leased = start.elapsed();
                    let options = riptide_extractor::Options::default();
                    lease
                        .extract(PAGE.to_owned(), "https://example.org/tides".to_owned(), options, BUDGET)
                        .await
                        .unwrap();
                    (leased, start.elapsed())
                });
                record(lease_c, leased);
                record(call_c, called - leased);
                total += called - leased;
                if tier != "hot" {
                    // A hot extractor's refill takes a slot too, so only warm's count is clean.
                    wait_until(|| busy() <= before);
                    record(slot_c, start.elapsed());
                }
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
    riptide::ops::exporter::install().unwrap();
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

    c.bench_function("block_on_empty", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let one = Instant::now();
                rt.block_on(async {});
                record("block_on_empty", one.elapsed());
            }
            start.elapsed()
        })
    });
    lease_case(c, &rt, &pool, "article", "hot");
    lease_case(c, &rt, &pool, "warm", "warm");
    lease_case(c, &rt, &pool, "cold", "cold");
    used_case(c, &rt, &pool, "article", "hot");
    used_case(c, &rt, &pool, "warm", "warm");

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
        let compile =
            s.iter_mut().find(|(c, _)| *c == "component_from_file").map(|(_, v)| median(v)).unwrap_or_default();
        println!("\nsummary (median over every timed iteration; ratio = median / fresh Component::from_file compile)");
        println!("lease_release_hot returns the never-called instance to the hot list (a pop and a push);");
        println!("a document's real path is used_hot_lease + used_hot_call (the used instance is never reused).");
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
