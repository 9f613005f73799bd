//! The bench crate's library: a wasmtime host for the extractor component ([`WasmExtractor`]), the
//! benchmark corpora (`corpus`) and a CPU clock, shared by the `bench-extract` binary and the native-vs-WASM identity test
//! (`tests/identity.rs`). Not used by the worker.

pub mod corpus;
mod wasm;

pub use wasm::{COMPONENT_PATH, WasmExtractor};

/// CPU time of the calling thread, in seconds (`/proc/thread-self/schedstat`: the clock behind
/// `getrusage(RUSAGE_THREAD)`, in nanoseconds and readable without `unsafe`).
///
/// # Errors
/// When `/proc` is not available (not Linux).
pub fn thread_cpu_secs() -> anyhow::Result<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let ns: f64 = s.split_whitespace().next().ok_or_else(|| anyhow::anyhow!("empty schedstat"))?.parse()?;
    Ok(ns / 1e9)
}
