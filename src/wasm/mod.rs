//! The tiered WASM extractor pool: one wasmtime engine, components compiled once and
//! kept as verified artifacts, named extractors in hot / warm / cold tiers by demand within a
//! memory budget, leases with deadlines and memory caps, a circuit breaker with a bounded native
//! fallback. It knows no queue, no storage and no network; it reports through `ops` metrics and
//! its event channel. This file only declares and re-exports.
//!
//! - `config`: [`WasmConfig`]; `error`: [`WasmError`] and its retry decision;
//! - `engine`: the engine, store data, epoch ticker; `limits`: the per-call memory limiter;
//! - `artifact`: AOT artifacts on disk, their manifest and checksums; `aot`: the one `unsafe`
//!   call, loading an artifact proven to be riptide's own; `embedded`: the default component;
//! - `contract`: the WIT bindings, validation, conversions;
//! - `tier`: tiers and the placement plan; `breaker`: the circuit breaker;
//! - `lease`: one leased instance; `events`: [`WasmEvent`];
//! - `pool/`: [`ExtractorPool`], one file per concept (loading, leasing, routing, rebalancing, stats).

mod aot;
mod artifact;
mod breaker;
mod config;
mod contract;
mod digest;
mod embedded;
mod engine;
mod error;
mod events;
mod lease;
mod limits;
mod pool;
mod tier;

pub use artifact::ArtifactOutcome;
pub use breaker::BreakerState;
pub use config::{DEFAULT_EXTRACTOR, WasmConfig};
pub use embedded::default_component;
pub use error::WasmError;
pub use events::WasmEvent;
pub use lease::Lease;
pub use limits::MemoryCapExceeded;
pub use pool::{ExtractedBy, Extraction, ExtractorPool, ExtractorStats, WasmPoolStats, precompile};
pub use tier::Tier;
