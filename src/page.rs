//! Getting a page, the one way the worker and `riptide extract` both use: a static fetch, a
//! headless render, or `auto` (static first, the browser when the host is known to need it or
//! the static page looks client-rendered), within the attempt's one deadline, under the same
//! HTTP status rules whichever way the page came.
//!
//! It owns the choice between fetching and rendering; it must not extract, store documents or
//! decide retries (that is the pipeline and the lifecycle).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use url::Url;

use crate::fetch::{FetchError, Fetcher, Validators};
use crate::job::{Render, StageTimings};
use crate::pools::{Pools, RenderStageError};
use crate::store::{Store, StoreError};

/// How long pages found to need a browser stay remembered as such.
const RENDER_MEMO_TTL: Duration = Duration::from_secs(24 * 3600);

/// The one deadline of an attempt (`timeout_ms`), shared by its stages: an `auto` job that
/// fetches, then renders, then extracts gets one budget, not one per stage.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn starting_now(budget: Duration) -> Self {
        Deadline { at: Instant::now() + budget, budget }
    }

    /// What is left for `stage`; nothing left is the attempt's timeout.
    pub fn left_for(&self, stage: &'static str) -> Result<Duration, OutOfTime> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(OutOfTime { stage, budget: self.budget }) } else { Ok(left) }
    }
}

/// The attempt's deadline passed before a stage could start.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the attempt's {budget:?} budget ran out before {stage}")]
pub struct OutOfTime {
    /// The stage that got no time.
    pub stage: &'static str,
    /// The whole budget of the attempt.
    pub budget: Duration,
}

/// Why no page was obtained.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The static fetch failed, or the page's status is an error.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The browser could not render it.
    #[error(transparent)]
    Render(#[from] RenderStageError),
    /// The render memo could not be read (Redis is away and we are stopping).
    #[error(transparent)]
    Memo(#[from] StoreError),
    /// The deadline passed.
    #[error(transparent)]
    OutOfTime(#[from] OutOfTime),
}

/// What to get.
#[derive(Debug, Clone)]
pub struct PageRequest<'a> {
    /// The page.
    pub url: &'a Url,
    /// Extra request headers of the job.
    pub headers: &'a BTreeMap<String, String>,
    /// Static, headless or auto.
    pub render: Render,
    /// A CSS selector to wait for when rendering.
    pub wait_for: Option<String>,
    /// The stored document's validators: a static fetch asks whether the page changed, and
    /// a 304 comes back as a [`Page`] with status 304 and no HTML.
    pub conditional: Option<&'a Validators>,
}

/// A page ready for extraction, however it was obtained.
#[derive(Debug)]
pub struct Page {
    /// Where the page ended up (after redirects).
    pub final_url: Url,
    /// Its HTTP status (2xx: anything else is an error).
    pub status: u16,
    /// The decoded HTML.
    pub html: String,
    /// How it was obtained.
    pub render_used: Render,
    /// `ETag` / `Last-Modified` of the response (static fetches only).
    pub validators: Validators,
}

impl Page {
    /// The site said the stored document is still the page (304 to a conditional request).
    pub fn not_modified(&self) -> bool {
        self.status == 304
    }
}

/// Fetcher, browser and render memo together. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PageSource {
    fetcher: Fetcher,
    pools: Pools,
    allow_private: bool,
    /// Largest rendered DOM taken from the browser (`fetch.max_body_bytes`: a rendered page
    /// has the same cap as a fetched one, measured in the page before it crosses CDP).
    max_html_bytes: u64,
    /// The "needs a browser" memo (per origin and first path segment) shared by a fleet; `None` without Redis
    /// (`riptide extract`), where `auto` decides from the page alone.
    memo: Option<Store>,
    /// `fetch.user_agent`, which rendered pages send too.
    user_agent: String,
}

impl PageSource {
    /// A page source over the given fetcher and pools.
    pub fn new(fetcher: Fetcher, pools: Pools, config: &crate::config::Config, memo: Option<Store>) -> Self {
        let max_html_bytes = u64::try_from(config.fetch.max_body_bytes).unwrap_or(u64::MAX);
        PageSource {
            fetcher,
            pools,
            allow_private: config.allow_private_networks,
            max_html_bytes,
            memo,
            user_agent: config.fetch.user_agent.clone(),
        }
    }

    /// The page as `request.render` asks. Stage times go into `timings`; `cancel` interrupts
    /// waits on Redis.
    pub async fn get(
        &self,
        request: &PageRequest<'_>,
        deadline: Deadline,
        timings: &mut StageTimings,
        cancel: &CancellationToken,
    ) -> Result<Page, PageError> {
        match request.render {
            Render::Static => self.fetch(request, deadline, timings).await,
            Render::Headless => self.render(request, deadline, timings).await,
            Render::Auto => self.auto(request, deadline, timings, cancel).await,
        }
    }

    async fn auto(
        &self,
        request: &PageRequest<'_>,
        deadline: Deadline,
        timings: &mut StageTimings,
        cancel: &CancellationToken,
    ) -> Result<Page, PageError> {
        let scope = render_memo_scope(request.url);
        let scope = scope.as_str();
        if let Some(store) = &self.memo
            && store.patiently(cancel, "render memo", || store.needs_browser(scope)).await?
        {
            return self.render(request, deadline, timings).await;
        }
        let page = self.fetch(request, deadline, timings).await?;
        if page.not_modified() || !crate::browser::looks_client_rendered(&page.html) {
            return Ok(page);
        }
        tracing::debug!(scope, "The static page looks client-rendered; rendering it.");
        if let Some(store) = &self.memo
            && let Err(error) = store.remember_needs_browser(scope, RENDER_MEMO_TTL).await
        {
            // The memo only saves a later static fetch; the job itself goes on.
            tracing::warn!(scope, %error, "Could not remember that these pages need a browser.");
        }
        self.render(request, deadline, timings).await
    }

    async fn fetch(
        &self,
        request: &PageRequest<'_>,
        deadline: Deadline,
        timings: &mut StageTimings,
    ) -> Result<Page, PageError> {
        let budget = deadline.left_for("fetch")?;
        let conditional = request.conditional.filter(|v| !v.is_empty());
        let page = match conditional {
            Some(validators) => {
                let mut headers = request.headers.clone();
                headers.extend(validators.request_headers().into_iter().map(|(k, v)| (k.to_string(), v)));
                self.fetcher.fetch(request.url, &headers, budget, self.allow_private).await?
            }
            None => self.fetcher.fetch(request.url, request.headers, budget, self.allow_private).await?,
        };
        timings.fetch_ms = millis(page.elapsed);
        Ok(Page {
            final_url: page.final_url,
            status: page.status,
            html: page.html,
            render_used: Render::Static,
            validators: page.validators,
        })
    }

    /// The browser's page, under the same status rules as a fetched one: an error status
    /// fails the job as a fetch would, and a page whose status the browser could not tell is
    /// refused rather than stored as if it were fine.
    async fn render(
        &self,
        request: &PageRequest<'_>,
        deadline: Deadline,
        timings: &mut StageTimings,
    ) -> Result<Page, PageError> {
        let budget = deadline.left_for("render")?;
        let render = crate::browser::RenderRequest {
            url: request.url.clone(),
            timeout: budget,
            wait_for: request.wait_for.clone(),
            max_html_bytes: self.max_html_bytes,
            user_agent: Some(self.user_agent.clone()),
            headers: request.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        let page = self.pools.render(render).await?;
        timings.render_ms = millis(page.elapsed);
        let retry_after = page
            .status
            .zip(page.retry_after.as_deref())
            .and_then(|(status, raw)| crate::fetch::parse_retry_after(status, raw));
        let status = crate::fetch::check_status(page.status, &page.final_url, retry_after)?;
        Ok(Page {
            final_url: page.final_url,
            status,
            html: page.html,
            render_used: Render::Headless,
            validators: Validators::default(),
        })
    }
}

/// What one client-rendered page says about its neighbours: the origin (scheme, host and
/// port: two ports are two sites) and the first path segment, so a single app under `/app/`
/// does not send a whole host's articles to the browser for a day.
pub fn render_memo_scope(url: &Url) -> String {
    let first_segment = url.path_segments().and_then(|mut s| s.next()).unwrap_or_default();
    format!("{}/{first_segment}", url.origin().ascii_serialization())
}

/// Whole milliseconds, saturating.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_memo_scopes_keep_ports_and_first_segments_apart() {
        let scope = |u: &str| render_memo_scope(&Url::parse(u).unwrap());
        assert_eq!(scope("http://a.example:8080/app/x?y=1"), "http://a.example:8080/app");
        assert_ne!(scope("http://a.example:8080/app/x"), scope("http://a.example:8081/app/x"));
        assert_ne!(scope("http://a.example/app/x"), scope("http://a.example/news/x"));
        assert_eq!(scope("http://a.example/"), "http://a.example/");
    }
}
