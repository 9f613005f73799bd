//! riptide: a queue-driven crawl and extraction worker. Crawl jobs arrive on RabbitMQ, pages
//! are fetched and extracted, documents land in Redis, results and failures go back out on
//! the broker.
//!
//! The map, in the order a job travels:
//! - [`job`]: the messages (crawl job, result) and their JSON / MessagePack codecs.
//! - [`config`]: the configuration tree (defaults, file, `RIPTIDE_*` environment).
//! - [`broker`]: RabbitMQ: connection, topology and migrations, publishing, consuming.
//! - [`worker`]: consume, run the pipeline, settle each delivery (ack last).
//! - [`pipeline`]: one job end to end: decode, cache check, fetch, extract, store.
//! - [`fetch`]: static HTTP fetching with limits and the SSRF guard.
//! - [`browser`]: headless rendering through a memory-limited pool of Chromium browsers.
//! - [`engines`]: the extraction engine (WASM pool or native core) and the lazily started browser pool.
//! - [`native`]: the native extractor core on the blocking pool, time-limited (one call for every user).
//! - [`wasm`]: the tiered pool of WASM extractor instances (leases, tiers, breaker, artifacts).
//! - [`store`]: Redis: documents, job state, schema version.
//! - [`failure`]: the closed set of failure reasons and the retry decision.
//! - [`retry`]: the backoff schedule and delay-queue tiers.
//! - [`producer`]: enqueueing jobs with publisher confirms.
//! - [`ops`]: the metric catalogue.
//! - [`sample_site`]: a small generated site served on loopback (quick start, tests, bench).
//! - [`cli`]: the `riptide` command line, and `riptide bench` (the end-to-end benchmark).

pub mod broker;
pub mod browser;
pub mod cli;
pub mod config;
pub mod engines;
pub mod failure;
pub mod fetch;
pub mod job;
pub mod native;
pub mod ops;
pub mod pipeline;
pub mod producer;
pub mod retry;
pub mod sample_site;
pub mod store;
pub mod wasm;
pub mod worker;
