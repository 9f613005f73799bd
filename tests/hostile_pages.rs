//! Hostile pages and hostile jobs through the whole worker: each ends as a clear refusal or
//! error (its reason named in the failed result and the dead letter) within its deadline, the
//! worker stays alive, and the good job sent after all of them succeeds.
//!
//! The pages come from a fixture server of this file on loopback (a gzip bomb, an endless
//! chunked body, a body trickling one byte a second, redirect loops, 200,000 attributes on one
//! tag, ...); the jobs from the producer side (ids with CR/LF, numbers out of range in every
//! numeric field, URLs no crawler should follow).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::TestEnv;
use riptide::job::{JobRequest, Outcome};

/// The job budget of every hostile case: each must end well within it.
const TIMEOUT_MS: u64 = 4000;

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn gzip_bomb() -> Vec<u8> {
    // 1 GiB of zeros compresses to about 1 MiB; the fetcher must stop at its 10 MiB cap.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.finish().unwrap()
}

async fn hostile_site() -> std::net::SocketAddr {
    let bomb = gzip_bomb();
    let router = Router::new()
        .route(
            "/bomb",
            get(move || {
                let bomb = bomb.clone();
                async move {
                    ([(header::CONTENT_TYPE, "text/html"), (header::CONTENT_ENCODING, "gzip")], bomb).into_response()
                }
            }),
        )
        .route(
            "/endless",
            get(|| async {
                let chunk = bytes::Bytes::from(vec![b'a'; 64 * 1024]);
                let stream = futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
                ([(header::CONTENT_TYPE, "text/html")], Body::from_stream(stream)).into_response()
            }),
        )
        .route(
            "/trickle",
            get(|| async {
                let stream = futures_util::stream::unfold(0u32, |n| async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"<")), n + 1))
                });
                ([(header::CONTENT_TYPE, "text/html")], Body::from_stream(stream)).into_response()
            }),
        )
        .route("/loop", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]).into_response() }))
        .route(
            "/pingpong/a",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/pingpong/b")]).into_response() }),
        )
        .route(
            "/pingpong/b",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/pingpong/a")]).into_response() }),
        )
        .route(
            "/to-file",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "file:///etc/passwd")]).into_response() }),
        )
        .route(
            "/attrs",
            get(|| async {
                let attrs: String = (0..200_000).map(|i| format!(" a{i}=\"v{i}\"")).collect();
                html(format!("<html><body><div{attrs}>text</div></body></html>"))
            }),
        )
        .route(
            "/deep",
            get(|| async { html(format!("<html><body>{}deep text{}</body></html>", "<div>".repeat(100_000), "</div>".repeat(100_000))) }),
        )
        .route(
            "/entities",
            get(|| async { html(format!("<html><body><p>{}</p></body></html>", "&amp;&#x1F600;&#99999999;&bogus;".repeat(50_000))) }),
        )
        .route(
            "/garbage",
            get(|| async {
                let mut body = b"<html><body><p>".to_vec();
                body.extend((0..2_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
                ([(header::CONTENT_TYPE, "text/html")], body).into_response()
            }),
        )
        .route(
            "/bad-gzip",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/html"), (header::CONTENT_ENCODING, "gzip")], b"not gzip at all".to_vec())
                    .into_response()
            }),
        )
        .route(
            "/dates",
            get(|| async {
                html(r#"<html><head><meta property="article:published_time" content="2019-11-€5T99:99"></head><body><time datetime="2019-11-€5">x</time><time datetime="９９９９-１３">y</time><p>Body text of a page with hostile dates in it, long enough to count as an article.</p></body></html>"#.to_string())
            }),
        )
        .route(
            "/unclosed",
            get(|| async { html(format!("<html><head><title>t{}", "<p><b><i><table><tr><td>".repeat(20_000))) }),
        )
        .route("/empty", get(|| async { html(String::new()) }))
        .route("/no-content", get(|| async { StatusCode::NO_CONTENT.into_response() }))
        .route(
            "/script-only",
            get(|| async { html(format!("<html><body><script>{}</script></body></html>", "var a=1;".repeat(500_000))) }),
        )
        .route("/good", get(|| async { html(riptide::sample_site::article_html(3, 20 * 1024)) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// What each hostile page may end as: a failure with one of `reasons`, or (for pages that are
/// merely ugly) an `ok` document.
struct Case {
    path: &'static str,
    reasons: &'static [&'static str],
    may_succeed: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pages_end_in_clear_errors_and_the_worker_carries_on() {
    let env = TestEnv::with(|c| c.worker.concurrency = 8).await;
    let addr = hostile_site().await;
    let cases = [
        Case { path: "/bomb", reasons: &["body_too_large"], may_succeed: false },
        Case { path: "/endless", reasons: &["body_too_large"], may_succeed: false },
        Case { path: "/trickle", reasons: &["timeout"], may_succeed: false },
        Case { path: "/loop", reasons: &["too_many_redirects"], may_succeed: false },
        Case { path: "/pingpong/a", reasons: &["too_many_redirects"], may_succeed: false },
        // The HTTP client does not follow a redirect to another scheme: the 302 stands.
        Case { path: "/to-file", reasons: &["invalid_job", "http_status"], may_succeed: false },
        Case { path: "/bad-gzip", reasons: &["connect"], may_succeed: false },
        Case { path: "/attrs", reasons: &["extraction"], may_succeed: true },
        Case { path: "/deep", reasons: &["extraction"], may_succeed: true },
        Case { path: "/entities", reasons: &["extraction"], may_succeed: true },
        Case { path: "/garbage", reasons: &["extraction"], may_succeed: true },
        Case { path: "/dates", reasons: &[], may_succeed: true },
        Case { path: "/unclosed", reasons: &["extraction"], may_succeed: true },
        Case { path: "/empty", reasons: &["extraction"], may_succeed: true },
        Case { path: "/no-content", reasons: &["extraction", "http_status"], may_succeed: true },
        Case { path: "/script-only", reasons: &["extraction"], may_succeed: true },
    ];
    for case in &cases {
        let job = JobRequest {
            id: Some(format!("hostile{}", case.path.replace('/', "-"))),
            max_attempts: Some(1),
            timeout_ms: Some(TIMEOUT_MS),
            ..JobRequest::for_url(format!("http://{addr}{}", case.path))
        };
        env.publish_raw(&serde_json::to_vec(&job).unwrap(), Some("application/json")).await;
    }
    let good = JobRequest { id: Some("good-after".into()), ..JobRequest::for_url(format!("http://{addr}/good")) };
    env.publish_raw(&serde_json::to_vec(&good).unwrap(), Some("application/json")).await;

    let started = Instant::now();
    let worker = env.spawn_worker();
    let results = env.results(cases.len() + 1, Duration::from_secs(90)).await;
    let elapsed = started.elapsed();
    assert!(!worker.handle.is_finished(), "the worker died");
    let report = worker.stop().await;
    let by_id: HashMap<&str, &riptide::job::JobResult> = results.iter().map(|r| (r.job_id.as_str(), r)).collect();
    for case in &cases {
        let id = format!("hostile{}", case.path.replace('/', "-"));
        let result = by_id.get(id.as_str()).unwrap_or_else(|| panic!("no result for {}", case.path));
        let reason = result.error.as_ref().map(|e| e.reason.as_str());
        eprintln!(
            "{:<14} {:?} {:?} ({} ms)",
            case.path,
            result.outcome,
            reason,
            result.timings.fetch_ms + result.timings.extract_ms
        );
        match result.outcome {
            Outcome::Ok => assert!(case.may_succeed, "{} was stored as ok", case.path),
            Outcome::Failed => {
                let reason = reason.unwrap_or_default();
                assert!(
                    case.reasons.contains(&reason),
                    "{} failed with {reason:?}, expected one of {:?}",
                    case.path,
                    case.reasons
                );
                let message = &result.error.as_ref().unwrap().message;
                assert!(!message.is_empty(), "{}: an error without a message", case.path);
            }
            Outcome::Cached | Outcome::NotModified => panic!("{}: nothing was stored before", case.path),
        }
    }
    assert_eq!(by_id["good-after"].outcome, Outcome::Ok, "the good job after the hostile ones");
    eprintln!("{} hostile pages and a good one in {elapsed:?}; report {report:?}", cases.len());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_jobs_are_refused_naming_the_field() {
    let env = TestEnv::new().await;
    let url = env.site.url("/page/1");
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("id", serde_json::json!({"url": url, "id": "evil\r\nX-Injected: 1"})),
        ("id", serde_json::json!({"url": url, "id": "x".repeat(10_000)})),
        ("priority", serde_json::json!({"url": url, "priority": 65536})),
        ("max_attempts", serde_json::json!({"url": url, "max_attempts": 0})),
        ("max_attempts", serde_json::json!({"url": url, "max_attempts": 4_294_967_296u64})),
        ("timeout_ms", serde_json::json!({"url": url, "timeout_ms": -1})),
        ("timeout_ms", serde_json::json!({"url": url, "timeout_ms": 18_446_744_073_709_551_615u64})),
        ("max_age_secs", serde_json::json!({"url": url, "max_age_secs": -7})),
        ("headers", serde_json::json!({"url": url, "headers": {"X-A": "a\r\nb"}})),
        ("headers", serde_json::json!({"url": url, "headers": {"Transfer-Encoding": "chunked"}})),
        ("url", serde_json::json!({"url": "javascript:alert(1)"})),
        ("url", serde_json::json!({"url": "data:text/html,<p>x</p>"})),
        ("url", serde_json::json!({"url": format!("http://a.example/{}", "x".repeat(5000))})),
        ("url", serde_json::json!({"url": "http://"})),
        ("mode", serde_json::json!({"url": url, "mode": "all-of-it"})),
        ("render", serde_json::json!({"url": url, "render": "sometimes"})),
    ];
    for (_, job) in &cases {
        env.publish_raw(&serde_json::to_vec(job).unwrap(), Some("application/json")).await;
    }
    env.publish_raw(
        &serde_json::to_vec(&JobRequest { id: Some("fine".into()), ..JobRequest::for_url(url.clone()) }).unwrap(),
        Some("application/json"),
    )
    .await;
    let worker = env.spawn_worker();
    let letters = env.wait_dead_letters(cases.len(), Duration::from_secs(30)).await;
    let results = env.results(1, Duration::from_secs(30)).await;
    let report = worker.stop().await;
    assert_eq!(results.iter().find(|r| r.job_id == "fine").map(|r| r.outcome), Some(Outcome::Ok));
    assert_eq!(report.dead, cases.len() as u64);
    for (field, job) in &cases {
        let body = serde_json::to_vec(job).unwrap();
        let letter = letters.iter().find(|l| l.body == body).unwrap_or_else(|| panic!("no dead letter for {field}"));
        assert_eq!(letter.reason(), "invalid_job", "{field}: {:?}", letter.headers);
        let error = &letter.headers["x-riptide-error"];
        assert!(error.contains(field), "{field}: the error does not name the field: {error}");
        assert!(!error.contains('\r') && !error.contains('\n'), "{field}: CR/LF reached a header: {error:?}");
    }
    env.cleanup().await;
}
