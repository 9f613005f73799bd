//! The native extractor core run on tokio's blocking pool within a time limit: the one place
//! the worker, the WASM pool's breaker fallback and `riptide extract` call the core outside the
//! sandbox.
//!
//! It owns nothing but that call; it must not choose between the WASM pool and the native core (that is `pools.rs`)
//! or know about tiers and breakers (`wasm/`).

use std::time::Duration;

use riptide_extractor::{Document, Options};

/// Why a native extraction produced no document.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The core refused the page or failed on it.
    #[error("extractor: {0}")]
    Extractor(#[from] riptide_extractor::ExtractError),
    /// The call did not finish within its budget (the thread still runs it to the end).
    #[error("extraction did not finish within {0:?}")]
    Timeout(Duration),
    /// The blocking task died (a panic in the core, or the runtime shutting down).
    #[error("extraction task failed: {0}")]
    Crashed(String),
}

/// Runs the native core on the blocking pool and waits at most `budget`. On timeout the
/// thread still finishes the call (native code cannot be interrupted): the WASM engine, with
/// its epoch deadline, is the default for that reason.
pub async fn extract(html: String, url: String, options: Options, budget: Duration) -> Result<Document, NativeError> {
    let task = tokio::task::spawn_blocking(move || riptide_extractor::extract(&html, &url, &options));
    match tokio::time::timeout(budget, task).await {
        Ok(Ok(result)) => Ok(result?),
        Ok(Err(join_error)) => Err(NativeError::Crashed(join_error.to_string())),
        Err(_) => Err(NativeError::Timeout(budget)),
    }
}
