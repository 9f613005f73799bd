//! The default `article` component, embedded in the binary at build time: `build.rs` builds
//! `extractor-component/guest` for `wasm32-wasip2` (profile `wasm`, its own target directory)
//! and this file includes the result, so a worker needs no file beside it. It must not be used
//! when `wasm.default_component` names a file.

/// The component's bytes; empty only when the build was told to skip it
/// (`RIPTIDE_GUEST_WASM=none`), in which case `wasm.default_component` must be set.
pub(crate) const ARTICLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/article.wasm"));

/// The embedded `article` component's bytes (empty if the build skipped it): for tools and
/// benchmarks that need the file itself.
pub fn default_component() -> &'static [u8] {
    ARTICLE
}
