//! The browser's only way out: an in-process forward proxy on loopback that Chromium must use
//! for every request (`--proxy-server`, loopback included), which resolves each host once,
//! under a time limit, checks every address and connects to exactly the address it checked.
//!
//! It owns the listener, the per-connection tunnel (plain HTTP, `CONNECT` for HTTPS and
//! WebSockets), the resolver seam and the record of recent refusals (so a render can say its
//! page was blocked). It must not speak CDP nor decide resource-type blocking (`guard.rs` and
//! the interceptor in `instance.rs` do). Fail closed: a lookup that fails or times out, a
//! request it cannot parse, an address that is not public: nothing is connected.
//!
//! Why a proxy: checking a name and letting Chromium resolve it again lets a DNS answer change
//! in between (rebinding), and WebSocket handshakes were never seen by request interception.
//! Chromium sends even `ws://` through `CONNECT`, and with a fixed proxy it resolves nothing
//! itself. WebRTC's UDP is the one path around a proxy; the launch disables it.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fetch::guard::{BlockedAddress, is_non_public};

use super::lock::lock;

/// Longest request head (request line and headers) read from Chromium, bytes.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long Chromium may take to send a request head on a new connection.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one connect to a checked address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections tunnelled at once; more wait in the listener's backlog.
const MAX_CONNECTIONS: usize = 512;
/// Refusals remembered for renders to report (oldest forgotten first).
const BLOCKED_MEMORY: usize = 64;

/// Resolves a host name to socket addresses. The proxy's only source of addresses, so tests
/// can answer as a rebinding DNS server would.
pub trait BrowserResolver: Send + Sync + std::fmt::Debug {
    /// All addresses of `host`, with `port`.
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>>;
}

/// The system resolver (`getaddrinfo` on a blocking thread, via tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl BrowserResolver for SystemResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// What the proxy lets through.
#[derive(Debug, Clone)]
pub(crate) struct EgressRules {
    /// Let every address through (`allow_private_networks`, local tests).
    pub allow_private: bool,
    /// `(host, port)` of `guard_allow_origins`, reachable even when not public.
    pub allow: Vec<(String, u16)>,
    /// Time limit of one lookup.
    pub lookup_timeout: Duration,
}

/// The running proxy. `close` stops it; dropping it stops accepting as well.
#[derive(Debug)]
pub(crate) struct EgressProxy {
    addr: SocketAddr,
    blocked: Arc<Mutex<VecDeque<(String, BlockedAddress)>>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Why a connection was not made.
#[derive(Debug)]
enum Refusal {
    Blocked(BlockedAddress),
    Lookup(String),
}

struct Shared {
    rules: EgressRules,
    resolver: Arc<dyn BrowserResolver>,
    blocked: Arc<Mutex<VecDeque<(String, BlockedAddress)>>>,
}

impl EgressProxy {
    /// Binds `127.0.0.1:0` and starts accepting.
    pub(crate) async fn start(rules: EgressRules, resolver: Arc<dyn BrowserResolver>) -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let blocked = Arc::new(Mutex::new(VecDeque::new()));
        let shared = Arc::new(Shared { rules, resolver, blocked: blocked.clone() });
        let (shutdown, tasks) = (CancellationToken::new(), TaskTracker::new());
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let (stop, spawner) = (shutdown.clone(), tasks.clone());
        tasks.spawn(async move {
            loop {
                let permit = tokio::select! {
                    () = stop.cancelled() => return,
                    permit = permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
                };
                let accepted = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else { continue };
                let (shared, stop) = (shared.clone(), stop.clone());
                spawner.spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = serve(client, &shared) => {}
                    }
                    drop(permit);
                });
            }
        });
        Ok(EgressProxy { addr, blocked, shutdown, tasks })
    }

    /// Where Chromium must send everything.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The last refusal for `host:port`, if it is among the recent ones.
    pub(crate) fn blocked(&self, host: &str, port: u16) -> Option<BlockedAddress> {
        let authority = authority(host, port);
        lock(&self.blocked).iter().rev().find(|(seen, _)| *seen == authority).map(|(_, blocked)| blocked.clone())
    }

    /// Stops accepting and closes every tunnel.
    pub(crate) async fn close(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn authority(host: &str, port: u16) -> String {
    format!("{}:{port}", host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase())
}

/// One connection from Chromium: read the head, decide, connect, tunnel.
async fn serve(mut client: TcpStream, shared: &Shared) {
    let Ok(Ok((head, rest))) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await else { return };
    let Some(request) = parse_head(&head) else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").await;
        return;
    };
    let upstream = match connect(shared, &request.host, request.port).await {
        Ok(upstream) => upstream,
        Err(refusal) => {
            refuse(&mut client, shared, &request, refusal).await;
            return;
        }
    };
    let mut upstream = upstream;
    let sent = if request.connect {
        client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await
    } else {
        upstream.write_all(&request.forward_head).await
    };
    if sent.is_err() || (!rest.is_empty() && upstream.write_all(&rest).await.is_err()) {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Answers a refused request: 403 to a `CONNECT` (Chromium fails the load), a closed
/// connection to plain HTTP (a 403 would be rendered as the site's own answer).
async fn refuse(client: &mut TcpStream, shared: &Shared, request: &Head, refusal: Refusal) {
    match &refusal {
        Refusal::Blocked(blocked) => {
            tracing::info!(host = %blocked.host, addr = %blocked.addr, port = request.port, "Browser request blocked: non-public address.");
            let mut recent = lock(&shared.blocked);
            if recent.len() >= BLOCKED_MEMORY {
                recent.pop_front();
            }
            recent.push_back((authority(&request.host, request.port), blocked.clone()));
        }
        Refusal::Lookup(error) => {
            tracing::debug!(host = %request.host, error = %error, "Browser request refused: lookup failed.");
        }
    }
    if request.connect {
        let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").await;
    }
}

/// Resolves once (literal IPs are not resolved), checks every address, connects to one of
/// exactly those.
async fn connect(shared: &Shared, host: &str, port: u16) -> Result<TcpStream, Refusal> {
    let rules = &shared.rules;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::time::timeout(rules.lookup_timeout, shared.resolver.lookup(bare, port)).await {
            Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
            Ok(Ok(_)) => return Err(Refusal::Lookup("no address".into())),
            Ok(Err(error)) => return Err(Refusal::Lookup(error.to_string())),
            Err(_) => return Err(Refusal::Lookup(format!("no answer within {:?}", rules.lookup_timeout))),
        },
    };
    let allowed = rules.allow_private
        || rules
            .allow
            .iter()
            .any(|(allowed, allowed_port)| *allowed_port == port && allowed.eq_ignore_ascii_case(bare));
    if !allowed && let Some(bad) = addrs.iter().find(|addr| is_non_public(addr.ip())) {
        return Err(Refusal::Blocked(BlockedAddress { host: bare.to_owned(), addr: bad.ip() }));
    }
    for addr in &addrs {
        if let Ok(Ok(stream)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            return Ok(stream);
        }
    }
    Err(Refusal::Lookup("no address answered".into()))
}

/// Reads until the end of the request head; returns the head and any bytes after it.
async fn read_head(client: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(chunk.get(..read).unwrap_or_default());
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Ok((buffer, rest));
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    connect: bool,
    host: String,
    port: u16,
    /// For plain HTTP: the head to send upstream (origin-form target, proxy headers removed,
    /// `Connection: close` unless it is an upgrade, so a kept-alive connection never carries
    /// a request for another host to this address).
    forward_head: Vec<u8>,
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target, version) = (request_line.next()?, request_line.next()?, request_line.next()?);
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = target.rsplit_once(':')?;
        return Some(Head { connect: true, host: host.to_owned(), port: port.parse().ok()?, forward_head: Vec::new() });
    }
    let url = url::Url::parse(target).ok()?;
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?.to_owned();
    let port = url.port_or_known_default()?;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let headers: Vec<&str> = lines.filter(|line| !line.is_empty()).collect();
    let name_is = |line: &str, name: &str| line.split(':').next().is_some_and(|n| n.trim().eq_ignore_ascii_case(name));
    let upgrade = headers.iter().any(|line| name_is(line, "upgrade"));
    let mut forward = format!("{method} {path} {version}\r\n");
    for line in headers {
        let hop = ["proxy-connection", "proxy-authorization", "keep-alive"].iter().any(|name| name_is(line, name));
        if hop || (!upgrade && name_is(line, "connection")) {
            continue;
        }
        forward.push_str(line);
        forward.push_str("\r\n");
    }
    if !upgrade {
        forward.push_str("Connection: close\r\n");
    }
    forward.push_str("\r\n");
    Some(Head { connect: false, host, port, forward_head: forward.into_bytes() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_absolute_form_heads_parse() {
        let connect = parse_head(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n");
        assert_eq!(connect.map(|h| (h.connect, h.host, h.port)), Some((true, "example.org".into(), 443)));
        let v6 = parse_head(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n");
        assert_eq!(v6.map(|h| (h.host, h.port)), Some(("[::1]".into(), 8443)));
        let get = parse_head(
            b"GET http://a.test:8080/p?q=1 HTTP/1.1\r\nHost: a.test:8080\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\n\r\n",
        );
        let get = get.map(|h| (h.host, h.port, String::from_utf8(h.forward_head).unwrap_or_default()));
        assert_eq!(
            get,
            Some((
                "a.test".into(),
                8080,
                "GET /p?q=1 HTTP/1.1\r\nHost: a.test:8080\r\nConnection: close\r\n\r\n".into()
            ))
        );
        assert_eq!(parse_head(b"GET /relative HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse_head(b"GET ftp://x/ HTTP/1.1\r\n\r\n"), None);
    }
}
