//! The browser pool against real Chromium and a fixture site served on loopback by the test.
//!
//! Covers rendering after load (settle rule and `wait_for`), the `auto` heuristic on the same
//! pages, memory eviction, browser and renderer crashes, the request guard, and that no
//! Chromium process of ours is left. Tests run one at a time (a shared lock): two pools on two
//! loaded cores would only make timings noisier. No timing is asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use riptide::browser::{
    BrowserConfig, BrowserError, BrowserEvent, BrowserPool, BrowserResolver, CrashKind, RecycleReason, RenderRequest,
    RenderedPage, looks_client_rendered,
};
use url::Url;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const STATIC_HTML: &str = "<!doctype html><html><head><title>Rivers</title></head><body><h1>Rivers</h1>\
<p>Rivers carry sediment from the mountains to the sea, building deltas over thousands of years; the Nile, \
the Mississippi and the Ganges each tell a different story of floods, farming and shifting channels.</p></body></html>";

const JS_HTML: &str = "<!doctype html><html><head><title>Late</title></head><body><div id=\"root\"></div>\
<noscript>You need to enable JavaScript to run this app.</noscript><script>\
window.addEventListener('load', () => setTimeout(() => {\
  const d = document.createElement('div'); d.id = 'dyn';\
  d.textContent = 'Inserted after load by script.'; document.getElementById('root').appendChild(d);\
}, 50));</script></body></html>";

const SPA_HTML: &str = "<!doctype html><html><head><title>App</title><script>\
window.addEventListener('load', async () => {\
  const data = await (await fetch('/api/data')).json();\
  document.getElementById('app').innerHTML = '<article><h1>' + data.title + '</h1><p>' + data.body + '</p></article>';\
});</script></head><body><div id=\"app\"></div></body></html>";

const HOG_HTML: &str = "<!doctype html><html><body><p>hog</p><script>\
window.hog = []; setInterval(() => { const a = new Uint8Array(32 * 1024 * 1024); a.fill(7); window.hog.push(a); }, 40);\
</script></body></html>";

/// A page that overrides everything a main-world capture would read: the serialiser, the
/// navigation timing (status), `querySelector` (the `wait_for` check) and `outerHTML`.
const FORGING_HTML: &str = "<!doctype html><html><head><title>Forger</title><script>\
Object.defineProperty(Element.prototype, 'outerHTML', { get() { return '<html><body>' + 'FOR' + 'GED</body></html>'; } });\
window.XMLSerializer = function () { this.serializeToString = () => '<!doctype forged>'; };\
performance.getEntriesByType = () => [{ responseStatus: 299 }];\
Document.prototype.querySelector = () => ({});\
try { Object.defineProperty(window, 'location', { value: { href: 'http://forged.example/' } }); } catch (e) {}\
</script></head><body><p>Real content of the forging page.</p></body></html>";

/// A page that builds a 120 MiB DOM after load (in a comment: text that would be laid out
/// takes the renderer over 3 GiB first, and the memory limit, not the cap, would stop it).
const HUGE_HTML: &str = "<!doctype html><html><body><p>huge</p><script>\
window.addEventListener('load', () => {\
  document.body.appendChild(document.createComment('x'.repeat(120 * 1024 * 1024))); });</script></body></html>";

const SLOW_HTML: &str = "<!doctype html><html><body><p>slow</p><script src=\"/slow.js\"></script></body></html>";

/// Counts every request the guard must have stopped.
#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

struct Fixture {
    addr: SocketAddr,
    forbidden: SocketAddr,
    forbidden_hits: Hits,
}

impl Fixture {
    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn fixture() -> Fixture {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("riptide=debug,chromiumoxide=info"))
        .with_test_writer()
        .try_init();
    let forbidden_hits = Hits::default();
    let counting = Router::new().fallback(get(|State(hits): State<Hits>| async move {
        hits.0.fetch_add(1, Ordering::SeqCst);
        "secret"
    }));
    let forbidden = serve(counting.with_state(forbidden_hits.clone())).await;
    let guard_html = guard_page(forbidden);
    let ws_html = format!(
        "<!doctype html><html><body><script>\
const ws = new WebSocket('ws://{forbidden}/socket');\
const mark = (what) => {{ const d = document.createElement('div'); d.id = 'done'; d.textContent = 'ws=' + what; document.body.appendChild(d); }};\
ws.onopen = () => mark('open'); ws.onerror = () => mark('error');</script></body></html>"
    );
    let site = Router::new()
        .route("/static", get(|| async { Html(STATIC_HTML) }))
        .route("/js", get(|| async { Html(JS_HTML) }))
        .route("/spa", get(|| async { Html(SPA_HTML) }))
        .route("/hog", get(|| async { Html(HOG_HTML) }))
        .route("/slow", get(|| async { Html(SLOW_HTML) }))
        .route("/forged", get(|| async { Html(FORGING_HTML) }))
        .route("/huge", get(|| async { Html(HUGE_HTML) }))
        .route(
            "/busy",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "120")], Html("<p>busy</p>")) }),
        )
        .route("/gone", get(|| async { StatusCode::GONE }))
        .route("/slow.js", get(slow_script))
        .route("/api/data", get(|| async { json(r#"{"title":"Fetched title","body":"Body fetched after load."}"#) }))
        .route("/guard", get(move || async move { Html(guard_html) }))
        .route("/ws", get(move || async move { Html(ws_html) }))
        .route("/redirect-static", get(|| async { Redirect::temporary("/static") }))
        .route("/redirect-private", get(move || async move { Redirect::temporary(&format!("http://{forbidden}/")) }));
    let addr = serve(site).await;
    Fixture { addr, forbidden, forbidden_hits }
}

fn json(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn slow_script() -> Response {
    tokio::time::sleep(Duration::from_secs(60)).await;
    (StatusCode::OK, "void 0;").into_response()
}

/// A page probing a forbidden loopback port by fetch, image and iframe, and - only if the
/// loopback fetch was blocked, so a broken guard never sends a packet there - the cloud
/// metadata address.
fn guard_page(forbidden: SocketAddr) -> String {
    format!(
        "<!doctype html><html><body><img src=\"http://{forbidden}/img\"><iframe src=\"http://{forbidden}/frame\"></iframe>\
<script>\
async function probe(url) {{ try {{ await fetch(url, {{ mode: 'no-cors' }}); return 'reached'; }} catch (e) {{ return 'blocked'; }} }}\
window.addEventListener('load', async () => {{\
  const local = await probe('http://{forbidden}/fetch');\
  const metadata = local === 'blocked' ? await probe('http://169.254.169.254/latest/meta-data/') : 'skipped';\
  const d = document.createElement('div'); d.id = 'done'; d.textContent = 'local=' + local + ' metadata=' + metadata;\
  document.body.appendChild(d);\
}});</script></body></html>"
    )
}

fn config(fixture: &Fixture) -> BrowserConfig {
    BrowserConfig {
        min_browsers: 1,
        max_browsers: 2,
        tabs_per_browser: 2,
        warm_contexts: 1,
        memory_poll_ms: 100,
        cdp_timeout_ms: 20_000,
        lease_timeout_ms: 60_000,
        guard_allow_origins: vec![fixture.origin()],
        ..BrowserConfig::default()
    }
}

fn request(url: Url, wait_for: Option<&str>) -> RenderRequest {
    RenderRequest {
        url,
        timeout: Duration::from_secs(60),
        wait_for: wait_for.map(str::to_string),
        max_html_bytes: 10 << 20,
        user_agent: None,
        headers: Vec::new(),
    }
}

/// PIDs of processes whose command line names the pool's profile root (all of ours do).
fn our_processes(profile_root: &Path) -> Vec<u32> {
    let needle = profile_root.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Zombie Chromium processes whose parent is this test process (not reaped by the pool).
fn our_zombies() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            let Some(close) = stat.rfind(')') else { return false };
            let comm = stat.get(stat.find('(').unwrap() + 1..close).unwrap_or_default();
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            comm.starts_with("chrom") && fields.first() == Some(&"Z") && fields.get(1) == Some(&me.to_string().as_str())
        })
        .collect()
}

/// Closes the pool and asserts that nothing of it is left running or unreaped.
async fn close_and_check(pool: BrowserPool) {
    let root = pool.profile_root().to_path_buf();
    pool.close().await.unwrap();
    assert_eq!(our_processes(&root), Vec::<u32>::new(), "Chromium processes left after close");
    assert_eq!(our_zombies(), Vec::<u32>::new(), "unreaped Chromium zombies after close");
    assert_eq!(pool.stats().browsers_alive, 0);
}

/// Renderer processes of one browser (its process group).
fn renderers(browser_pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let pgrp = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(2)).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            pgrp == browser_pid.to_string() && String::from_utf8_lossy(&cmdline).contains("--type=renderer")
        })
        .collect()
}

fn kill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

/// Waits (bounded) until `check` holds on the pool's stats.
async fn wait_until(pool: &BrowserPool, what: &str, check: impl Fn(&riptide::browser::BrowserPoolStats) -> bool) {
    let started = Instant::now();
    while !check(&pool.stats()) {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for {what}: {:?}", pool.stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_inserted_after_load_is_rendered_and_static_pages_stay_static() {
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    // `auto`: the static page is served as fetched, the client-rendered ones go to the browser.
    assert!(!looks_client_rendered(STATIC_HTML));
    assert!(looks_client_rendered(JS_HTML));
    assert!(looks_client_rendered(SPA_HTML));
    let pool = BrowserPool::start(config(&fixture), false).await.unwrap();

    let js = pool.render(&request(fixture.url("/js"), None)).await.unwrap();
    assert!(js.html.contains("Inserted after load by script."), "{}", js.html);
    assert_eq!(js.status, Some(200));
    assert_eq!(js.final_url, fixture.url("/js"));

    let spa = pool.render(&request(fixture.url("/spa"), None)).await.unwrap();
    assert!(spa.html.contains("Body fetched after load."), "{}", spa.html);

    let stats = pool.stats();
    assert_eq!(stats.pages_ok, 2);
    assert!(stats.browsers_alive >= 1);
    close_and_check(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_succeeds_and_times_out() {
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    let pool = BrowserPool::start(config(&fixture), false).await.unwrap();

    let page = pool.render(&request(fixture.url("/js"), Some("#dyn"))).await.unwrap();
    assert!(page.html.contains("id=\"dyn\""));

    let missing =
        RenderRequest { timeout: Duration::from_secs(4), ..request(fixture.url("/static"), Some("#missing")) };
    let error = pool.render(&missing).await.unwrap_err();
    assert!(matches!(error, BrowserError::WaitForTimeout { .. }), "{error:?}");
    assert!(error.classify().is_retryable());

    let bad = pool.render(&request(fixture.url("/static"), Some("##"))).await.unwrap_err();
    assert!(matches!(bad, BrowserError::BadSelector(_)), "{bad:?}");
    assert!(!bad.classify().is_retryable());

    // The pool still serves after both failures.
    pool.render(&request(fixture.url("/static"), None)).await.unwrap();
    close_and_check(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_memory_limit_evicts_and_the_next_job_gets_a_new_browser() {
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    let config = BrowserConfig { soft_limit_bytes: 900 << 20, hard_limit_bytes: 1300 << 20, ..config(&fixture) };
    let pool = BrowserPool::start(config, false).await.unwrap();
    let mut events = pool.subscribe();
    let first_pid = pool.stats().browsers[0].pid;

    let error = pool.render(&request(fixture.url("/hog"), Some("#never"))).await.unwrap_err();
    assert!(matches!(error, BrowserError::Evicted { .. }), "{error:?}");
    assert!(error.classify().is_retryable());

    let page = pool.render(&request(fixture.url("/js"), None)).await.unwrap();
    assert!(page.html.contains("Inserted after load"));
    let stats = pool.stats();
    assert_eq!(stats.recycles_for(RecycleReason::HardLimit), 1);
    assert!(stats.browsers.iter().all(|browser| browser.pid != first_pid));
    assert!(stats.peak_browser_pss_bytes > 900 << 20);

    let mut evicted = false;
    while let Ok(event) = events.try_recv() {
        evicted |= matches!(event, BrowserEvent::Evicted { pid, .. } if pid == first_pid);
    }
    assert!(evicted, "no eviction event");
    close_and_check(pool).await;
}

/// A pool with one browser rendering the slow page: leased, then `into` the render. Returns
/// the pool, the browser's PID and the render's task, for the kill tests.
async fn slow_render_under_way(
    fixture: &Fixture,
    into: Duration,
) -> (BrowserPool, u32, tokio::task::JoinHandle<Result<RenderedPage, BrowserError>>) {
    let pool = BrowserPool::start(config(fixture), false).await.unwrap();
    let browser_pid = pool.stats().browsers[0].pid;
    let render = tokio::spawn({
        let (pool, request) = (pool.clone(), request(fixture.url("/slow"), None));
        async move { pool.render(&request).await }
    });
    wait_until(&pool, "the lease", |stats| stats.leases == 1).await;
    tokio::time::sleep(into).await;
    (pool, browser_pid, render)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_browser_mid_render_is_retryable_and_the_pool_recovers() {
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    let (pool, browser_pid, render) = slow_render_under_way(&fixture, Duration::from_millis(500)).await;
    kill(browser_pid);

    let error = render.await.unwrap().unwrap_err();
    assert!(matches!(error, BrowserError::Crashed(CrashKind::Browser)), "{error:?}");
    assert!(error.classify().is_retryable());

    let page = pool.render(&request(fixture.url("/static"), None)).await.unwrap();
    assert!(page.html.contains("Rivers"));
    wait_until(&pool, "the crash to be counted", |stats| stats.browser_crashes == 1).await;
    assert!(pool.stats().browsers.iter().all(|browser| browser.pid != browser_pid));
    // The killed browser's helpers are gone and reaped, not only the new browser's.
    wait_until(&pool, "the old tree to be reaped", |_| renderers(browser_pid).is_empty() && our_zombies().is_empty())
        .await;
    close_and_check(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_renderer_mid_render_is_retryable_and_the_pool_recovers() {
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    let (pool, browser_pid, render) = slow_render_under_way(&fixture, Duration::from_millis(800)).await;
    let victims = renderers(browser_pid);
    assert!(!victims.is_empty());
    victims.into_iter().for_each(kill);

    let error = render.await.unwrap().unwrap_err();
    assert!(matches!(error, BrowserError::Crashed(CrashKind::Renderer)), "{error:?}");
    assert!(error.classify().is_retryable());

    let page = pool.render(&request(fixture.url("/js"), None)).await.unwrap();
    assert!(page.html.contains("Inserted after load"));
    let stats = pool.stats();
    assert_eq!(stats.renderer_crashes, 1);
    close_and_check(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_metadata_addresses_are_blocked_inside_the_browser() {
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    let config = BrowserConfig { block_images: false, ..config(&fixture) };
    let pool = BrowserPool::start(config, false).await.unwrap();

    let page = pool.render(&request(fixture.url("/guard"), Some("#done"))).await.unwrap();
    assert!(page.html.contains("local=blocked metadata=blocked"), "{}", page.html);
    assert_eq!(fixture.forbidden_hits.0.load(Ordering::SeqCst), 0, "the forbidden port was reached");

    let direct = Url::parse(&format!("http://{}/", fixture.forbidden)).unwrap();
    let error = pool.render(&request(direct, None)).await.unwrap_err();
    assert!(matches!(error, BrowserError::Blocked(_)), "{error:?}");
    assert!(!error.classify().is_retryable());

    let metadata = Url::parse("http://169.254.169.254/latest/meta-data/").unwrap();
    assert!(matches!(pool.render(&request(metadata, None)).await, Err(BrowserError::Blocked(_))));

    let redirected = pool.render(&request(fixture.url("/redirect-private"), None)).await.unwrap_err();
    assert!(matches!(redirected, BrowserError::Blocked(_)), "{redirected:?}");
    assert_eq!(fixture.forbidden_hits.0.load(Ordering::SeqCst), 0, "the forbidden port was reached");
    close_and_check(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_leave_no_renderer_behind() {
    // A hidden tab outlives its disposed context unless it is closed: this caught one live
    // renderer (tens of MiB) left per job.
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    let pool = BrowserPool::start(config(&fixture), false).await.unwrap();
    let pid = pool.stats().browsers[0].pid;
    for _ in 0..12 {
        pool.render(&request(fixture.url("/js"), None)).await.unwrap();
    }
    // Bounded by the warm contexts, the spare and processes still exiting, not by jobs done.
    let started = Instant::now();
    while renderers(pid).len() > 4 {
        let left = renderers(pid).len();
        assert!(started.elapsed() < Duration::from_secs(10), "{left} renderers alive after 12 jobs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    close_and_check(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_are_recycled_after_their_page_budget_and_leave_nothing_behind() {
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    let config = BrowserConfig { pages_per_browser: 2, ..config(&fixture) };
    let pool = BrowserPool::start(config, false).await.unwrap();
    let mut events = pool.subscribe();
    let first_pid = pool.stats().browsers[0].pid;
    for _ in 0..3 {
        pool.render(&request(fixture.url("/static"), None)).await.unwrap();
    }
    wait_until(&pool, "a page-budget recycle", |stats| stats.recycles_for(RecycleReason::Pages) >= 1).await;
    let started = Instant::now();
    while Path::new(&format!("/proc/{first_pid}")).exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "recycled browser {first_pid} still exists");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(renderers(first_pid).is_empty());
    let mut recycled = false;
    while let Ok(event) = events.try_recv() {
        recycled |=
            matches!(event, BrowserEvent::Recycled { pid, reason: RecycleReason::Pages, .. } if pid == first_pid);
    }
    assert!(recycled, "no recycle event for {first_pid}");
    close_and_check(pool).await;
}

/// Live (not zombie: a zombie's cmdline is empty) processes whose command line contains
/// `needle`.
fn processes_naming(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// The profile directory of the browser that `parent` started, once there is one.
fn child_browser_profile(parent: u32) -> Option<String> {
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid = stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse::<u32>().ok()?;
        let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).ok()?).into_owned();
        let dir = cmdline.split('\0').find_map(|arg| arg.strip_prefix("--user-data-dir="))?.to_owned();
        (ppid == parent).then_some(dir)
    })
}

/// Runs `riptide extract URL --render headless` on the 60 s page, waits until its browser
/// renders, 3 s more, then sends `signal` to the riptide process and asserts that, once it is
/// gone, no Chromium process of it is left (without any other riptide starting: the parent
/// death signal, not the next start's reaping, must do it).
async fn kill_extract_mid_render(signal: rustix::process::Signal) {
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    // Orphans of the killed riptide come here, so they can be reaped and the check below sees
    // only live processes.
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_riptide"))
        .args(["extract", fixture.url("/slow").as_str(), "--render", "headless"])
        .env("RIPTIDE_ALLOW_PRIVATE_NETWORKS", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let owner = child.id().unwrap();
    let started = Instant::now();
    let profile = loop {
        if let Some(profile) = child_browser_profile(owner)
            && processes_naming(&profile).len() >= 3
        {
            break profile;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "riptide extract started no browser");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(child.try_wait().unwrap().is_none(), "the render ended before the signal");
    let before = processes_naming(&profile);
    let pid = rustix::process::Pid::from_raw(owner as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    let started = Instant::now();
    loop {
        let _ = rustix::process::waitpid(None, rustix::process::WaitOptions::NOHANG);
        let left = processes_naming(&profile);
        if left.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "Chromium left behind: {left:?} (of {before:?})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while let Ok(Some(_)) = rustix::process::waitpid(None, rustix::process::WaitOptions::NOHANG) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_a_rendering_extract_leaves_no_chromium() {
    kill_extract_mid_render(rustix::process::Signal::TERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_rendering_riptide_leaves_no_chromium() {
    kill_extract_mid_render(rustix::process::Signal::KILL).await;
}

/// The real user id of a process (first field of `Uid:` in /proc/PID/status).
fn real_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| line.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_sandboxed_and_never_as_root() {
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    let (pool, _, render) = slow_render_under_way(&fixture, Duration::from_millis(500)).await;
    let stats = pool.stats();
    assert!(stats.sandbox, "the sandbox is on by default on this machine: {stats:?}");
    assert_ne!(stats.browser_uid, 0);
    let processes = our_processes(pool.profile_root());
    assert!(processes.len() >= 3, "browser, zygotes and a renderer: {processes:?}");
    for pid in processes {
        let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
            .replace('\0', " ");
        assert!(!cmdline.contains("--no-sandbox"), "{pid} runs without the sandbox: {cmdline}");
        if let Some(uid) = real_uid(pid) {
            assert_ne!(uid, 0, "{pid} runs as root: {cmdline}");
        }
    }
    render.abort();
    let page = pool.render(&request(fixture.url("/js"), None)).await.unwrap();
    assert!(page.html.contains("Inserted after load by script."));
    close_and_check(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_cannot_forge_the_capture_and_the_status_is_the_servers() {
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    let pool = BrowserPool::start(config(&fixture), false).await.unwrap();

    let page = pool.render(&request(fixture.url("/forged"), None)).await.unwrap();
    assert!(page.html.contains("Real content of the forging page."), "{}", page.html);
    assert!(!page.html.contains("FORGED"), "{}", page.html);
    assert!(page.html.starts_with("<!DOCTYPE html>"), "{}", page.html);
    assert_eq!(page.status, Some(200));
    assert_eq!(page.final_url, fixture.url("/forged"));
    // `querySelector` answers everything in the page's world, not in the capture's.
    let missing =
        RenderRequest { timeout: Duration::from_secs(4), ..request(fixture.url("/forged"), Some("#missing")) };
    let error = pool.render(&missing).await.unwrap_err();
    assert!(matches!(error, BrowserError::WaitForTimeout { .. }), "{error:?}");

    let busy = pool.render(&request(fixture.url("/busy"), None)).await.unwrap();
    assert_eq!((busy.status, busy.retry_after.as_deref()), (Some(503), Some("120")));
    let gone = pool.render(&request(fixture.url("/gone"), None)).await.unwrap();
    assert_eq!(gone.status, Some(410));
    let redirected = pool.render(&request(fixture.url("/redirect-static"), None)).await.unwrap();
    assert_eq!((redirected.status, redirected.final_url.clone()), (Some(200), fixture.url("/static")));
    close_and_check(pool).await;
}

/// Peak resident memory of this process, bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dom_over_the_cap_is_refused_before_it_crosses_cdp() {
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    let pool = BrowserPool::start(config(&fixture), false).await.unwrap();
    let before = peak_rss();
    let error = pool.render(&request(fixture.url("/huge"), None)).await.unwrap_err();
    match error {
        BrowserError::TooLarge { bytes, limit } => {
            assert!(bytes > 120 << 20, "{bytes}");
            assert_eq!(limit, 10 << 20);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(!error_is_retryable_too_large());
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 64 << 20, "this process grew by {grown} bytes: the DOM crossed CDP");
    // A page under the cap still comes through.
    pool.render(&request(fixture.url("/static"), None)).await.unwrap();
    close_and_check(pool).await;
}

fn error_is_retryable_too_large() -> bool {
    BrowserError::TooLarge { bytes: 2, limit: 1 }.classify().is_retryable()
}

/// A DNS server that rebinds: `rebind.test` is public for the first lookup, loopback after.
#[derive(Debug, Default)]
struct Rebinding {
    lookups: AtomicUsize,
}

impl BrowserResolver for Rebinding {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move {
            // Chromium's own background requests (update checks) get no address here.
            if host != "rebind.test" {
                return Err(std::io::Error::other("not served by this resolver"));
            }
            let first = self.lookups.fetch_add(1, Ordering::SeqCst) == 0;
            let ip: std::net::IpAddr = if first { [93, 184, 215, 14].into() } else { [127, 0, 0, 1].into() };
            Ok(vec![SocketAddr::new(ip, port)])
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebinding_names_and_websockets_cannot_reach_loopback() {
    let _serial = SERIAL.lock().await;
    let fixture = fixture().await;
    let resolver = Arc::new(Rebinding::default());
    let pool = BrowserPool::start_with_resolver(config(&fixture), false, resolver.clone()).await.unwrap();

    // The first lookup (standing in for the worker's own, e.g. its static fetch) is public...
    let first = resolver.lookup("rebind.test", fixture.forbidden.port()).await.unwrap();
    assert!(!first[0].ip().is_loopback());
    // ...the browser's goes to the proxy, which connects only to what it checked.
    let url = Url::parse(&format!("http://rebind.test:{}/", fixture.forbidden.port())).unwrap();
    let error = pool.render(&request(url, None)).await.unwrap_err();
    assert!(matches!(error, BrowserError::Blocked(_)), "{error:?}");
    // Every later lookup is the proxy's (one per connection Chromium opened; it may retry).
    assert!(resolver.lookups.load(Ordering::SeqCst) >= 2, "the browser's connection was not looked up by the proxy");

    let page = pool.render(&request(fixture.url("/ws"), Some("#done"))).await.unwrap();
    assert!(page.html.contains("ws=error"), "{}", page.html);
    assert_eq!(fixture.forbidden_hits.0.load(Ordering::SeqCst), 0, "the forbidden port was reached");
    close_and_check(pool).await;
}
