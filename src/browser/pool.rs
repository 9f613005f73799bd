//! The browser pool: leases tabs to renders, watches memory and health, recycles browsers.
//!
//! It owns the slots (one browser each, `0..max_browsers`), the lease queue, the two
//! background loops (watch: crashes, memory, recycling, `min_browsers`; warm: fresh contexts
//! ahead of demand), the stats, events and metrics. It must not touch a process or CDP
//! directly (`instance.rs`, `process.rs` do) nor know queues or storage.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ops::metrics as names;

use super::config::BrowserConfig;
use super::error::{BrowserError, CrashKind};
use super::events::{BrowserEvent, BrowserPoolStats, BrowserStats, RecycleReason};
use super::guard::RequestGuard;
use super::instance::{Death, Instance, Tab};
use super::lock::lock;
use super::memory;
use super::process;
use super::proxy::{BrowserResolver, EgressProxy, SystemResolver};
use super::render::{self, RenderRequest, RenderedPage};

/// Events buffered for slow subscribers; a subscriber that lags loses the oldest.
const EVENT_CAPACITY: usize = 256;
/// How often the warm loop looks for missing contexts even without a lease.
const WARM_INTERVAL: Duration = Duration::from_secs(1);
/// How long `close` waits for launches in flight and background tasks.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// A pool of headless Chromium browsers. Cheap to clone; `close` it explicitly (dropping the
/// last handle kills the browsers as a fallback and logs it).
#[derive(Debug, Clone)]
pub struct BrowserPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<BrowserConfig>,
    guard: Arc<RequestGuard>,
    /// Every browser connection goes through it (`proxy.rs`).
    proxy: EgressProxy,
    profile_root: PathBuf,
    /// Whether `profile_root` was made by the pool (then `close` removes it).
    owns_profile_root: bool,
    state: Mutex<State>,
    /// A tab was released or a browser became ready: lease waiters look again.
    freed: Notify,
    /// Something changed that the watch loop should look at now.
    watch_kick: Notify,
    /// A warm context was used.
    warm_kick: Notify,
    events: broadcast::Sender<BrowserEvent>,
    counters: Counters,
    /// Numbers launches, for unique profile directories.
    launch_seq: AtomicU64,
    /// Spawns every browser from one thread, so each dies with this process (`process.rs`).
    launcher: process::Launcher,
    /// `riptide-owner-PID-STARTTIME-`, the start of every profile directory name: the next
    /// pool's start reaps processes whose owner is gone by it.
    owner_tag: String,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

#[derive(Debug, Default)]
struct State {
    slots: Vec<Slot>,
    closed: bool,
    /// Memory peaks since start (`memory.rs`).
    peaks: memory::Peaks,
}

#[derive(Debug, Default)]
enum Slot {
    #[default]
    Empty,
    Launching,
    Live(Live),
}

#[derive(Debug)]
struct Live {
    instance: Arc<Instance>,
    leases: usize,
    pages: u64,
    draining: Option<RecycleReason>,
    pss_bytes: u64,
    js_heap_bytes: u64,
}

impl Live {
    fn leasable(&self, tabs: usize) -> bool {
        self.draining.is_none() && !self.instance.dead().is_cancelled() && self.leases < tabs
    }
}

#[derive(Debug, Default)]
struct Counters {
    launches: AtomicU64,
    recycles: [AtomicU64; 6],
    browser_crashes: AtomicU64,
    renderer_crashes: AtomicU64,
    pages_ok: AtomicU64,
    pages_failed: AtomicU64,
}

/// What a lease attempt found.
enum Attempt {
    Leased(usize, Arc<Instance>),
    Launch(usize),
    Wait,
}

impl BrowserPool {
    /// Validates `config`, launches `min_browsers` and starts the background loops.
    /// `allow_private_networks` lets pages reach loopback and private addresses (tests).
    pub async fn start(config: BrowserConfig, allow_private_networks: bool) -> Result<Self, BrowserError> {
        Self::start_with_resolver(config, allow_private_networks, Arc::new(SystemResolver)).await
    }

    /// [`Self::start`] with the resolver the egress proxy asks for every address the browsers
    /// connect to (tests answer as a rebinding DNS server would).
    pub async fn start_with_resolver(
        config: BrowserConfig,
        allow_private_networks: bool,
        resolver: Arc<dyn BrowserResolver>,
    ) -> Result<Self, BrowserError> {
        config.validate()?;
        super::events::initialize_metrics();
        if config.reap_orphans
            && let Err(error) = process::become_subreaper()
        {
            tracing::warn!(error = %error, "Cannot become child subreaper; orphaned Chromium helpers may linger.");
        }
        // Browsers of a riptide that was killed (SIGKILL, OOM) before closing its pool.
        let reaped = tokio::task::spawn_blocking(process::reap_abandoned).await.unwrap_or(0);
        if reaped > 0 {
            tracing::warn!(reaped, "Killed Chromium processes left by a riptide process that is gone.");
        }
        let isolation = super::sandbox::decide(&config).map_err(|error| {
            BrowserError::Config(super::config::BrowserConfigError { problems: vec![error.to_string()] })
        })?;
        tracing::info!(
            sandbox = isolation.sandbox,
            reason = isolation.reason,
            uid = isolation.uid(),
            user = isolation.run_as.as_ref().map(|user| user.name.as_str()),
            "Chromium isolation decided."
        );
        // Named by its owner, so the next start removes it if this process is killed.
        let short = uuid::Uuid::new_v4().simple().to_string();
        let tmp_name = format!("{}{}", process::owner_tag(), short.get(..8).unwrap_or(&short));
        let tmp_dir = std::env::temp_dir().join(tmp_name);
        let guard = Arc::new(RequestGuard::new(&config, allow_private_networks));
        let rules = guard.egress_rules(Duration::from_millis(config.lookup_timeout_ms));
        let proxy = EgressProxy::start(rules, resolver)
            .await
            .map_err(|source| BrowserError::Launch { executable: "egress proxy".into(), source })?;
        let launcher = process::Launcher::start(isolation, tmp_dir, proxy.addr())
            .map_err(|source| BrowserError::Launch { executable: config.executable.display().to_string(), source })?;
        let (profile_root, owns_profile_root) = match &config.profile_root {
            Some(root) => (root.clone(), false),
            None => (std::env::temp_dir().join(format!("riptide-chromium-{}", uuid::Uuid::new_v4())), true),
        };
        let root_error = |source| BrowserError::Launch { executable: profile_root.display().to_string(), source };
        tokio::fs::create_dir_all(&profile_root).await.map_err(root_error)?;
        if owns_profile_root {
            // Whatever the umask, the browser's user (`run_as`) must be able to enter it.
            use std::os::unix::fs::PermissionsExt;
            let traversable = std::fs::Permissions::from_mode(0o755);
            tokio::fs::set_permissions(&profile_root, traversable).await.map_err(root_error)?;
        }
        let slots = (0..config.max_browsers).map(|_| Slot::Empty).collect();
        let inner = Arc::new(Inner {
            guard,
            proxy,
            config: Arc::new(config),
            profile_root,
            owns_profile_root,
            state: Mutex::new(State { slots, ..State::default() }),
            freed: Notify::new(),
            watch_kick: Notify::new(),
            warm_kick: Notify::new(),
            events: broadcast::channel(EVENT_CAPACITY).0,
            counters: Counters::default(),
            launch_seq: AtomicU64::new(0),
            launcher,
            owner_tag: process::owner_tag(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        let pool = BrowserPool { inner };
        if let Err(error) = pool.inner.ensure_min_browsers().await {
            let _ = pool.close().await;
            return Err(error);
        }
        pool.inner.tasks.spawn(watch_loop(Arc::downgrade(&pool.inner), pool.inner.shutdown.clone()));
        pool.inner.tasks.spawn(warm_loop(Arc::downgrade(&pool.inner), pool.inner.shutdown.clone()));
        Ok(pool)
    }

    /// Renders one page in a fresh incognito context. Waits for a free tab at most
    /// `lease_timeout_ms` (and never past the request's own timeout).
    pub async fn render(&self, request: &RenderRequest) -> Result<RenderedPage, BrowserError> {
        render::precheck(request, &self.inner.guard)?;
        let started = Instant::now();
        let result = self.inner.lease_and_render(request, started).await;
        self.inner.record(&result);
        result
    }

    /// A snapshot of the pool: browsers, leases, memory, recycles, crashes.
    pub fn stats(&self) -> BrowserPoolStats {
        self.inner.stats()
    }

    /// Lifecycle events (launched, recycled, soft limit, evicted, crashed).
    pub fn subscribe(&self) -> broadcast::Receiver<BrowserEvent> {
        self.inner.events.subscribe()
    }

    /// The directory holding every browser's profile; each browser's command line names it.
    pub fn profile_root(&self) -> &std::path::Path {
        &self.inner.profile_root
    }

    /// Stops leasing, kills every browser and waits until each process tree is gone and
    /// reaped. Renders in flight fail with [`BrowserError::Closed`]. Idempotent.
    pub async fn close(&self) -> Result<(), BrowserError> {
        self.inner.close().await
    }
}

impl Inner {
    async fn lease_and_render(
        self: &Arc<Self>,
        request: &RenderRequest,
        started: Instant,
    ) -> Result<RenderedPage, BrowserError> {
        let wait = Duration::from_millis(self.config.lease_timeout_ms).min(request.timeout);
        let (slot, instance) = self.acquire(started + wait, wait).await?;
        let mut lease = Lease { inner: self.clone(), slot, instance, tab: None };
        let tab = match lease.instance.take_warm() {
            Some(tab) => tab,
            None => lease.instance.open_tab().await?,
        };
        self.warm_kick.notify_one();
        let remaining = request.timeout.saturating_sub(started.elapsed());
        let request = RenderRequest { timeout: remaining, ..request.clone() };
        lease.tab = Some(tab);
        let result = match lease.tab.as_ref() {
            Some(tab) => render::render(&lease.instance, tab, &request, &self.config, &self.proxy, started).await,
            None => Err(BrowserError::Closed),
        };
        lease.account(&result);
        // Disposing the context (and giving the tab back) happens after the caller has its
        // page: it is off the request path, and the tab still counts until it is done.
        self.tasks.spawn(lease.finish());
        result
    }

    /// Waits until a browser has a free tab (launching one if a slot is empty).
    async fn acquire(
        self: &Arc<Self>,
        deadline: Instant,
        wait: Duration,
    ) -> Result<(usize, Arc<Instance>), BrowserError> {
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_lease()? {
                Attempt::Leased(slot, instance) => return Ok((slot, instance)),
                Attempt::Launch(slot) => {
                    self.launch_slot(slot).await?;
                    continue;
                }
                Attempt::Wait => {}
            }
            if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                return Err(BrowserError::PoolExhausted(wait));
            }
        }
    }

    fn try_lease(&self) -> Result<Attempt, BrowserError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(BrowserError::Closed);
        }
        let tabs = self.config.tabs_per_browser;
        let best = state
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(index, slot)| match slot {
                Slot::Live(live) if live.leasable(tabs) => Some((index, live)),
                _ => None,
            })
            .min_by_key(|(_, live)| (live.instance.warm_len() == 0, live.leases));
        if let Some((index, live)) = best {
            live.leases += 1;
            return Ok(Attempt::Leased(index, live.instance.clone()));
        }
        let launching = state.slots.iter().any(|slot| matches!(slot, Slot::Launching));
        let empty = state.slots.iter().position(|slot| matches!(slot, Slot::Empty));
        match (launching, empty) {
            (false, Some(index)) => {
                if let Some(slot) = state.slots.get_mut(index) {
                    *slot = Slot::Launching;
                }
                Ok(Attempt::Launch(index))
            }
            _ => Ok(Attempt::Wait),
        }
    }

    /// Launches a browser into a slot already marked `Launching`.
    async fn launch_slot(&self, index: usize) -> Result<(), BrowserError> {
        // A fresh directory per launch: a replacement starts while its predecessor may still
        // be shutting down, and two browsers must never share a profile (Chromium would hand
        // over to the old one) nor the command-line marker `process_tree` kills by. `.profile`
        // ends the name, so no path is a prefix of another.
        let launch = self.launch_seq.fetch_add(1, Ordering::Relaxed);
        let profile = self.profile_root.join(format!("{}slot-{index}-{launch}.profile", self.owner_tag));
        let launched = Instance::launch(index, &self.config, &self.launcher, &profile, self.guard.clone()).await;
        let outcome = {
            let mut state = lock(&self.state);
            let closed = state.closed;
            let slot = state.slots.get_mut(index);
            match (launched, slot) {
                (Ok(instance), Some(slot)) if !closed => {
                    let pid = instance.pid;
                    *slot = Slot::Live(Live {
                        instance,
                        leases: 0,
                        pages: 0,
                        draining: None,
                        pss_bytes: 0,
                        js_heap_bytes: 0,
                    });
                    Ok(Some(pid))
                }
                (Ok(instance), slot) => {
                    if let Some(slot) = slot {
                        *slot = Slot::Empty;
                    }
                    Err((Some(instance), BrowserError::Closed))
                }
                (Err(error), slot) => {
                    if let Some(slot) = slot {
                        *slot = Slot::Empty;
                    }
                    Err((None, error))
                }
            }
        };
        self.freed.notify_waiters();
        match outcome {
            Ok(pid) => {
                self.counters.launches.fetch_add(1, Ordering::Relaxed);
                self.emit(BrowserEvent::Launched { slot: index, pid: pid.unwrap_or_default() });
                self.warm_kick.notify_one();
                Ok(())
            }
            Err((instance, error)) => {
                if let Some(instance) = instance {
                    instance.kill(Death::Closed).await;
                }
                Err(error)
            }
        }
    }

    /// Launches browsers until `min_browsers` are alive and not draining.
    async fn ensure_min_browsers(&self) -> Result<(), BrowserError> {
        loop {
            let index = {
                let mut state = lock(&self.state);
                let serving = state
                    .slots
                    .iter()
                    .filter(|slot| match slot {
                        Slot::Launching => true,
                        Slot::Live(live) => live.draining.is_none(),
                        Slot::Empty => false,
                    })
                    .count();
                let empty = state.slots.iter().position(|slot| matches!(slot, Slot::Empty));
                match empty {
                    Some(index) if serving < self.config.min_browsers && !state.closed => {
                        if let Some(slot) = state.slots.get_mut(index) {
                            *slot = Slot::Launching;
                        }
                        index
                    }
                    _ => return Ok(()),
                }
            };
            self.launch_slot(index).await?;
        }
    }

    /// Gives a tab back: counts the page, applies the page and age limits, wakes waiters.
    fn release(&self, index: usize, instance: &Instance) {
        let mut kick = false;
        {
            let mut state = lock(&self.state);
            if let Some(Slot::Live(live)) = state.slots.get_mut(index)
                && live.instance.pid == instance.pid
            {
                live.leases = live.leases.saturating_sub(1);
                live.pages += 1;
                if live.draining.is_none() {
                    live.draining = self.recycle_due(live);
                }
                kick = live.draining.is_some() && live.leases == 0;
            }
        }
        self.freed.notify_waiters();
        if kick {
            self.watch_kick.notify_one();
        }
    }

    /// Page-count and age limits.
    fn recycle_due(&self, live: &Live) -> Option<RecycleReason> {
        let config = &self.config;
        if config.pages_per_browser > 0 && live.pages >= config.pages_per_browser {
            return Some(RecycleReason::Pages);
        }
        let max_age = Duration::from_secs(config.max_browser_age_secs);
        if config.max_browser_age_secs > 0 && live.instance.launched_at.elapsed() >= max_age {
            return Some(RecycleReason::Age);
        }
        None
    }

    /// Marks a browser as draining (no new leases) for `reason`.
    fn drain(&self, index: usize, pid: u32, reason: RecycleReason) {
        let mut state = lock(&self.state);
        if let Some(Slot::Live(live)) = state.slots.get_mut(index)
            && live.instance.pid == pid
        {
            live.draining.get_or_insert(reason);
        }
        drop(state);
        self.watch_kick.notify_one();
    }

    /// Empties a slot if it still holds the browser `pid`.
    fn take(&self, index: usize, pid: u32) -> Option<Live> {
        let mut state = lock(&self.state);
        let slot = state.slots.get_mut(index)?;
        match slot {
            Slot::Live(live) if live.instance.pid == pid => match std::mem::take(slot) {
                Slot::Live(live) => Some(live),
                _ => None,
            },
            _ => None,
        }
    }

    /// Counts and announces a recycle, then stops the browser in the background.
    fn recycle(&self, live: Live, reason: RecycleReason, death: Death) {
        self.counters.recycles.get(reason.index()).map(|c| c.fetch_add(1, Ordering::Relaxed));
        let (slot, pid) = (live.instance.slot, live.instance.pid);
        memory::publish_pss(slot, 0);
        self.emit(BrowserEvent::Recycled { slot, pid, reason, pages: live.pages });
        let instance = live.instance;
        self.tasks.spawn(async move {
            match death {
                Death::Stopped | Death::Closed => instance.close_gracefully(death).await,
                Death::Crashed | Death::Evicted { .. } => instance.kill(death).await,
            }
        });
        self.freed.notify_waiters();
    }

    fn emit(&self, event: BrowserEvent) {
        event.emit(&self.events);
    }

    /// One pass of the watch loop: crashes, memory, limits, idle recycling, `min_browsers`.
    async fn watch_once(self: &Arc<Self>) {
        let live: Vec<Arc<Instance>> = lock(&self.state)
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Live(live) => Some(live.instance.clone()),
                _ => None,
            })
            .collect();
        for instance in &live {
            if instance.crashed() {
                self.on_browser_crash(instance);
            }
        }
        self.measure(&live).await;
        self.recycle_idle();
        if let Err(error) = self.ensure_min_browsers().await {
            tracing::warn!(error = %error, "Cannot launch a browser; will retry.");
        }
        self.publish_gauges();
    }

    fn on_browser_crash(&self, instance: &Instance) {
        if let Some(live) = self.take(instance.slot, instance.pid) {
            self.counters.browser_crashes.fetch_add(1, Ordering::Relaxed);
            self.emit(BrowserEvent::Crashed { slot: instance.slot, pid: instance.pid, kind: CrashKind::Browser });
            self.recycle(live, RecycleReason::Crash, Death::Crashed);
        }
    }

    /// Measures PSS and JS heap (`memory.rs`), then acts on the verdicts.
    async fn measure(&self, live: &[Arc<Instance>]) {
        let measured = memory::measure_pss(live).await;
        let mut total = 0;
        for (instance, pss) in live.iter().zip(measured) {
            if !instance.dead().is_cancelled() {
                total += pss;
                self.apply_memory(instance, pss);
            }
        }
        {
            let mut state = lock(&self.state);
            state.peaks.total = state.peaks.total.max(total);
        }
        // The JS heap comes last and under a short timeout, so a stuck tab cannot delay the
        // PSS limits above.
        let timeout = memory::heap_timeout(&self.config);
        for instance in live.iter().filter(|instance| !instance.dead().is_cancelled()) {
            let heap = instance.js_heap_bytes(timeout).await;
            self.record_heap(instance, heap);
        }
    }

    fn record_heap(&self, instance: &Instance, heap: u64) {
        memory::publish_heap(instance.slot, heap);
        if let Some(Slot::Live(live)) = lock(&self.state).slots.get_mut(instance.slot)
            && live.instance.pid == instance.pid
        {
            live.js_heap_bytes = heap;
        }
    }

    /// Acts on one PSS measurement: evicts over the hard limit, drains over the soft limit
    /// (or after a renderer crash, or at the page and age limits).
    fn apply_memory(&self, instance: &Instance, pss: u64) {
        let (slot, pid) = (instance.slot, instance.pid);
        memory::publish_pss(slot, pss);
        let verdict = memory::judge(pss, &self.config);
        if verdict == memory::Verdict::Evict {
            if let Some(live) = self.take(slot, pid) {
                self.emit(BrowserEvent::Evicted { slot, pid, pss_bytes: pss });
                self.recycle(live, RecycleReason::HardLimit, Death::Evicted { pss_bytes: pss });
            }
            return;
        }
        let mut soft = false;
        {
            let mut state = lock(&self.state);
            state.peaks.browser = state.peaks.browser.max(pss);
            if let Some(Slot::Live(live)) = state.slots.get_mut(slot)
                && live.instance.pid == pid
            {
                live.pss_bytes = pss;
                if live.draining.is_none() {
                    if verdict == memory::Verdict::SoftLimit {
                        live.draining = Some(RecycleReason::SoftLimit);
                        soft = true;
                    } else if instance.renderer_crashed() {
                        live.draining = Some(RecycleReason::Crash);
                    } else {
                        live.draining = self.recycle_due(live);
                    }
                }
            }
        }
        if soft {
            self.emit(BrowserEvent::SoftLimit { slot, pid, pss_bytes: pss });
        }
    }

    /// Recycles every draining browser that has no lease left.
    fn recycle_idle(&self) {
        let idle: Vec<(usize, u32, RecycleReason)> = lock(&self.state)
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Live(live) if live.leases == 0 => {
                    live.draining.map(|r| (live.instance.slot, live.instance.pid, r))
                }
                _ => None,
            })
            .collect();
        for (index, pid, reason) in idle {
            if let Some(live) = self.take(index, pid) {
                self.recycle(live, reason, Death::Stopped);
            }
        }
    }

    /// Opens warm contexts on every serving browser up to `warm_contexts`.
    async fn fill_warm(&self) {
        let serving: Vec<Arc<Instance>> = lock(&self.state)
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Live(live) if live.draining.is_none() => Some(live.instance.clone()),
                _ => None,
            })
            .collect();
        for instance in serving {
            while instance.warm_len() < self.config.warm_contexts && !instance.dead().is_cancelled() {
                match instance.open_tab().await {
                    Ok(tab) => {
                        instance.put_warm(tab);
                        self.freed.notify_waiters();
                    }
                    Err(error) => {
                        tracing::debug!(pid = instance.pid, error = %error, "Cannot open a warm context.");
                        if matches!(error, BrowserError::CdpTimeout { .. }) {
                            self.drain(instance.slot, instance.pid, RecycleReason::Unresponsive);
                        }
                        break;
                    }
                }
            }
        }
    }

    fn publish_gauges(&self) {
        let stats = self.stats();
        metrics::gauge!(names::BROWSER_ALIVE).set(stats.browsers_alive as f64);
        metrics::gauge!(names::BROWSER_LEASES).set(stats.leases as f64);
        metrics::gauge!(names::BROWSER_WARM_CONTEXTS).set(stats.warm_contexts as f64);
    }

    /// Counts a finished render and its crash, if any.
    fn record(&self, result: &Result<RenderedPage, BrowserError>) {
        match result {
            Ok(page) => {
                self.counters.pages_ok.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(names::BROWSER_PAGES_TOTAL, "outcome" => "ok").increment(1);
                metrics::histogram!(names::BROWSER_RENDER_SECONDS).record(page.elapsed.as_secs_f64());
            }
            Err(error) => {
                self.counters.pages_failed.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(names::BROWSER_PAGES_TOTAL, "outcome" => "failed").increment(1);
                if matches!(error, BrowserError::Crashed(_)) {
                    self.watch_kick.notify_one();
                }
            }
        }
    }

    fn on_renderer_crash(&self, instance: &Instance) {
        self.counters.renderer_crashes.fetch_add(1, Ordering::Relaxed);
        self.emit(BrowserEvent::Crashed { slot: instance.slot, pid: instance.pid, kind: CrashKind::Renderer });
        self.drain(instance.slot, instance.pid, RecycleReason::Crash);
    }

    fn stats(&self) -> BrowserPoolStats {
        let state = lock(&self.state);
        let mut stats = BrowserPoolStats {
            launches: self.counters.launches.load(Ordering::Relaxed),
            browser_crashes: self.counters.browser_crashes.load(Ordering::Relaxed),
            renderer_crashes: self.counters.renderer_crashes.load(Ordering::Relaxed),
            pages_ok: self.counters.pages_ok.load(Ordering::Relaxed),
            pages_failed: self.counters.pages_failed.load(Ordering::Relaxed),
            peak_browser_pss_bytes: state.peaks.browser,
            peak_total_pss_bytes: state.peaks.total,
            sandbox: self.launcher.isolation().sandbox,
            browser_uid: self.launcher.isolation().uid(),
            ..BrowserPoolStats::default()
        };
        for (count, counter) in stats.recycles.iter_mut().zip(&self.counters.recycles) {
            *count = counter.load(Ordering::Relaxed);
        }
        for slot in &state.slots {
            match slot {
                Slot::Launching => stats.browsers_launching += 1,
                Slot::Live(live) => {
                    let warm = live.instance.warm_len();
                    stats.browsers_alive += 1;
                    stats.leases += live.leases;
                    stats.warm_contexts += warm;
                    stats.browsers.push(BrowserStats {
                        slot: live.instance.slot,
                        pid: live.instance.pid,
                        leases: live.leases,
                        warm_contexts: warm,
                        pages: live.pages,
                        age: live.instance.launched_at.elapsed(),
                        pss_bytes: live.pss_bytes,
                        js_heap_bytes: live.js_heap_bytes,
                        draining: live.draining,
                    });
                }
                Slot::Empty => {}
            }
        }
        stats
    }

    async fn close(&self) -> Result<(), BrowserError> {
        lock(&self.state).closed = true;
        self.shutdown.cancel();
        self.freed.notify_waiters();
        let started = Instant::now();
        while lock(&self.state).slots.iter().any(|slot| matches!(slot, Slot::Launching))
            && started.elapsed() < CLOSE_WAIT
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let live: Vec<Live> = lock(&self.state)
            .slots
            .iter_mut()
            .filter_map(|slot| match std::mem::take(slot) {
                Slot::Live(live) => Some(live),
                _ => None,
            })
            .collect();
        let stops = live.iter().map(|live| live.instance.close_gracefully(Death::Closed));
        futures_util::future::join_all(stops).await;
        self.tasks.close();
        if tokio::time::timeout(CLOSE_WAIT, self.tasks.wait()).await.is_err() {
            tracing::warn!("Browser pool tasks still running after close.");
        }
        self.proxy.close().await;
        // A scan of every process: off the async threads.
        let _ = tokio::task::spawn_blocking(|| process::sweep_zombies(&HashSet::new())).await;
        match tokio::fs::remove_dir_all(self.launcher.tmp_dir()).await {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(BrowserError::Io(error)),
        }
        if self.owns_profile_root {
            match tokio::fs::remove_dir_all(&self.profile_root).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(BrowserError::Io(error)),
            }
        }
        self.publish_gauges();
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = lock(&self.state);
        let mut killed = 0;
        for slot in &state.slots {
            if let Slot::Live(live) = slot
                && !live.instance.was_killed()
            {
                live.instance.kill_now();
                killed += 1;
            }
        }
        if killed > 0 {
            tracing::warn!(killed, "Browser pool dropped without close; browsers killed.");
        }
    }
}

/// One job's hold on a tab. `finish` gives it back; `Drop` is the fallback when the render
/// future is cancelled (the tab's context is disposed in the background).
struct Lease {
    inner: Arc<Inner>,
    slot: usize,
    instance: Arc<Instance>,
    tab: Option<Tab>,
}

impl Lease {
    /// Counts what the render's outcome says about the browser (a renderer crash, a browser
    /// that stopped answering). Synchronous, so stats are right when `render` returns.
    fn account(&self, result: &Result<RenderedPage, BrowserError>) {
        match result {
            Err(BrowserError::Crashed(CrashKind::Renderer)) => self.inner.on_renderer_crash(&self.instance),
            Err(BrowserError::CdpTimeout { .. }) => {
                self.inner.drain(self.slot, self.instance.pid, RecycleReason::Unresponsive);
            }
            _ => {}
        }
    }

    /// Disposes the tab's context and gives the tab back.
    async fn finish(mut self) {
        if let Some(tab) = self.tab.take()
            && !self.instance.dead().is_cancelled()
            && self.instance.close_tab(tab).await.is_err()
        {
            self.inner.drain(self.slot, self.instance.pid, RecycleReason::Unresponsive);
        }
        self.inner.release(self.slot, &self.instance);
        self.slot = usize::MAX;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.slot == usize::MAX {
            return;
        }
        self.inner.release(self.slot, &self.instance);
        if let Some(tab) = self.tab.take() {
            let instance = self.instance.clone();
            self.inner.tasks.spawn(async move {
                let _ = instance.close_tab(tab).await;
            });
        }
    }
}

/// Runs [`Inner::watch_once`] every `memory_poll_ms`, or sooner when kicked.
async fn watch_loop(inner: Weak<Inner>, shutdown: CancellationToken) {
    loop {
        let Some(pool) = inner.upgrade() else { return };
        let poll = Duration::from_millis(pool.config.memory_poll_ms);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(poll) => {}
            () = pool.watch_kick.notified() => {}
        }
        pool.watch_once().await;
    }
}

/// Keeps warm contexts topped up, off the request path.
async fn warm_loop(inner: Weak<Inner>, shutdown: CancellationToken) {
    loop {
        let Some(pool) = inner.upgrade() else { return };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(WARM_INTERVAL) => {}
            () = pool.warm_kick.notified() => {}
        }
        pool.fill_warm().await;
    }
}
