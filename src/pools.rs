//! The pools a worker runs pages through: the tiered WASM extractor pool (or the native
//! core, by config) and the headless browser pool, launched on the first job that needs it.
//!
//! It owns starting, using and closing them, and relays their events into one channel that
//! the worker forwards to the events exchange (`broker/events.rs`). It knows no queue and no
//! storage; the page stage and the pipeline decide when each pool is used.

use std::sync::Arc;
use std::time::Duration;

use riptide_extractor::{Document, Mode, Options};
use serde::Serialize;
use tokio::sync::{OnceCell, broadcast};

use crate::browser::{BrowserConfig, BrowserError, BrowserEvent, BrowserPool, RenderRequest, RenderedPage};
use crate::config::{Config, ExtractBackend};
use crate::failure::{Failure, FailureReason};
use crate::native::{self, NativeError};
use crate::wasm::{ExtractorPool, WasmError, WasmEvent};

/// Engine name reported when the native core ran by configuration.
pub const ENGINE_NATIVE: &str = "native";
/// Events buffered for the forwarder; a slower forwarder drops the oldest.
const EVENT_BUFFER: usize = 256;

/// A pool event of either engine, as published on the events exchange.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum PoolEvent {
    /// From the WASM pool.
    Wasm(WasmEvent),
    /// From the browser pool.
    Browser(BrowserEvent),
}

impl PoolEvent {
    /// The topic routing key on the events exchange, e.g. `browser.crashed`.
    pub fn routing_key(&self) -> &'static str {
        match self {
            PoolEvent::Wasm(e) => e.routing_key(),
            PoolEvent::Browser(e) => e.routing_key(),
        }
    }
}

/// Why extraction produced no document.
#[derive(Debug, thiserror::Error)]
pub enum ExtractStageError {
    /// The native core failed, timed out or died.
    #[error(transparent)]
    Native(#[from] NativeError),
    /// The WASM pool failed (its error says whether retrying can help).
    #[error(transparent)]
    Wasm(#[from] WasmError),
}

impl ExtractStageError {
    /// The WASM pool classifies its own errors; the native path fails the same way again.
    pub fn classify(&self) -> Failure {
        match self {
            ExtractStageError::Wasm(e) => e.classify(),
            other => Failure::permanent(FailureReason::Extraction, other.to_string()),
        }
    }
}

/// Why a page could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderStageError {
    /// Rendering is switched off in this worker (`worker.headless = false`).
    #[error("headless rendering is disabled in this worker (worker.headless)")]
    Disabled,
    /// The browser pool failed.
    #[error(transparent)]
    Browser(#[from] BrowserError),
}

impl RenderStageError {
    /// The browser pool classifies its errors; a disabled renderer is permanent here.
    pub fn classify(&self) -> Failure {
        match self {
            RenderStageError::Disabled => Failure::permanent(FailureReason::Unsupported, self.to_string()),
            RenderStageError::Browser(e) => e.classify(),
        }
    }
}

/// A document and what produced it.
#[derive(Debug)]
pub struct Extracted {
    /// The document.
    pub document: Document,
    /// `wasm`, `native-fallback` or `native`.
    pub engine: &'static str,
    /// The WASM pool tier that served it, when the pool did.
    pub tier: Option<&'static str>,
}

/// The pools of one worker. Cheap to clone.
#[derive(Clone)]
pub struct Pools {
    wasm: Option<ExtractorPool>,
    browser: Arc<OnceCell<BrowserPool>>,
    browser_config: Option<BrowserConfig>,
    allow_private: bool,
    events: broadcast::Sender<PoolEvent>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("wasm", &self.wasm.is_some())
            .field("browser_started", &self.browser.initialized())
            .finish_non_exhaustive()
    }
}

/// An engine could not start.
#[derive(Debug, thiserror::Error)]
#[error("starting the WASM extractor pool: {0}")]
pub struct PoolsError(#[from] WasmError);

impl Pools {
    /// Starts the extractor engine of `config` (the WASM pool compiles or loads its component
    /// here, off the request path). The browser pool starts on first use.
    pub async fn start(config: &Config) -> Result<Self, PoolsError> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let wasm = match config.worker.engine {
            ExtractBackend::Wasm => {
                let pool = ExtractorPool::start(config.wasm.clone()).await?;
                relay(pool.subscribe(), events.clone(), PoolEvent::Wasm);
                for extractor in pool.extractors() {
                    // Every breaker starts closed; the series exists before its first change.
                    metrics::gauge!(crate::ops::metrics::WASM_BREAKER_STATE, "extractor" => extractor)
                        .set(crate::wasm::BreakerState::Closed.gauge());
                }
                Some(pool)
            }
            ExtractBackend::Native => None,
        };
        Ok(Pools {
            wasm,
            browser: Arc::new(OnceCell::new()),
            browser_config: config.worker.headless.then(|| config.browser.clone()),
            allow_private: config.allow_private_networks,
            events,
        })
    }

    /// Pool events of both pools, for the events exchange.
    pub fn subscribe(&self) -> broadcast::Receiver<PoolEvent> {
        self.events.subscribe()
    }

    /// The WASM pool, when this worker runs one (for stats).
    pub fn wasm(&self) -> Option<&ExtractorPool> {
        self.wasm.as_ref()
    }

    /// The browser pool, when it has been started (for stats).
    pub fn browser(&self) -> Option<&BrowserPool> {
        self.browser.get()
    }

    /// Extracts `html` (from `url`) with the named extractor within `budget`.
    pub async fn extract(
        &self,
        extractor: &str,
        html: String,
        url: String,
        mode: Mode,
        budget: Duration,
    ) -> Result<Extracted, ExtractStageError> {
        let options = Options { mode, ..Options::default() };
        match &self.wasm {
            Some(pool) => {
                let extraction = pool.extract(extractor, html, url, options, budget).await?;
                Ok(Extracted {
                    document: extraction.document,
                    engine: extraction.engine.as_str(),
                    tier: Some(extraction.tier.as_str()),
                })
            }
            None => Ok(Extracted {
                document: native::extract(html, url, options, budget).await?,
                engine: ENGINE_NATIVE,
                tier: None,
            }),
        }
    }

    /// Renders `url` in a fresh incognito context of the browser pool (launching the pool
    /// first if this is the first render of the worker).
    pub async fn render(&self, request: RenderRequest) -> Result<RenderedPage, RenderStageError> {
        let Some(config) = &self.browser_config else { return Err(RenderStageError::Disabled) };
        let pool = self
            .browser
            .get_or_try_init(|| async {
                let pool = BrowserPool::start(config.clone(), self.allow_private).await?;
                relay(pool.subscribe(), self.events.clone(), PoolEvent::Browser);
                for reason in crate::browser::RecycleReason::ALL {
                    metrics::counter!(crate::ops::metrics::BROWSER_RECYCLES_TOTAL, "reason" => reason.as_str())
                        .absolute(0);
                }
                Ok::<_, BrowserError>(pool)
            })
            .await?;
        Ok(pool.render(&request).await?)
    }

    /// Closes both pools: browsers are killed with their process trees, WASM threads stop.
    pub async fn close(&self) {
        if let Some(pool) = self.browser.get()
            && let Err(error) = pool.close().await
        {
            tracing::warn!(%error, "Closing the browser pool failed.");
        }
        if let Some(pool) = &self.wasm {
            pool.close().await;
        }
    }
}

/// Moves one pool's events into the pools' channel until the pool closes its sender.
fn relay<E: Clone + Send + 'static>(
    mut from: broadcast::Receiver<E>,
    to: broadcast::Sender<PoolEvent>,
    wrap: fn(E) -> PoolEvent,
) {
    tokio::spawn(async move {
        loop {
            match from.recv().await {
                Ok(event) => {
                    // No subscriber (no broker session right now) just drops the event.
                    let _ = to.send(wrap(event));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}
