//! The extractor's one error type, shared by the native core, the WASM guest (mapped 1:1 onto the
//! WIT `extract-error` variant) and the worker. It must not carry anything but plain data, so that it
//! crosses the component boundary unchanged.

/// Why an extraction produced no document.
///
/// Every variant is the caller's to classify: `InvalidInput`, `TooLarge` and `UnsupportedMode` are
/// permanent (retrying the same input gives the same answer); `Internal` is a bug in the extractor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExtractError {
    /// The input cannot be a web page (for example binary data, or a URL that is not absolute).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong, in one short sentence.
        reason: String,
    },
    /// The input is larger than `Options::max_input_bytes`.
    #[error("input of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the input, in bytes.
        size: u64,
        /// The limit in force, in bytes.
        limit: u64,
    },
    /// The requested mode is not one this extractor knows.
    #[error("unsupported mode {mode:?}")]
    UnsupportedMode {
        /// The mode as it was asked for.
        mode: String,
    },
    /// The extractor failed for a reason that is not the input's fault.
    #[error("internal extractor error: {reason}")]
    Internal {
        /// What failed.
        reason: String,
    },
}
