//! Rendering one page in a leased tab: navigate, wait (selector or settle rule), take the DOM.
//!
//! It owns the render request and result types and the in-page script. It must not lease,
//! recycle or kill (`pool.rs` does) nor extract anything: the HTML goes back to the pipeline.
//!
//! Nothing the page's own scripts can touch decides the result: the capture script runs in an
//! isolated world (its own `document`, `XMLSerializer`, `performance`, prototypes: a page that
//! overrides them changes only its own world), the status and `Retry-After` come from the
//! network events of the main document (`session.rs`), and the final URL from the navigation
//! history.

use std::time::{Duration, Instant};

use serde::Deserialize;
use url::Url;

use super::config::BrowserConfig;
use super::error::{BrowserError, CrashKind};
use super::guard::RequestGuard;
use super::instance::{Instance, Tab};
use super::proxy::EgressProxy;
use super::session::MainDocument;

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
    /// Largest serialised DOM taken, in UTF-8 bytes (the worker passes `fetch.max_body_bytes`).
    /// Measured in the page: a larger DOM fails with [`BrowserError::TooLarge`] and never
    /// crosses CDP into this process.
    pub max_html_bytes: u64,
    /// The User-Agent the tab sends (`fetch.user_agent`); `None` keeps Chromium's own.
    pub user_agent: Option<String>,
    /// Extra request headers of the job, sent with the tab's requests. Credential headers
    /// (`Authorization`, `Cookie`, ...) are left out: the tab's subresources go to other
    /// hosts too, which must not see them.
    pub headers: Vec<(String, String)>,
}

/// A rendered page.
#[derive(Debug, Clone)]
pub struct RenderedPage {
    /// Where the tab ended up (after redirects and client-side navigation).
    pub final_url: Url,
    /// HTTP status of the main document's response (after redirects), from the network
    /// events; `None` only when no response was seen (e.g. a page served from a
    /// service worker or a `data:` URL).
    pub status: Option<u16>,
    /// The main document's `Retry-After` header, verbatim, when it sent one.
    pub retry_after: Option<String>,
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

/// Name of the isolated world the capture script runs in.
const WORLD: &str = "riptide-capture";

/// Waits for `load`, then for the selector (polling) or a quiet DOM, then returns the DOM,
/// or only its size when that is over the cap. Arguments: selector or null, quiet ms, settle
/// max ms, selector wait ms, largest DOM in UTF-8 bytes or null.
const CAPTURE_SCRIPT: &str = r#"(async (sel, quietMs, maxMs, waitMs, maxBytes) => {
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
  const doctype = document.doctype ? new XMLSerializer().serializeToString(document.doctype) : '';
  const html = doctype + (document.documentElement ? document.documentElement.outerHTML : '');
  if (maxBytes !== null) {
    // UTF-16 length <= UTF-8 bytes <= 3 x UTF-16 length: count exactly only in between.
    let bytes = html.length;
    if (bytes <= maxBytes && bytes * 3 > maxBytes) bytes = new Blob([html]).size;
    if (bytes > maxBytes) return { found, too_large: bytes };
  }
  return { found, html };
})"#;

/// What the capture script returns.
#[derive(Debug, Deserialize)]
struct Captured {
    #[serde(default)]
    bad_selector: bool,
    found: Option<bool>,
    /// Set instead of `html` when the DOM is over the cap: its size, in bytes (at least).
    too_large: Option<u64>,
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
    proxy: &EgressProxy,
    started: Instant,
) -> Result<RenderedPage, BrowserError> {
    let crashed = instance.watch(&tab.session);
    let result = tokio::select! {
        biased;
        () = crashed.cancelled() => Err(BrowserError::Crashed(CrashKind::Renderer)),
        () = instance.dead().cancelled() => Err(instance.death_error()),
        result = tokio::time::timeout(request.timeout, navigate_and_capture(tab, request, config, proxy, started)) => {
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
    tab: &Tab,
    request: &RenderRequest,
    config: &BrowserConfig,
    proxy: &EgressProxy,
    started: Instant,
) -> Result<RenderedPage, BrowserError> {
    if let Some(user_agent) = &request.user_agent {
        let params = serde_json::json!({ "userAgent": user_agent });
        tab.session
            .call("Network.setUserAgentOverride", params)
            .await
            .map_err(|source| BrowserError::Cdp { call: "Network.setUserAgentOverride", source })?;
    }
    let headers: serde_json::Map<String, serde_json::Value> = request
        .headers
        .iter()
        .filter(|(name, _)| !crate::redact::is_credential_header(name))
        .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
        .collect();
    if !headers.is_empty() {
        tab.session
            .call("Network.setExtraHTTPHeaders", serde_json::json!({ "headers": headers }))
            .await
            .map_err(|source| BrowserError::Cdp { call: "Network.setExtraHTTPHeaders", source })?;
    }
    let navigate = tab.session.call("Page.navigate", serde_json::json!({ "url": request.url.as_str() }));
    // Navigation is bounded by the job's timeout (the caller's), not by `cdp_timeout_ms`.
    let navigated = navigate.await.map_err(|source| BrowserError::Cdp { call: "Page.navigate", source })?;
    if let Some(error_text) = navigated.get("errorText").and_then(serde_json::Value::as_str) {
        // The document (or a redirect of it) the proxy refused: the last URL the main frame
        // requested names the host.
        let main = tab.session.main_document();
        let last = main.url.as_deref().and_then(|url| Url::parse(url).ok()).unwrap_or_else(|| request.url.clone());
        if let (Some(host), Some(port)) = (last.host_str(), last.port_or_known_default())
            && let Some(blocked) = proxy.blocked(host, port)
        {
            return Err(BrowserError::Blocked(blocked));
        }
        // An error status with an empty body: Chromium shows its own error page, but the
        // server did answer, and its status is what the pipeline decides on.
        if let Some(status) = main.status {
            let final_url = main.url.and_then(|url| Url::parse(&url).ok()).unwrap_or_else(|| request.url.clone());
            let elapsed = started.elapsed();
            return Ok(RenderedPage {
                final_url,
                status: Some(status),
                retry_after: main.retry_after,
                html: String::new(),
                elapsed,
            });
        }
        return Err(BrowserError::Navigation { url: request.url.to_string(), error_text: error_text.to_owned() });
    }
    let captured = capture(tab, request, config, started).await?;
    let final_url = final_url(tab).await;
    finish(captured, final_url, tab.session.main_document(), request, started)
}

/// The URL of the tab's current history entry (after redirects and client-side navigation),
/// from the browser, not from page script.
async fn final_url(tab: &Tab) -> Option<Url> {
    let history = tab.session.call("Page.getNavigationHistory", serde_json::json!({})).await.ok()?;
    let index = usize::try_from(history.get("currentIndex")?.as_u64()?).ok()?;
    let url = history.get("entries")?.get(index)?.get("url")?.as_str()?;
    Url::parse(url).ok()
}

/// Runs the capture script in a fresh isolated world of the main frame, again if a
/// client-side navigation destroyed it.
async fn capture(
    tab: &Tab,
    request: &RenderRequest,
    config: &BrowserConfig,
    started: Instant,
) -> Result<Captured, BrowserError> {
    let mut attempt = 0;
    loop {
        let wait = request.timeout.saturating_sub(started.elapsed()).saturating_sub(SCRIPT_MARGIN);
        let expression = capture_script(request.wait_for.as_deref(), config, wait, Some(request.max_html_bytes));
        match evaluate_isolated(tab, expression).await {
            Ok(captured) => return Ok(captured),
            Err(_) if attempt < CONTEXT_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(source) => return Err(BrowserError::Cdp { call: "Runtime.evaluate", source }),
        }
    }
}

/// Evaluates `expression` in a new isolated world of the tab's main frame.
async fn evaluate_isolated(tab: &Tab, expression: String) -> Result<Captured, chromiumoxide::error::CdpError> {
    let frame = tab.session.target().as_ref();
    let world = serde_json::json!({ "frameId": frame, "worldName": WORLD, "grantUniveralAccess": false });
    let created = tab.session.call("Page.createIsolatedWorld", world).await?;
    let context = created.get("executionContextId").and_then(serde_json::Value::as_i64).ok_or_else(|| {
        chromiumoxide::error::CdpError::ChromeMessage("Page.createIsolatedWorld: no executionContextId".into())
    })?;
    let params = serde_json::json!({
        "expression": expression, "contextId": context, "awaitPromise": true, "returnByValue": true
    });
    tab.session.call("Runtime.evaluate", params).await.and_then(captured)
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
/// settle rule, and returns `{found, html}` (no size cap). Public only for the benchmark, which
/// drives bare tabs with exactly the pool's wait so the strategies compare like for like.
#[doc(hidden)]
pub fn capture_expression(wait_for: Option<&str>, config: &BrowserConfig, wait: Duration) -> String {
    capture_script(wait_for, config, wait, None)
}

fn capture_script(wait_for: Option<&str>, config: &BrowserConfig, wait: Duration, max_bytes: Option<u64>) -> String {
    format!(
        "{CAPTURE_SCRIPT}({}, {}, {}, {}, {})",
        serde_json::Value::from(wait_for),
        config.settle_quiet_ms,
        config.settle_max_ms,
        wait.as_millis(),
        serde_json::Value::from(max_bytes)
    )
}

fn finish(
    captured: Captured,
    final_url: Option<Url>,
    main: MainDocument,
    request: &RenderRequest,
    started: Instant,
) -> Result<RenderedPage, BrowserError> {
    let selector = || request.wait_for.clone().unwrap_or_default();
    if captured.bad_selector {
        return Err(BrowserError::BadSelector(selector()));
    }
    if captured.found == Some(false) {
        return Err(BrowserError::WaitForTimeout { selector: selector(), after: started.elapsed() });
    }
    if let Some(bytes) = captured.too_large {
        return Err(BrowserError::TooLarge { bytes, limit: request.max_html_bytes });
    }
    Ok(RenderedPage {
        final_url: final_url.unwrap_or_else(|| request.url.clone()),
        status: main.status,
        retry_after: main.retry_after,
        html: captured.html.unwrap_or_default(),
        elapsed: started.elapsed(),
    })
}
