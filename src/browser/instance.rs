//! One pooled Chromium: its process, CDP connection, background tasks, tabs and death.
//!
//! It owns launching and connecting one browser, the tasks around it (CDP handler, process
//! watch, crash listener, request interceptor), warm incognito tabs, and killing the whole
//! process tree. It must not decide *when* to lease, recycle or kill (`pool.rs` does) nor
//! render a page (`render.rs` does).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::Browser;
use chromiumoxide::cdp::browser_protocol::browser::{BrowserContextId, CloseParams};
use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EnableParams as FetchEnableParams, EventRequestPaused, FailRequestParams, RequestPattern,
    RequestStage,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use chromiumoxide::cdp::browser_protocol::target::{
    CloseTargetParams, CreateBrowserContextParams, CreateTargetParams, DisposeBrowserContextParams,
    EventReceivedMessageFromTarget, EventTargetCrashed, TargetId,
};
use chromiumoxide::handler::HandlerConfig;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::BrowserConfig;
use super::error::{BrowserError, CrashKind};
use super::guard::{RequestGuard, Resource, Verdict};
use super::lock::lock;
use super::process;
use super::session::{Delivered, Router, Session};

/// Requests the interceptor decides at once; more wait in CDP (Chromium keeps them paused).
const GUARD_CONCURRENCY: usize = 32;
/// How long a graceful `Browser.close` may take before the tree is killed.
const GRACEFUL_CLOSE: Duration = Duration::from_secs(3);
/// How long to wait for the killed browser's `Child` to be reaped.
const EXIT_WAIT: Duration = Duration::from_secs(5);
/// How long to keep reaping orphaned helpers after a kill.
const REAP_WAIT: Duration = Duration::from_secs(3);
/// chromiumoxide's own per-command timeout; ours (`cdp_timeout_ms`, the job timeout) are
/// shorter and wrap every call, so this only stops a forgotten request living forever.
const HANDLER_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a browser died or was stopped; decides the error its jobs get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Death {
    /// The process exited or the CDP connection ended on its own.
    Crashed,
    /// Killed over the hard memory limit.
    Evicted {
        /// PSS measured, bytes.
        pss_bytes: u64,
    },
    /// Recycled or unresponsive: stopped by the pool.
    Stopped,
    /// The pool closed.
    Closed,
}

/// A hidden tab (no window) in a fresh incognito context, created ahead of a lease or on
/// demand (`session.rs` says why hidden).
#[derive(Debug)]
pub(crate) struct Tab {
    /// The context; disposing it closes the tab and drops cookies and storage.
    pub context: BrowserContextId,
    /// The session that drives the tab.
    pub session: Arc<Session>,
}

/// State shared with the instance's background tasks (which must not hold the `Instance`).
#[derive(Debug, Default)]
struct Shared {
    /// Crash signal per leased tab, by target id.
    leased: Mutex<HashMap<TargetId, (CancellationToken, Arc<Session>)>>,
    /// Answers and events of every tab's session.
    router: Arc<Router>,
    /// Set when any renderer of this browser crashed: the pool drains it.
    renderer_crashed: AtomicBool,
    /// Why it died, set once by whoever noticed first.
    death: Mutex<Option<Death>>,
}

impl Shared {
    fn set_death(&self, death: Death) {
        lock(&self.death).get_or_insert(death);
    }
}

/// One running Chromium.
#[derive(Debug)]
pub(crate) struct Instance {
    /// Pool position.
    pub slot: usize,
    /// Browser PID, also its process group id.
    pub pid: u32,
    /// When it answered CDP.
    pub launched_at: Instant,
    /// Its profile directory; every process of it names this on its command line.
    pub profile_dir: PathBuf,
    /// Shared with the request interceptor, which answers paused requests on it.
    browser: Arc<Browser>,
    cdp_timeout: Duration,
    shared: Arc<Shared>,
    /// Cancelled when the browser is dead for any reason (jobs race against it).
    dead: CancellationToken,
    /// Cancelled once the browser process has exited and been reaped.
    exited: CancellationToken,
    warm: Mutex<VecDeque<Tab>>,
    tasks: TaskTracker,
    killed: AtomicBool,
}

impl Instance {
    /// Launches Chromium on `profile_dir`, connects, and starts the background tasks.
    pub(crate) async fn launch(
        slot: usize,
        config: &BrowserConfig,
        launcher: &process::Launcher,
        profile_dir: &Path,
        guard: Arc<RequestGuard>,
    ) -> Result<Arc<Instance>, BrowserError> {
        let launched = process::launch(config, launcher, profile_dir).await?;
        let pid = launched.pid;
        let handler_config = HandlerConfig { request_timeout: HANDLER_REQUEST_TIMEOUT, ..HandlerConfig::default() };
        let connect = Browser::connect_with_config(launched.ws_url.clone(), handler_config);
        let connected = tokio::time::timeout(config.cdp_timeout(), connect).await;
        let (browser, handler) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(error)) => return Err(abandon(launched, profile_dir, BrowserError::Connect(error)).await),
            Err(_) => {
                let error = BrowserError::CdpTimeout { call: "connect", after: config.cdp_timeout() };
                return Err(abandon(launched, profile_dir, error).await);
            }
        };
        let instance = Arc::new(Instance {
            slot,
            pid,
            launched_at: Instant::now(),
            profile_dir: profile_dir.to_path_buf(),
            browser: Arc::new(browser),
            cdp_timeout: config.cdp_timeout(),
            shared: Arc::default(),
            dead: CancellationToken::new(),
            exited: CancellationToken::new(),
            warm: Mutex::default(),
            tasks: TaskTracker::new(),
            killed: AtomicBool::new(false),
        });
        instance.spawn_handler(handler);
        instance.spawn_process_watch(launched.child, launched.stderr);
        if let Err(error) = instance.start_listeners(&guard).await {
            instance.kill(Death::Stopped).await;
            return Err(error);
        }
        Ok(instance)
    }

    /// Drives the CDP connection. It stops on the first error: after a dead socket the
    /// handler never wakes again, and every later call would hang (infra-limits §5).
    fn spawn_handler(&self, mut handler: chromiumoxide::Handler) {
        let (shared, dead, pid) = (self.shared.clone(), self.dead.clone(), self.pid);
        self.tasks.spawn(async move {
            while let Some(event) = handler.next().await {
                if let Err(error) = event {
                    tracing::debug!(pid, error = %error, "CDP connection ended.");
                    break;
                }
            }
            shared.set_death(Death::Crashed);
            dead.cancel();
        });
    }

    /// Owns the `Child`: reaps it when it exits and marks the browser dead.
    fn spawn_process_watch(
        &self,
        mut child: tokio::process::Child,
        stderr: Option<tokio::io::BufReader<tokio::process::ChildStderr>>,
    ) {
        let (shared, dead, exited, pid) = (self.shared.clone(), self.dead.clone(), self.exited.clone(), self.pid);
        if let Some(stderr) = stderr {
            self.tasks.spawn(process::drain_stderr(stderr, pid));
        }
        self.tasks.spawn(async move {
            let status = child.wait().await;
            tracing::debug!(pid, ?status, "Chromium exited.");
            shared.set_death(Death::Crashed);
            dead.cancel();
            exited.cancel();
        });
    }

    /// Subscribes to crashes and, when the guard needs it, pauses every request of the
    /// browser (all contexts and frames) at the browser target.
    async fn start_listeners(&self, guard: &Arc<RequestGuard>) -> Result<(), BrowserError> {
        let crashes = self.cdp("listen crashes", self.browser.event_listener::<EventTargetCrashed>()).await?;
        let (shared, dead) = (self.shared.clone(), self.dead.clone());
        self.tasks.spawn(watch_crashes(crashes, shared, dead));
        let messages = self.cdp("listen tabs", self.browser.event_listener::<EventReceivedMessageFromTarget>()).await?;
        let (shared, dead) = (self.shared.clone(), self.dead.clone());
        self.tasks.spawn(route_messages(messages, shared, dead));
        if !guard.intercepts() {
            return Ok(());
        }
        let paused = self.cdp("listen requests", self.browser.event_listener::<EventRequestPaused>()).await?;
        let pattern = RequestPattern {
            url_pattern: Some("*".into()),
            resource_type: None,
            request_stage: Some(RequestStage::Request),
        };
        let enable = FetchEnableParams { patterns: Some(vec![pattern]), handle_auth_requests: None };
        self.cdp("Fetch.enable", self.browser.execute(enable)).await?;
        let interceptor =
            Interceptor { browser: self.browser.clone(), guard: guard.clone(), timeout: self.cdp_timeout };
        let dead = self.dead.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = paused.for_each_concurrent(GUARD_CONCURRENCY, |event| interceptor.decide(event)) => {}
                () = dead.cancelled() => {}
            }
        });
        Ok(())
    }

    /// Runs one CDP call under `cdp_timeout_ms`, or fails at once if the browser is dead.
    pub(crate) async fn cdp<T>(
        &self,
        call: &'static str,
        future: impl Future<Output = Result<T, chromiumoxide::error::CdpError>>,
    ) -> Result<T, BrowserError> {
        tokio::select! {
            biased;
            () = self.dead.cancelled() => Err(self.death_error()),
            result = tokio::time::timeout(self.cdp_timeout, future) => match result {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(source)) => Err(BrowserError::Cdp { call, source }),
                Err(_) => Err(BrowserError::CdpTimeout { call, after: self.cdp_timeout }),
            },
        }
    }

    /// The error a job gets when this browser died under it.
    pub(crate) fn death_error(&self) -> BrowserError {
        match *lock(&self.shared.death) {
            Some(Death::Evicted { pss_bytes }) => BrowserError::Evicted { pss_bytes },
            Some(Death::Closed) => BrowserError::Closed,
            Some(Death::Crashed) | Some(Death::Stopped) | None => BrowserError::Crashed(CrashKind::Browser),
        }
    }

    /// Resolves when the browser is dead.
    pub(crate) fn dead(&self) -> &CancellationToken {
        &self.dead
    }

    /// Whether the browser died on its own (not stopped by the pool).
    pub(crate) fn crashed(&self) -> bool {
        self.dead.is_cancelled() && *lock(&self.shared.death) == Some(Death::Crashed)
    }

    /// Whether one of its renderers crashed since launch.
    pub(crate) fn renderer_crashed(&self) -> bool {
        self.shared.renderer_crashed.load(Ordering::Relaxed)
    }

    /// Opens a hidden tab in a fresh incognito context (a new renderer process).
    pub(crate) async fn open_tab(&self) -> Result<Tab, BrowserError> {
        let context = self
            .cdp(
                "Target.createBrowserContext",
                self.browser.create_browser_context(CreateBrowserContextParams::default()),
            )
            .await?;
        match self.open_hidden_target(&context).await {
            Ok(session) => Ok(Tab { context, session: Arc::new(session) }),
            Err(error) => {
                let _ = self.dispose(context).await;
                Err(error)
            }
        }
    }

    async fn open_hidden_target(&self, context: &BrowserContextId) -> Result<Session, BrowserError> {
        // `background` must be set with `hidden` (Chromium refuses a hidden foreground tab).
        let target = CreateTargetParams {
            browser_context_id: Some(context.clone()),
            hidden: Some(true),
            background: Some(true),
            ..CreateTargetParams::new("about:blank")
        };
        let created = self.cdp("Target.createTarget", self.browser.execute(target)).await?;
        let attach = Session::attach(self.browser.clone(), self.shared.router.clone(), created.result.target_id);
        self.cdp("Target.attachToTarget", attach).await
    }

    /// Closes a tab, then disposes its context (cookies and storage go with it). A hidden
    /// tab outlives the disposal of its context (measured: one live renderer left per job),
    /// so it is closed first.
    pub(crate) async fn close_tab(&self, tab: Tab) -> Result<(), BrowserError> {
        let target = tab.session.target().clone();
        self.forget(&target);
        drop(tab.session);
        let closed = self.cdp("Target.closeTarget", self.browser.execute(CloseTargetParams::new(target))).await;
        let disposed = self.dispose(tab.context).await;
        closed.and(disposed).map(drop)
    }

    async fn dispose(&self, context: BrowserContextId) -> Result<(), BrowserError> {
        self.cdp("Target.disposeBrowserContext", self.browser.execute(DisposeBrowserContextParams::new(context)))
            .await
            .map(drop)
    }

    /// A warm tab, if one is ready.
    pub(crate) fn take_warm(&self) -> Option<Tab> {
        lock(&self.warm).pop_front()
    }

    /// Keeps a tab warm for a later lease.
    pub(crate) fn put_warm(&self, tab: Tab) {
        lock(&self.warm).push_back(tab);
    }

    /// Warm tabs ready now.
    pub(crate) fn warm_len(&self) -> usize {
        lock(&self.warm).len()
    }

    /// Starts watching a leased tab: the token is cancelled if its renderer crashes (seen by
    /// the tab's own session or by the browser).
    pub(crate) fn watch(&self, session: &Arc<Session>) -> CancellationToken {
        let token = session.crashed().child_token();
        lock(&self.shared.leased).insert(session.target().clone(), (token.clone(), session.clone()));
        token
    }

    /// Stops watching a tab.
    pub(crate) fn forget(&self, target: &TargetId) {
        lock(&self.shared.leased).remove(target);
    }

    /// JS heap in use summed over the leased tabs, bytes (tabs that do not answer in time
    /// count 0: the PSS check is what protects the machine).
    pub(crate) async fn js_heap_bytes(&self, timeout: Duration) -> u64 {
        let sessions: Vec<Arc<Session>> =
            lock(&self.shared.leased).values().map(|(_, session)| session.clone()).collect();
        let mut total = 0.0;
        for session in sessions {
            let usage = session.call("Runtime.getHeapUsage", serde_json::json!({}));
            if let Ok(Ok(usage)) = tokio::time::timeout(timeout, usage).await {
                total += usage.get("usedSize").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
            }
        }
        total as u64
    }

    /// Asks Chromium to quit, waits briefly, then kills whatever is left of the tree.
    pub(crate) async fn close_gracefully(&self, death: Death) {
        self.shared.set_death(death);
        let tree = process::tree(self.pid, &self.profile_dir).await;
        let close = self.browser.execute(CloseParams::default());
        if tokio::time::timeout(GRACEFUL_CLOSE, close).await.is_ok() {
            let _ = tokio::time::timeout(GRACEFUL_CLOSE, self.exited.cancelled()).await;
        }
        self.kill_known(death, tree).await;
    }

    /// Kills the whole process tree now and reaps it (the browser via its `Child`, orphaned
    /// helpers via `waitpid` as subreaper).
    pub(crate) async fn kill(&self, death: Death) {
        let tree = process::tree(self.pid, &self.profile_dir).await;
        self.kill_known(death, tree).await;
    }

    async fn kill_known(&self, death: Death, mut tree: Vec<u32>) {
        self.shared.set_death(death);
        self.killed.store(true, Ordering::Relaxed);
        for pid in process::tree(self.pid, &self.profile_dir).await {
            if !tree.contains(&pid) {
                tree.push(pid);
            }
        }
        process::kill_tree(self.pid, &tree);
        self.dead.cancel();
        if tokio::time::timeout(EXIT_WAIT, self.exited.cancelled()).await.is_err() {
            tracing::warn!(pid = self.pid, "Killed Chromium was not reaped in time.");
        }
        // Helpers whose parent died with them are re-parented here a moment later; wait until
        // every PID of the tree is gone from /proc (reaped), not only the ones already ours.
        let started = Instant::now();
        loop {
            process::reap(&tree, self.pid);
            if process::all_gone(&tree) || started.elapsed() >= REAP_WAIT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.tasks.close();
        let _ = tokio::time::timeout(EXIT_WAIT, self.tasks.wait()).await;
        // The profile belongs to this launch only; a leftover directory is harmless (the pool
        // root is removed on close), so a failure is only logged.
        if let Err(error) = tokio::fs::remove_dir_all(&self.profile_dir).await
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!(pid = self.pid, error = %error, "Cannot remove a browser profile.");
        }
    }

    /// The synchronous last resort (pool dropped without `close`): signal the tree; the
    /// `Child` (kill-on-drop) is reaped by the runtime.
    pub(crate) fn kill_now(&self) {
        if !self.killed.swap(true, Ordering::Relaxed) {
            let tree = process::process_tree(self.pid, &self.profile_dir);
            process::kill_tree(self.pid, &tree);
        }
        self.shared.set_death(Death::Closed);
        self.dead.cancel();
    }

    /// Whether `kill` or `kill_now` ran.
    pub(crate) fn was_killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }
}

/// Kills a launched browser whose CDP connection could not be set up.
async fn abandon(mut launched: process::Launched, profile_dir: &Path, error: BrowserError) -> BrowserError {
    let tree = process::tree(launched.pid, profile_dir).await;
    process::kill_tree(launched.pid, &tree);
    let _ = tokio::time::timeout(EXIT_WAIT, launched.child.wait()).await;
    process::reap(&tree, launched.pid);
    error
}

/// Handles each event of `events` until the stream ends or the browser is dead.
async fn until_dead<T>(
    mut events: chromiumoxide::listeners::EventStream<T>,
    dead: CancellationToken,
    mut handle: impl FnMut(Arc<T>),
) where
    T: chromiumoxide::cdp::IntoEventKind + Unpin,
{
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            () = dead.cancelled() => None,
        };
        let Some(event) = event else { break };
        handle(event);
    }
}

/// Cancels the crash token of a tab whose renderer died, and flags the browser.
fn renderer_crashed(shared: &Shared, target: &TargetId) {
    shared.renderer_crashed.store(true, Ordering::Relaxed);
    if let Some((token, _)) = lock(&shared.leased).get(target) {
        token.cancel();
    }
}

/// Browser-level crash events.
async fn watch_crashes(
    crashes: chromiumoxide::listeners::EventStream<EventTargetCrashed>,
    shared: Arc<Shared>,
    dead: CancellationToken,
) {
    until_dead(crashes, dead, |event| renderer_crashed(&shared, &event.target_id)).await;
}

/// Routes every tab's answers and events (see `session.rs`); a crash seen by a tab's own
/// session counts like a browser-level crash event.
async fn route_messages(
    messages: chromiumoxide::listeners::EventStream<EventReceivedMessageFromTarget>,
    shared: Arc<Shared>,
    dead: CancellationToken,
) {
    until_dead(messages, dead, |message| {
        if let Delivered::Crashed(target) = shared.router.deliver(&message) {
            renderer_crashed(&shared, &target);
        }
    })
    .await;
}

/// Applies the [`RequestGuard`]'s resource-type rules to each paused request.
#[derive(Debug)]
struct Interceptor {
    browser: Arc<Browser>,
    guard: Arc<RequestGuard>,
    timeout: Duration,
}

impl Interceptor {
    async fn decide(&self, event: Arc<EventRequestPaused>) {
        let resource = match event.resource_type {
            ResourceType::Document => Resource::Document,
            ResourceType::Image => Resource::Image,
            ResourceType::Font => Resource::Font,
            ResourceType::Media => Resource::Media,
            _ => Resource::Other,
        };
        let id = event.request_id.clone();
        let reason = match self.guard.check(resource) {
            Verdict::Allow => None,
            Verdict::Skipped => Some(ErrorReason::BlockedByClient),
        };
        // A tab closed meanwhile makes the answer fail; a paused request of a dead tab needs
        // no answer, so errors and timeouts are dropped here.
        let _ = match reason {
            None => {
                tokio::time::timeout(self.timeout, self.browser.execute(ContinueRequestParams::new(id))).await.map(drop)
            }
            Some(reason) => {
                tokio::time::timeout(self.timeout, self.browser.execute(FailRequestParams::new(id, reason)))
                    .await
                    .map(drop)
            }
        };
    }
}
