//! riptide: a queue-driven crawl and extraction worker. Crawl jobs arrive on RabbitMQ, pages
//! are fetched and extracted, documents land in Redis, results and failures go back out on
//! the broker.
//!
//! The map, in the order a job travels:
//! - [`job`]: the messages (crawl job, result) and their JSON / MessagePack codecs.
//! - [`config`]: the configuration tree (defaults, file, `RIPTIDE_*` environment).
//! - [`broker`]: RabbitMQ, the only module that speaks lapin: connection, topology and
//!   migrations, publishing, consuming, dead letters, events, queue depths.
//! - [`worker`]: consume, run the pipeline, settle each delivery (ack last).
//! - [`pipeline`]: one job end to end: decode, cache check, page, extract, store.
//! - [`lifecycle`]: the job's state record, the retry decision and the job-level events.
//! - [`politeness`]: robots.txt, per-origin pacing and host backoff, shared by the fleet in Redis.
//! - [`page`]: getting a page (static fetch, headless render or auto) within one deadline.
//! - [`fetch`]: static HTTP fetching with limits and the SSRF guard.
//! - [`browser`]: headless rendering through a memory-limited pool of Chromium browsers.
//! - [`pools`]: the WASM extractor pool (or the native core, by config) and the lazily
//!   started browser pool of one worker.
//! - [`wasm`]: the tiered pool of WASM extractor instances (leases, tiers, breaker, artifacts).
//! - [`native`]: the native extractor core on the blocking pool, time-limited.
//! - [`store`]: Redis: documents, job state, schema version.
//! - [`failure`]: the closed set of failure reasons and the retry classification.
//! - [`retry`]: the backoff schedule and delay-queue tiers.
//! - [`producer`]: enqueueing jobs with publisher confirms.
//! - [`migrate`]: bringing a namespace's topology and schema up to date, and removing it.
//! - [`ops`]: operations: the metric catalogue, the Prometheus endpoint, health, the poller.
//! - [`redact`]: secrets (URL credentials and query values, credential headers) out of logs.
//! - [`shutdown`]: SIGINT / SIGTERM as a cancellation token.
//! - [`sample_site`]: a small generated site served on loopback (quick start, tests, bench).
//! - [`cli`]: the `riptide` command line (parses, calls, prints), and `riptide bench`.
//!
//! Which way imports point: `cli` and `worker` at the top join everything; `pipeline`, `page`
//! and `lifecycle` use the stages below them (`politeness` among them); `pools`, `browser`, `wasm`, `fetch`, `store` and
//! `broker` never import the pipeline, the worker or each other's insides; `job`, `config`,
//! `failure`, `retry` and `native` are the leaves. `tests/architecture.rs` fails on any import
//! loop between files and on lapin outside `broker/`.

pub mod broker;
pub mod browser;
pub mod cli;
pub mod config;
pub mod failure;
pub mod fetch;
pub mod job;
pub mod lifecycle;
pub mod migrate;
pub mod native;
pub mod ops;
pub mod page;
pub mod pipeline;
pub mod politeness;
pub mod pools;
pub mod producer;
pub mod redact;
pub mod retry;
pub mod sample_site;
pub mod shutdown;
pub mod store;
pub mod wasm;
pub mod worker;
