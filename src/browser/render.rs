//! Rendering one page in a leased tab: navigate, wait (selector or settle rule), take the DOM.
//!
//! It owns the render request and result types and the in-page script. It must not lease,
//! recycle or kill (`pool.rs` does) nor extract anything: the HTML goes back to the pipeline.

use std::time::{Duration, Instant};

use serde::Deserialize;
use url::Url;

use super::config::BrowserConfig;
use super::error::{BrowserError, CrashKind};
use super::guard::RequestGuard;
use super::instance::{Instance, Tab};

/// One page to render.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    /// The page (http or https only).
    pub url: Url,
    /// Budget for the whole render: navigation, load, wait and DOM capture.
    pub timeout: Duration,
    /// CSS selector that must match before the DOM is taken; without it the settle rule
    /// (`settle_quiet_ms` of unchanged DOM after `load`) decides.
    pub wait_for: Option<String>,
}

/// A rendered page.
#[derive(Debug, Clone)]
pub struct RenderedPage {
    /// Where the tab ended up (after redirects and client-side navigation).
    pub final_url: Url,
    /// HTTP status of the main document, when the browser reports one.
    pub status: Option<u16>,
    /// The serialised DOM (doctype + `documentElement.outerHTML`).
    pub html: String,
    /// Time from the lease to the captured DOM.
    pub elapsed: Duration,
}

/// Extra time the capture script gets beyond its own deadlines, for the CDP round trip.
const SCRIPT_MARGIN: Duration = Duration::from_millis(500);
/// How long a failed CDP call waits for a crash or death signal that explains it.
const CAUSE_GRACE: Duration = Duration::from_millis(300);
/// Times the capture script is retried when a client-side navigation destroys its context.
const CONTEXT_RETRIES: usize = 3;

/// Waits for `load`, then for the selector (polling) or a quiet DOM, then returns the DOM.
/// Arguments: selector or null, quiet ms, settle max ms, selector wait ms.
const CAPTURE_SCRIPT: &str = r#"(async (sel, quietMs, maxMs, waitMs) => {
  if (document.readyState !== 'complete') {
    await new Promise(r => window.addEventListener('load', r, { once: true }));
  }
  let found = null;
  if (sel !== null) {
    const until = performance.now() + waitMs;
    found = false;
    for (;;) {
      try { if (document.querySelector(sel)) { found = true; break; } }
      catch (e) { return { bad_selector: true }; }
      if (performance.now() > until) break;
      await new Promise(r => setTimeout(r, 50));
    }
  } else {
    await new Promise(resolve => {
      const start = performance.now();
      let quiet;
      const done = () => { observer.disconnect(); clearTimeout(quiet); clearTimeout(cap); resolve(); };
      const observer = new MutationObserver(() => {
        clearTimeout(quiet);
        quiet = setTimeout(done, Math.max(0, Math.min(quietMs, maxMs - (performance.now() - start))));
      });
      const cap = setTimeout(done, maxMs);
      observer.observe(document, { childList: true, subtree: true, attributes: true, characterData: true });
      quiet = setTimeout(done, quietMs);
    });
  }
  const nav = performance.getEntriesByType('navigation')[0];
  const doctype = document.doctype ? new XMLSerializer().serializeToString(document.doctype) : '';
  return {
    found,
    url: location.href,
    status: nav && nav.responseStatus ? nav.responseStatus : null,
    html: doctype + (document.documentElement ? document.documentElement.outerHTML : ''),
  };
})"#;

/// What the capture script returns.
#[derive(Debug, Deserialize)]
struct Captured {
    #[serde(default)]
    bad_selector: bool,
    found: Option<bool>,
    url: Option<String>,
    status: Option<u16>,
    html: Option<String>,
}

/// Refuses what must never reach the browser: other schemes, and non-public literal hosts
/// (hostnames are checked by the interceptor after DNS).
pub(crate) fn precheck(request: &RenderRequest, guard: &RequestGuard) -> Result<(), BrowserError> {
    if !matches!(request.url.scheme(), "http" | "https") {
        return Err(BrowserError::UnsupportedScheme(request.url.scheme().to_string()));
    }
    match guard.check_address(&request.url) {
        Some(Err(blocked)) => Err(BrowserError::Blocked(blocked)),
        _ => Ok(()),
    }
}

/// Renders `request` in `tab`, racing the renderer's crash signal and the browser's death.
pub(crate) async fn render(
    instance: &Instance,
    tab: &Tab,
    request: &RenderRequest,
    config: &BrowserConfig,
    started: Instant,
) -> Result<RenderedPage, BrowserError> {
    let crashed = instance.watch(&tab.session);
    let result = tokio::select! {
        biased;
        () = crashed.cancelled() => Err(BrowserError::Crashed(CrashKind::Renderer)),
        () = instance.dead().cancelled() => Err(instance.death_error()),
        result = tokio::time::timeout(request.timeout, navigate_and_capture(instance, tab, request, config, started)) => {
            result.unwrap_or(Err(BrowserError::Timeout(request.timeout)))
        }
    };
    instance.forget(tab.session.target());
    match result {
        Err(error @ (BrowserError::Cdp { .. } | BrowserError::CdpTimeout { .. })) => {
            Err(cause_of_failure(instance, &crashed, error).await)
        }
        result => result,
    }
}

/// A CDP call can fail a moment before the crash event or the death of the browser is seen;
/// this waits briefly for either, so the job gets the real cause (crash, eviction).
async fn cause_of_failure(
    instance: &Instance,
    crashed: &tokio_util::sync::CancellationToken,
    error: BrowserError,
) -> BrowserError {
    let settled = tokio::time::timeout(CAUSE_GRACE, async {
        tokio::select! {
            () = crashed.cancelled() => {}
            () = instance.dead().cancelled() => {}
        }
    });
    let _ = settled.await;
    if instance.dead().is_cancelled() {
        instance.death_error()
    } else if crashed.is_cancelled() {
        BrowserError::Crashed(CrashKind::Renderer)
    } else {
        error
    }
}

async fn navigate_and_capture(
    instance: &Instance,
    tab: &Tab,
    request: &RenderRequest,
    config: &BrowserConfig,
    started: Instant,
) -> Result<RenderedPage, BrowserError> {
    let navigate = tab.session.call("Page.navigate", serde_json::json!({ "url": request.url.as_str() }));
    // Navigation is bounded by the job's timeout (the caller's), not by `cdp_timeout_ms`.
    let navigated = navigate.await.map_err(|source| BrowserError::Cdp { call: "Page.navigate", source })?;
    if let Some(error_text) = navigated.get("errorText").and_then(serde_json::Value::as_str) {
        if let Some(blocked) = instance.blocked_document(tab.session.target()) {
            return Err(BrowserError::Blocked(blocked));
        }
        return Err(BrowserError::Navigation { url: request.url.to_string(), error_text: error_text.to_owned() });
    }
    let captured = capture(tab, request, config, started).await?;
    finish(captured, request, started)
}

/// Runs the capture script, again if a client-side navigation destroyed its context.
async fn capture(
    tab: &Tab,
    request: &RenderRequest,
    config: &BrowserConfig,
    started: Instant,
) -> Result<Captured, BrowserError> {
    let mut attempt = 0;
    loop {
        let wait = request.timeout.saturating_sub(started.elapsed()).saturating_sub(SCRIPT_MARGIN);
        let expression = capture_expression(request.wait_for.as_deref(), config, wait);
        let params = serde_json::json!({ "expression": expression, "awaitPromise": true, "returnByValue": true });
        match tab.session.call("Runtime.evaluate", params).await.and_then(captured) {
            Ok(captured) => return Ok(captured),
            Err(_) if attempt < CONTEXT_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(source) => return Err(BrowserError::Cdp { call: "Runtime.evaluate", source }),
        }
    }
}

/// The capture script's value out of a `Runtime.evaluate` answer; a thrown exception (such as
/// the context destroyed by a client-side navigation) is an error, so the caller retries.
fn captured(mut answer: serde_json::Value) -> Result<Captured, chromiumoxide::error::CdpError> {
    if let Some(exception) = answer.get("exceptionDetails") {
        let text = exception.get("text").and_then(serde_json::Value::as_str).unwrap_or("exception");
        return Err(chromiumoxide::error::CdpError::ChromeMessage(format!("capture script: {text}")));
    }
    let value = answer.pointer_mut("/result/value").map(serde_json::Value::take).unwrap_or_default();
    Ok(serde_json::from_value(value)?)
}

/// The in-page expression that waits for `load`, then for `wait_for` (at most `wait`) or the
/// settle rule, and returns `{found, url, status, html}`. Public only for the benchmark, which
/// drives bare tabs with exactly the pool's wait so the strategies compare like for like.
#[doc(hidden)]
pub fn capture_expression(wait_for: Option<&str>, config: &BrowserConfig, wait: Duration) -> String {
    format!(
        "{CAPTURE_SCRIPT}({}, {}, {}, {})",
        serde_json::Value::from(wait_for),
        config.settle_quiet_ms,
        config.settle_max_ms,
        wait.as_millis()
    )
}

fn finish(captured: Captured, request: &RenderRequest, started: Instant) -> Result<RenderedPage, BrowserError> {
    let selector = || request.wait_for.clone().unwrap_or_default();
    if captured.bad_selector {
        return Err(BrowserError::BadSelector(selector()));
    }
    if captured.found == Some(false) {
        return Err(BrowserError::WaitForTimeout { selector: selector(), after: started.elapsed() });
    }
    let final_url = captured.url.as_deref().and_then(|url| Url::parse(url).ok()).unwrap_or_else(|| request.url.clone());
    Ok(RenderedPage {
        final_url,
        status: captured.status,
        html: captured.html.unwrap_or_default(),
        elapsed: started.elapsed(),
    })
}
