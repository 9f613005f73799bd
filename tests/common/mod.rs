//! Shared fixtures of the integration tests: a throwaway namespace on the real RabbitMQ and
//! Redis, a fixture HTTP site on 127.0.0.1:0 with pages that fail in controlled ways, and
//! helpers to run workers and read results and dead letters.
//!
//! Every test makes its own namespace and site, so tests run in parallel on one broker.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicGetOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use riptide::config::Config;
use riptide::job::JobResult;
use riptide::worker::{WorkerOptions, WorkerReport};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Size of fixture article pages: big enough to be real, small enough for fast tests.
pub const PAGE_BYTES: usize = 20 * 1024;

/// A test's own namespace on the shared RabbitMQ and Redis.
pub struct TestEnv {
    pub config: Arc<Config>,
    pub site: Site,
    cleaned: bool,
}

/// The fixture site.
pub struct Site {
    pub addr: SocketAddr,
    pub hits: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    stop: CancellationToken,
}

impl Site {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Times each path was requested.
    pub fn hits(&self, path: &str) -> Vec<Instant> {
        self.hits.lock().unwrap().get(path).cloned().unwrap_or_default()
    }
}

/// A test that failed before its `cleanup` still removes its namespace: leftover quorum queues
/// pile up on the shared broker run after run.
impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let config = self.config.clone();
        let removal = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(remove_namespace(&config));
        });
        let _ = removal.join();
    }
}

async fn remove_namespace(config: &Config) {
    if let Err(error) = riptide::migrate::remove(config).await {
        eprintln!("cleanup of {} failed: {error}", config.namespace);
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Base configuration of tests: the defaults, the services from the environment (or the
/// loopback defaults), a unique namespace, loopback fetches allowed, short grace.
pub fn test_config(tweak: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::load(None).expect("config");
    config.namespace = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    config.allow_private_networks = true;
    config.worker.shutdown_grace_secs = 5;
    config.retry.base_delay_ms = 10;
    // Pacing off: these tests serve many pages from one loopback origin, and the shipped
    // default (one request a second per origin) would make them crawl. tests/politeness.rs
    // turns it on where pacing is what is tested. robots.txt stays on: the fixture site has
    // none (404 = everything allowed).
    config.politeness.default_delay_ms = 0;
    // A 503 without Retry-After blocks its origin for the fleet, 5 s at first by default;
    // the retry tests' flaky pages would wait that out at every failure. 200 ms keeps them
    // fast (tests/politeness.rs tests the block itself with a Retry-After).
    config.politeness.base_block_ms = 200;
    // And a 503 or 429 with a long Retry-After (the retry tests send up to 600 s) would block
    // the one fixture origin, and so every other job of the test, for that long: host backoff
    // is off (0) here; tests/politeness.rs turns it on where the block is what is tested.
    config.politeness.max_block_secs = 0;
    tweak(&mut config);
    config
}

impl TestEnv {
    /// A migrated namespace and a running fixture site.
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        let config = Arc::new(test_config(tweak));
        riptide::migrate::migrate(&config).await.expect("migrate (is RabbitMQ/Redis running? see scripts/setup.sh)");
        TestEnv { config, site: start_site().await, cleaned: false }
    }

    pub async fn cleanup(mut self) {
        remove_namespace(&self.config).await;
        self.cleaned = true;
    }

    pub async fn connection(&self) -> Connection {
        Connection::connect(&self.config.amqp_url, lapin::ConnectionProperties::default()).await.expect("connect")
    }

    /// Starts an in-process worker.
    pub fn spawn_worker(&self) -> RunningWorker {
        spawn_worker_with(self.config.clone())
    }

    /// Enqueues `urls` with `template` and returns the job ids.
    pub async fn enqueue(&self, urls: Vec<String>, template: riptide::producer::JobTemplate) -> Vec<String> {
        let report =
            riptide::producer::enqueue(&self.config, urls, &template, riptide::config::WireFormat::Msgpack, || {})
                .await
                .expect("enqueue");
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        report.accepted
    }

    /// Publishes raw bytes to the jobs exchange, as a foreign producer would.
    pub async fn publish_raw(&self, body: &[u8], content_type: Option<&str>) {
        let connection = self.connection().await;
        let channel = connection.create_channel().await.unwrap();
        channel.confirm_select(Default::default()).await.unwrap();
        let mut properties = BasicProperties::default();
        if let Some(ct) = content_type {
            properties = properties.with_content_type(ct.into());
        }
        let ns = &self.config.namespace;
        let confirm = channel
            .basic_publish(
                format!("{ns}.jobs").as_str().into(),
                format!("{ns}.jobs").as_str().into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
        connection.close(200, "ok".into()).await.unwrap();
    }

    /// Waits until `n` results arrived on the results queue (or panics after `timeout`).
    pub async fn results(&self, n: usize, timeout: Duration) -> Vec<JobResult> {
        let connection = self.connection().await;
        let channel = connection.create_channel().await.unwrap();
        let queue = format!("{}.results", self.config.namespace);
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "test".into(),
                BasicConsumeOptions { no_ack: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let deadline = Instant::now() + timeout;
        let mut results = Vec::new();
        while results.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, consumer.next()).await {
                Ok(Some(Ok(delivery))) => results.push(serde_json::from_slice(&delivery.data).unwrap()),
                _ => panic!("only {} of {n} results within {timeout:?}: {results:#?}", results.len()),
            }
        }
        connection.close(200, "ok".into()).await.unwrap();
        results
    }

    /// Results that arrive within `window` (for checking that nothing more comes).
    pub async fn results_within(&self, window: Duration) -> Vec<JobResult> {
        let connection = self.connection().await;
        let channel = connection.create_channel().await.unwrap();
        let queue = format!("{}.results", self.config.namespace);
        let mut results = Vec::new();
        let deadline = Instant::now() + window;
        while Instant::now() < deadline {
            match channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap() {
                Some(message) => results.push(serde_json::from_slice(&message.delivery.data).unwrap()),
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        connection.close(200, "ok".into()).await.unwrap();
        results
    }

    /// Takes every message now in the dead-letter queue.
    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        let connection = self.connection().await;
        let channel = connection.create_channel().await.unwrap();
        let queue = format!("{}.dlq", self.config.namespace);
        let mut letters = Vec::new();
        while let Some(message) =
            channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap()
        {
            let properties = &message.delivery.properties;
            let headers: HashMap<String, String> =
                riptide::broker::headers::to_strings(properties).into_iter().collect();
            letters.push(DeadLetter {
                body: message.delivery.data.clone(),
                content_type: properties.content_type().as_ref().map(|c| c.as_str().to_string()),
                headers,
            });
        }
        connection.close(200, "ok".into()).await.unwrap();
        letters
    }

    /// Waits until the dead-letter queue holds `n` messages, then takes them.
    pub async fn wait_dead_letters(&self, n: usize, timeout: Duration) -> Vec<DeadLetter> {
        let deadline = Instant::now() + timeout;
        let mut letters = Vec::new();
        while letters.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} dead letters within {timeout:?}: {letters:#?}",
                letters.len()
            );
            letters.extend(self.dead_letters().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        letters
    }
}

#[derive(Debug)]
pub struct DeadLetter {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub headers: HashMap<String, String>,
}

impl DeadLetter {
    pub fn reason(&self) -> &str {
        self.headers.get("x-riptide-reason").map(String::as_str).unwrap_or("")
    }
}

/// An in-process worker and its stop switch.
pub struct RunningWorker {
    pub stop: CancellationToken,
    pub handle: JoinHandle<Result<WorkerReport, riptide::worker::WorkerError>>,
}

impl RunningWorker {
    pub async fn stop(self) -> WorkerReport {
        self.stop.cancel();
        self.handle.await.unwrap().expect("worker run")
    }
}

pub fn spawn_worker_with(config: Arc<Config>) -> RunningWorker {
    let stop = CancellationToken::new();
    let handle = tokio::spawn(riptide::worker::run(config, WorkerOptions::default(), stop.clone()));
    RunningWorker { stop, handle }
}

#[derive(Clone, Default)]
struct SiteState {
    hits: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
}

impl SiteState {
    fn hit(&self, path: String) -> usize {
        let mut hits = self.hits.lock().unwrap();
        let entry = hits.entry(path).or_default();
        entry.push(Instant::now());
        entry.len()
    }
}

fn page(n: usize) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], riptide::sample_site::article_html(n, PAGE_BYTES))
        .into_response()
}

/// A client-rendered page: an empty app root that a script fills with an article after load
/// (and, 300 ms later, an element `#late`), plus a `<noscript>` asking for JavaScript.
pub fn spa_page(n: usize) -> String {
    let paragraphs: Vec<String> = (0..12)
        .map(|i| format!("Paragraph {i} of rendered story {n}: the harbour council measured the water levels again after the storm, and engineers reported that the new barriers held through the night while residents watched the tide."))
        .collect();
    let body = paragraphs.iter().map(|p| format!("<p>{p}</p>")).collect::<String>();
    format!(
        r#"<!doctype html><html lang="en"><head><title>Rendered story {n}</title></head><body>
<noscript>You need to enable JavaScript to run this app.</noscript><div id="root"></div>
<script>window.addEventListener('load', function () {{
  document.getElementById('root').innerHTML = '<article><h1>Rendered story {n}</h1>{body}</article>';
  setTimeout(function () {{ var d = document.createElement('div'); d.id = 'late'; d.textContent = 'late'; document.body.appendChild(d); }}, 300);
}});</script></body></html>"#
    )
}

/// Starts the fixture site:
/// - `/page/{n}`: an article page;
/// - `/slow/{ms}/{n}`: the same after `ms` milliseconds;
/// - `/flaky/{fails}/{key}`: 503 (Retry-After: `?retry_after` seconds if given) for the first `fails` hits of `key`, then a page;
/// - `/status/{code}`: an empty response with that status;
/// - `/hang`: never answers within a test's patience;
/// - `/huge`: 20 MB of HTML; `/binary`: an image;
/// - `/spa/{n}`: a client-rendered page (see [`spa_page`]).
pub async fn start_site() -> Site {
    let state = SiteState::default();
    let router = Router::new()
        .route(
            "/page/{n}",
            get(|State(s): State<SiteState>, Path(n): Path<usize>| async move {
                s.hit(format!("/page/{n}"));
                page(n)
            }),
        )
        .route(
            "/slow/{ms}/{n}",
            get(|State(s): State<SiteState>, Path((ms, n)): Path<(u64, usize)>| async move {
                s.hit(format!("/slow/{ms}/{n}"));
                tokio::time::sleep(Duration::from_millis(ms)).await;
                page(n)
            }),
        )
        .route("/flaky/{fails}/{key}", get(flaky))
        .route(
            "/status/{code}",
            get(|State(s): State<SiteState>, Path(code): Path<u16>| async move {
                s.hit(format!("/status/{code}"));
                StatusCode::from_u16(code).unwrap().into_response()
            }),
        )
        .route(
            "/hang",
            get(|State(s): State<SiteState>| async move {
                s.hit("/hang".into());
                tokio::time::sleep(Duration::from_secs(300)).await;
                page(0)
            }),
        )
        .route(
            "/huge",
            get(|| async {
                let mut body = String::from("<html><body>");
                while body.len() < 20 * 1024 * 1024 {
                    body.push_str("<p>filler filler filler filler filler filler filler filler</p>");
                }
                ([(header::CONTENT_TYPE, "text/html")], body).into_response()
            }),
        )
        .route("/binary", get(|| async { ([(header::CONTENT_TYPE, "image/png")], vec![0u8; 1024]).into_response() }))
        .route(
            "/spa/{n}",
            get(|State(s): State<SiteState>, Path(n): Path<usize>| async move {
                s.hit(format!("/spa/{n}"));
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], spa_page(n)).into_response()
            }),
        )
        .with_state(state.clone());
    let (addr, stop) = serve_fixture(router).await;
    Site { addr, hits: state.hits, stop }
}

async fn flaky(
    State(s): State<SiteState>,
    Path((fails, key)): Path<(usize, String)>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let n = s.hit(format!("/flaky/{fails}/{key}"));
    if n <= fails {
        let mut headers = HeaderMap::new();
        if let Some(secs) = query.as_deref().and_then(|q| q.strip_prefix("retry_after=")) {
            headers.insert(header::RETRY_AFTER, secs.parse().unwrap());
        }
        return (StatusCode::SERVICE_UNAVAILABLE, headers, "try later").into_response();
    }
    page(7)
}

/// What an [`Origin`] answers on `/robots.txt`.
#[derive(Clone, Debug)]
pub enum RobotsReply {
    /// A status with an empty body (404: no robots.txt; 503: unreachable).
    Status(u16),
    /// 200 with this body.
    Body(String),
}

/// One request as an [`Origin`] saw it.
#[derive(Clone, Debug)]
pub struct Arrival {
    pub at: Instant,
    pub path: String,
    pub status: u16,
    pub headers: HeaderMap,
}

/// A fixture origin for politeness tests: its own port (one origin each), an arrival log of
/// every request, a switchable robots.txt, and
/// - `/limited/{n}`: the origin's first `/limited` request gets 429 with `Retry-After: 2`;
/// - `/etag/{n}`: a page with an `ETag`, 304 when `If-None-Match` carries it;
/// - anything else: an article page.
pub struct Origin {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Arrival>>>,
    pub robots: Arc<Mutex<RobotsReply>>,
    stop: CancellationToken,
}

impl Origin {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Arrivals whose path starts with `prefix`, oldest first.
    pub fn arrivals(&self, prefix: &str) -> Vec<Arrival> {
        self.log.lock().unwrap().iter().filter(|a| a.path.starts_with(prefix)).cloned().collect()
    }

    pub fn set_robots(&self, reply: RobotsReply) {
        *self.robots.lock().unwrap() = reply;
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Clone)]
struct OriginState {
    log: Arc<Mutex<Vec<Arrival>>>,
    robots: Arc<Mutex<RobotsReply>>,
}

async fn origin_handler(State(s): State<OriginState>, request: axum::extract::Request) -> Response {
    let at = Instant::now();
    let path = request.uri().path().to_string();
    let headers = request.headers().clone();
    let (status, response) = if path == "/robots.txt" {
        match s.robots.lock().unwrap().clone() {
            RobotsReply::Status(code) => (code, StatusCode::from_u16(code).unwrap().into_response()),
            RobotsReply::Body(body) => (200, ([(header::CONTENT_TYPE, "text/plain")], body).into_response()),
        }
    } else if path.starts_with("/limited/") {
        let first = !s.log.lock().unwrap().iter().any(|a| a.path.starts_with("/limited/"));
        if first {
            (429, (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "2")], "slow down").into_response())
        } else {
            (200, page(3))
        }
    } else if path.starts_with("/etag/") {
        let etag = format!("\"v1-{path}\"");
        let matches = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str());
        if matches {
            (304, (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response())
        } else {
            let body = riptide::sample_site::article_html(5, PAGE_BYTES);
            (
                200,
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()), (header::ETAG, etag)], body)
                    .into_response(),
            )
        }
    } else {
        (200, page(path.len()))
    };
    s.log.lock().unwrap().push(Arrival { at, path, status, headers });
    response
}

/// Serves `router` on a fresh loopback port until the returned token is cancelled.
async fn serve_fixture(router: Router) -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, router).with_graceful_shutdown(async move { stopped.cancelled().await }).await.unwrap();
    });
    (addr, stop)
}

/// Starts a fixture origin on its own loopback port.
pub async fn start_origin(robots: RobotsReply) -> Origin {
    let state = OriginState { log: Arc::default(), robots: Arc::new(Mutex::new(robots)) };
    let router = Router::new().fallback(origin_handler).with_state(state.clone());
    let (addr, stop) = serve_fixture(router).await;
    Origin { addr, log: state.log, robots: state.robots, stop }
}

/// A free TCP port on loopback (bound, then released).
/// A file of the repository. Cargo sets `CARGO_MANIFEST_DIR` when it runs a test, and it is
/// read then, not at compile time: a test binary reused from a clone at another path (one
/// shared target dir, as `.ci/run` sets up) would otherwise look in that clone.
pub fn repo_file(relative: &str) -> std::path::PathBuf {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests");
    std::path::Path::new(&root).join(relative)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A private `redis-server` on `port`, for tests that stop and start Redis.
pub fn start_redis(port: u16) -> std::process::Child {
    start_redis_with(port, &["--appendonly", "no"])
}

/// A private `redis-server` on `port` with extra arguments (an AOF directory, say).
pub fn start_redis_with(port: u16, extra: &[&str]) -> std::process::Child {
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/setup.sh)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A private RabbitMQ node (own node name, AMQP and distribution ports, data directory), for
/// tests that stop and start the broker without disturbing the shared one that every other
/// test uses. Stopped and removed on drop.
pub struct PrivateRabbit {
    pub node: String,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl PrivateRabbit {
    /// Starts the node and waits until it accepts AMQP connections (about 10 s here).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let dist_port = free_port();
        let node = format!("rt-{}-{}@localhost", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .unwrap();
        // As root, rabbitmq-server drops to the rabbitmq user, which must own the directory.
        if is_root() {
            let status = std::process::Command::new("chown")
                .args(["-R", "rabbitmq:rabbitmq", &dir.path().to_string_lossy()])
                .status()
                .unwrap();
            assert!(status.success(), "chown of the private broker's directory failed");
        }
        let status = std::process::Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", path("pid"))
            .env("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("rabbitmq-server must be installed (scripts/setup.sh)");
        assert!(status.success(), "rabbitmq-server -detached failed");
        let rabbit = PrivateRabbit { node, port, dir };
        rabbit.wait_for_port(true);
        rabbit
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn ctl(&self, args: &[&str]) {
        let status = std::process::Command::new("rabbitmqctl")
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "rabbitmqctl {args:?} failed");
    }

    /// `rabbitmqctl stop_app`: the broker stops serving (connections drop), the node stays.
    pub fn stop_app(&self) {
        self.ctl(&["stop_app"]);
        self.wait_for_port(false);
    }

    /// `rabbitmqctl start_app`, waiting until AMQP is served again.
    pub fn start_app(&self) {
        self.ctl(&["start_app"]);
        self.wait_for_port(true);
    }

    fn wait_for_port(&self, open: bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() != open {
            assert!(
                Instant::now() < deadline,
                "the private broker's port did not become open={open}; logs in {:?}",
                self.dir.path()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Collects every result of a namespace in the background.
pub struct Collector {
    results: Arc<Mutex<Vec<riptide::job::JobResult>>>,
    stop: CancellationToken,
}

impl Collector {
    pub async fn start(env: &TestEnv) -> Self {
        let connection = env.connection().await;
        let channel = connection.create_channel().await.unwrap();
        let queue = format!("{}.results", env.config.namespace);
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "collector".into(),
                BasicConsumeOptions { no_ack: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let results = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (sink, stopped) = (results.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stopped.cancelled() => break,
                    next = consumer.next() => match next {
                        Some(Ok(delivery)) => sink.lock().unwrap().push(serde_json::from_slice::<riptide::job::JobResult>(&delivery.data).unwrap()),
                        _ => break,
                    },
                }
            }
            let _ = connection.close(200, "done".into()).await;
        });
        Collector { results, stop }
    }

    /// Every result so far.
    pub fn results_snapshot(&self) -> Vec<riptide::job::JobResult> {
        self.results.lock().unwrap().clone()
    }

    pub fn distinct_jobs(&self) -> usize {
        self.results.lock().unwrap().iter().map(|r| r.job_id.clone()).collect::<HashSet<_>>().len()
    }

    pub async fn wait_for_jobs(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.distinct_jobs() < n {
            assert!(Instant::now() < deadline, "only {} of {n} jobs finished within {timeout:?}", self.distinct_jobs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn finish(self) -> Vec<riptide::job::JobResult> {
        self.stop.cancel();
        self.results.lock().unwrap().clone()
    }
}

/// Every id has at least one ok result, and duplicates (redeliveries) carry the same
/// document. Returns how many duplicates there were.
pub fn assert_each_job_done_once(ids: &[String], results: &[riptide::job::JobResult]) -> usize {
    let mut by_job: HashMap<&str, Vec<&riptide::job::JobResult>> = HashMap::new();
    for result in results {
        by_job.entry(result.job_id.as_str()).or_default().push(result);
    }
    for id in ids {
        let seen = by_job.get(id.as_str()).unwrap_or_else(|| panic!("job {id} was lost"));
        assert!(seen.iter().all(|r| r.outcome == riptide::job::Outcome::Ok), "{seen:?}");
        let docs: HashSet<_> = seen.iter().map(|r| r.doc_key.clone()).collect();
        assert_eq!(docs.len(), 1, "duplicates of {id} must carry the same document: {seen:?}");
    }
    assert_eq!(by_job.len(), ids.len(), "results for unknown jobs");
    results.len() - ids.len()
}

pub fn spawn_worker_process(env: &TestEnv) -> Child {
    Command::new(env!("CARGO_BIN_EXE_riptide"))
        .args(["worker"])
        .env("RIPTIDE_NAMESPACE", &env.config.namespace)
        .env("RIPTIDE_ALLOW_PRIVATE_NETWORKS", "true")
        .env("RIPTIDE_WORKER__CONCURRENCY", "8")
        .env("RIPTIDE_WORKER__SHUTDOWN_GRACE_SECS", "5")
        // Pacing off, as in `test_config`: many pages from one loopback origin.
        .env("RIPTIDE_POLITENESS__DEFAULT_DELAY_MS", "0")
        .env("RIPTIDE_POLITENESS__BASE_BLOCK_MS", "200")
        .env("RIPTIDE_POLITENESS__MAX_BLOCK_SECS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the riptide binary")
}

pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "worker did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
