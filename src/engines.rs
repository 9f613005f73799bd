//! The engines a worker runs pages through: the tiered WASM extractor pool (or the native
//! core, by config) and the headless browser pool, launched on the first job that needs it.
//!
//! It owns starting, using and closing them, and relays their events so `ops/` can publish
//! them. It knows no queue and no storage; the pipeline decides when each engine is used.

use std::sync::Arc;
use std::time::Duration;

use riptide_extractor::{Document, Mode, Options};
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, broadcast};
use url::Url;

use crate::browser::{BrowserConfig, BrowserError, BrowserEvent, BrowserPool, RenderRequest, RenderedPage};
use crate::config::Config;
use crate::failure::{Failure, FailureReason};
use crate::native::{self, NativeError};
use crate::wasm::{ExtractorPool, WasmError, WasmEvent};

/// Engine name reported when the native core ran by configuration.
pub const ENGINE_NATIVE: &str = "native";
/// Events buffered for the forwarder; a slower forwarder drops the oldest.
const EVENT_BUFFER: usize = 256;

/// Which extractor runs jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtractEngine {
    /// The sandboxed WASM component from the tiered pool.
    #[default]
    Wasm,
    /// The native core in process (no sandbox; for comparison and debugging).
    Native,
}

/// A pool event of either engine, as published on the events exchange.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EngineEvent {
    /// From the WASM pool.
    Wasm(WasmEvent),
    /// From the browser pool.
    Browser(BrowserEvent),
}

impl crate::ops::events::PoolEvent for EngineEvent {
    fn routing_key(&self) -> &'static str {
        match self {
            EngineEvent::Wasm(e) => e.routing_key(),
            EngineEvent::Browser(e) => e.routing_key(),
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

/// The engines of one worker. Cheap to clone.
#[derive(Clone)]
pub struct Engines {
    wasm: Option<ExtractorPool>,
    browser: Arc<OnceCell<BrowserPool>>,
    browser_config: Option<BrowserConfig>,
    allow_private: bool,
    events: broadcast::Sender<EngineEvent>,
}

impl std::fmt::Debug for Engines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engines")
            .field("wasm", &self.wasm.is_some())
            .field("browser_started", &self.browser.initialized())
            .finish_non_exhaustive()
    }
}

/// An engine could not start.
#[derive(Debug, thiserror::Error)]
#[error("starting the WASM extractor pool: {0}")]
pub struct EnginesError(#[from] WasmError);

impl Engines {
    /// Starts the extractor engine of `config` (the WASM pool compiles or loads its component
    /// here, off the request path). The browser pool starts on first use.
    pub async fn start(config: &Config) -> Result<Self, EnginesError> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let wasm = match config.worker.engine {
            ExtractEngine::Wasm => {
                let pool = ExtractorPool::start(config.wasm.clone()).await?;
                relay(pool.subscribe(), events.clone(), EngineEvent::Wasm);
                for extractor in pool.extractors() {
                    // Every breaker starts closed; the series exists before its first change.
                    metrics::gauge!(crate::ops::metrics::WASM_BREAKER_STATE, "extractor" => extractor)
                        .set(crate::wasm::BreakerState::Closed.gauge());
                }
                Some(pool)
            }
            ExtractEngine::Native => None,
        };
        Ok(Engines {
            wasm,
            browser: Arc::new(OnceCell::new()),
            browser_config: config.worker.headless.then(|| config.browser.clone()),
            allow_private: config.allow_private_networks,
            events,
        })
    }

    /// Pool events of both engines, for the events exchange.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
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
    pub async fn render(
        &self,
        url: &Url,
        timeout: Duration,
        wait_for: Option<String>,
        max_html_bytes: u64,
    ) -> Result<RenderedPage, RenderStageError> {
        let Some(config) = &self.browser_config else { return Err(RenderStageError::Disabled) };
        let pool = self
            .browser
            .get_or_try_init(|| async {
                let pool = BrowserPool::start(config.clone(), self.allow_private).await?;
                relay(pool.subscribe(), self.events.clone(), EngineEvent::Browser);
                for reason in crate::browser::RecycleReason::ALL {
                    metrics::counter!(crate::ops::metrics::BROWSER_RECYCLES_TOTAL, "reason" => reason.as_str())
                        .absolute(0);
                }
                Ok::<_, BrowserError>(pool)
            })
            .await?;
        Ok(pool.render(&RenderRequest { url: url.clone(), timeout, wait_for, max_html_bytes }).await?)
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

/// Moves one pool's events into the engines' channel until the pool closes its sender.
fn relay<E: Clone + Send + 'static>(
    mut from: broadcast::Receiver<E>,
    to: broadcast::Sender<EngineEvent>,
    wrap: fn(E) -> EngineEvent,
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
