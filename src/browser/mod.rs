//! Headless rendering: a memory-limited pool of Chromium browsers driven over CDP.
//!
//! This file only declares and re-exports. The pool (`pool.rs`) leases tabs in fresh
//! incognito contexts, measures memory, recycles and replaces browsers; `instance.rs` is one
//! browser, `process.rs` its process tree, `render.rs` one page, `guard.rs` the request guard,
//! `detect.rs` the `auto` heuristic. It knows no queue and no storage, and does not extract.

mod config;
mod detect;
mod error;
mod events;
mod guard;
mod instance;
mod pool;
mod process;
mod render;
mod session;

pub use config::{BrowserConfig, BrowserConfigError};
pub use detect::looks_client_rendered;
pub use error::{BrowserError, CrashKind};
pub use events::{BrowserEvent, BrowserPoolStats, BrowserStats, RecycleReason};
pub use pool::BrowserPool;
#[doc(hidden)]
pub use render::capture_expression;
pub use render::{RenderRequest, RenderedPage};
