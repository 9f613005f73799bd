//! The pool's one error type and its retry decision. It owns classification only; it must not
//! log or count (the caller handles an error once).

use std::path::PathBuf;
use std::time::Duration;

use crate::failure::{Failure, FailureReason};

/// A wasmtime error, boxed: `wasmtime::Error` is not a `std::error::Error` itself.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the pool could not produce a document (or could not start).
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The configuration does not hold together; every problem, one per line.
    #[error("invalid wasm configuration:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    /// A component file or the artifact directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// No embedded default component and no `default_component` configured.
    #[error("no `article` component: this binary was built without one; set wasm.default_component")]
    NoDefaultComponent,
    /// The epoch ticker or reaper thread could not be started.
    #[error("could not start a wasm pool thread: {0}")]
    Ticker(#[source] std::io::Error),
    /// The engine could not be built (settings this host does not support).
    #[error("wasm engine: {0}")]
    Engine(#[source] BoxError),
    /// The component failed to compile or load.
    #[error("component `{extractor}` failed to compile: {source}")]
    Compile {
        /// The extractor name.
        extractor: String,
        /// wasmtime's error.
        #[source]
        source: BoxError,
    },
    /// The component does not implement `wit/extractor.wit`, or reports a contract version this
    /// worker does not speak. The message names what differs.
    #[error("component `{extractor}` does not match wit/extractor.wit: {detail}")]
    Contract {
        /// The extractor name.
        extractor: String,
        /// What differs.
        detail: String,
    },
    /// The job names an extractor this worker has not loaded.
    #[error("unknown extractor `{0}`")]
    UnknownExtractor(String),
    /// No slot became free within the lease timeout.
    #[error("no wasm instance slot free within {0:?}")]
    PoolExhausted(Duration),
    /// The pool is closed (shutting down).
    #[error("the wasm pool is closed")]
    Closed,
    /// A fresh instance could not be created (pool limits, link errors).
    #[error("instantiating `{extractor}` failed: {source}")]
    Instantiate {
        /// The extractor name.
        extractor: String,
        /// wasmtime's error.
        #[source]
        source: BoxError,
    },
    /// The call ran past the job's deadline (epoch) or out of fuel, and was stopped.
    #[error("extraction stopped at its deadline of {0:?}")]
    Timeout(Duration),
    /// The call tried to grow linear memory past the per-call cap, and was stopped.
    #[error("extraction stopped: memory would grow to {desired} bytes, cap {cap}")]
    MemoryCap {
        /// The size asked for, bytes.
        desired: u64,
        /// The cap, bytes.
        cap: u64,
    },
    /// The guest trapped (a panic, an out-of-bounds access, ...): its instance is discarded.
    #[error("extractor `{extractor}` trapped: {detail}")]
    Trap {
        /// The extractor name.
        extractor: String,
        /// The trap, as wasmtime describes it.
        detail: String,
    },
    /// The extractor refused the page or failed on it (its own typed error).
    #[error("extractor: {0}")]
    Extractor(#[from] riptide_extractor::ExtractError),
    /// The extractor's circuit breaker is open and the page is too large for the native
    /// fallback; a later attempt may find the breaker closed.
    #[error(
        "extractor `{extractor}` is unavailable (breaker open) and the page ({size} bytes) exceeds the native fallback's {limit}"
    )]
    BreakerOpen {
        /// The extractor name.
        extractor: String,
        /// Page size, bytes.
        size: usize,
        /// `native_fallback_max_input_bytes`.
        limit: usize,
    },
    /// The blocking task running a call died.
    #[error("extraction task failed: {0}")]
    Crashed(String),
}

impl WasmError {
    /// The retry decision.
    ///
    /// - The input's fault (trap, deadline, memory cap, the extractor's own refusal): the same
    ///   page fails the same way again, so permanent `extraction`.
    /// - An unknown extractor is permanent `invalid_job`: the job names something this worker
    ///   fleet does not have, and no retry adds it (the producer must fix the job).
    /// - Pool exhaustion, instantiation failures, an open breaker, a closed pool: the worker's
    ///   state, not the page: retryable `extraction`.
    pub fn classify(&self) -> Failure {
        let message = self.to_string();
        match self {
            WasmError::UnknownExtractor(_) => Failure::permanent(FailureReason::InvalidJob, message),
            WasmError::Timeout(_) | WasmError::MemoryCap { .. } | WasmError::Trap { .. } => {
                Failure::permanent(FailureReason::Extraction, message)
            }
            // Even `internal` is permanent: the extractor is a pure function, the same page
            // hits the same bug again. It still counts towards the breaker.
            WasmError::Extractor(_) => Failure::permanent(FailureReason::Extraction, message),
            WasmError::Config(_)
            | WasmError::Contract { .. }
            | WasmError::Io { .. }
            | WasmError::NoDefaultComponent
            | WasmError::Engine(_)
            | WasmError::Ticker(_)
            | WasmError::Compile { .. }
            | WasmError::PoolExhausted(_)
            | WasmError::Closed
            | WasmError::Instantiate { .. }
            | WasmError::BreakerOpen { .. }
            | WasmError::Crashed(_) => Failure::retryable(FailureReason::Extraction, message),
        }
    }

    /// Whether this failure says something is wrong with the component or the pool rather than
    /// with the page: those count towards the circuit breaker.
    pub fn is_component_fault(&self) -> bool {
        match self {
            WasmError::Instantiate { .. } | WasmError::Trap { .. } | WasmError::Crashed(_) => true,
            WasmError::Extractor(e) => is_guest_bug(e),
            _ => false,
        }
    }

    pub(crate) fn boxed(e: wasmtime::Error) -> BoxError {
        e.into_boxed_dyn_error()
    }
}

/// The contract's `internal` variant: a bug in the extractor, not a property of the page.
fn is_guest_bug(e: &riptide_extractor::ExtractError) -> bool {
    matches!(e, riptide_extractor::ExtractError::Internal { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inputs_fault_is_permanent_the_pools_is_not() {
        assert!(!WasmError::Timeout(Duration::from_secs(1)).classify().is_retryable());
        assert!(!WasmError::MemoryCap { desired: 2, cap: 1 }.classify().is_retryable());
        assert!(!WasmError::Trap { extractor: "a".into(), detail: "x".into() }.classify().is_retryable());
        assert!(WasmError::PoolExhausted(Duration::from_secs(1)).classify().is_retryable());
        let unknown = WasmError::UnknownExtractor("nope".into()).classify();
        assert_eq!(unknown.reason, FailureReason::InvalidJob);
        assert!(!unknown.is_retryable());
    }
}
