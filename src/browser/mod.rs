//! Headless rendering: a memory-limited pool of Chromium browsers driven over CDP.
//!
//! This file only declares and re-exports. The pool (`pool.rs`) leases tabs in fresh
//! incognito contexts, recycles and replaces browsers; `memory.rs` measures and judges their
//! memory; `instance.rs` is one browser, `session.rs` a raw DevTools session to one tab,
//! `process.rs` its process tree, `sandbox.rs` its user and sandbox, `render.rs` one page, `guard.rs` the request rules, `proxy.rs` the egress proxy every
//! browser connection goes through,
//! `events.rs` what the pool tells, `lock.rs` the shared mutex rule, `detect.rs` the `auto`
//! heuristic. Imports point down: pool → memory/instance/render → session/process/guard →
//! lock/config/error/events. It knows no queue and no storage, and does not extract.

mod config;
mod detect;
mod error;
mod events;
mod guard;
mod instance;
mod lock;
mod memory;
mod pool;
mod process;
mod proxy;
mod render;
mod sandbox;
mod session;

pub use config::{BrowserConfig, BrowserConfigError, SandboxPolicy};
pub use detect::looks_client_rendered;
pub use error::{BrowserError, CrashKind};
pub use events::{BrowserEvent, BrowserPoolStats, BrowserStats, RecycleReason, initialize_metrics};
pub use pool::BrowserPool;
pub use proxy::{BrowserResolver, SystemResolver};
#[doc(hidden)]
pub use render::capture_expression;
pub use render::{RenderRequest, RenderedPage};
pub use sandbox::isolation_problem;
