//! The extraction stage: runs the extractor core on a fetched page, off the async runtime.
//!
//! Extraction is CPU work, so it runs on the blocking pool and is awaited within the job's
//! budget. This is the native path; the WASM instance pool replaces it as the default engine
//! and keeps it as the bounded fallback. It knows no queue, no storage and no network.

use std::time::Duration;

use riptide_extractor::{Document, ExtractError, Mode, Options};

use crate::failure::{Failure, FailureReason};

/// The engine name reported in results for this path.
pub const ENGINE_NATIVE: &str = "native";

/// Why extraction produced no document.
#[derive(Debug, thiserror::Error)]
pub enum ExtractStageError {
    /// The extractor refused the page or failed on it.
    #[error("extractor: {0}")]
    Extractor(#[from] ExtractError),
    /// Extraction took longer than the job's remaining budget.
    #[error("extraction did not finish within {0:?}")]
    Timeout(Duration),
    /// The extraction task died (a panic in the extractor core).
    #[error("extraction task failed: {0}")]
    Crashed(String),
}

impl ExtractStageError {
    /// The same page fails the same way again: permanent.
    pub fn classify(&self) -> Failure {
        Failure::permanent(FailureReason::Extraction, self.to_string())
    }
}

/// Extracts `html` (fetched from `url`) in `mode`, giving up after `budget`.
///
/// On timeout the blocking thread still runs the call to its end: native code cannot be
/// interrupted, which is why the WASM engine (epoch deadlines) is the default.
pub async fn extract_native(
    html: String,
    url: String,
    mode: Mode,
    budget: Duration,
) -> Result<Document, ExtractStageError> {
    let task = tokio::task::spawn_blocking(move || {
        let options = Options { mode, ..Options::default() };
        riptide_extractor::extract(&html, &url, &options)
    });
    match tokio::time::timeout(budget, task).await {
        Ok(Ok(result)) => Ok(result?),
        Ok(Err(join_error)) => Err(ExtractStageError::Crashed(join_error.to_string())),
        Err(_) => Err(ExtractStageError::Timeout(budget)),
    }
}
