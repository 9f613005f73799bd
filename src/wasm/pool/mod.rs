//! The tiered pool, one concept per file. This file only declares and re-exports.
//!
//! - `handle`: [`ExtractorPool`] (the cheap `Clone` handle), the state it shares with its
//!   background task (`Inner`, one `Entry` per extractor), `close`;
//! - `loading`: where components come from, compiling or loading their artifacts, validating
//!   and linking them, `start` and [`precompile`];
//! - `leasing`: slots, hot pops, warm instantiations, cold loads, eviction for a slot;
//! - `routing`: one extraction through the extractor's circuit breaker, the bounded native
//!   fallback, [`Extraction`] and [`ExtractedBy`];
//! - `rebalance`: the background task, demand, tier moves and hot-list refills;
//! - `stats`: [`WasmPoolStats`] and the gauges published from it.

mod handle;
mod leasing;
mod loading;
mod rebalance;
mod routing;
mod stats;

pub use handle::ExtractorPool;
pub use loading::precompile;
pub use routing::{ExtractedBy, Extraction};
pub use stats::{ExtractorStats, WasmPoolStats};
