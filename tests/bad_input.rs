//! Bad messages and hostile URLs: each is dead-lettered byte for byte with a clear reason,
//! and the good job sent alongside them is not lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::TestEnv;
use riptide::job::{JobRequest, Outcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_dead_lettered_with_reasons_and_nothing_else_is_lost() {
    let env = TestEnv::new().await;
    let good =
        serde_json::to_vec(&JobRequest { id: Some("good-1".into()), ..JobRequest::for_url(env.site.url("/page/1")) })
            .unwrap();
    let truncated = {
        let full = rmp_serde::to_vec_named(&JobRequest::for_url(env.site.url("/page/2"))).unwrap();
        full[..full.len() / 2].to_vec()
    };
    let ten_mb = {
        let mut body = br#"{"url":"http://example.com/","meta":{"pad":""#.to_vec();
        body.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        body.extend(br#""}}"#);
        body
    };
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("undecodable", b"\x00\x01\x02 not a job \xff\xfe".to_vec(), None),
        ("undecodable", truncated, Some("application/msgpack")),
        ("invalid_job", br#"{"url": ["not", "a", "string"], "priority": "high"}"#.to_vec(), Some("application/json")),
        ("too_large", ten_mb, Some("application/json")),
        ("invalid_job", br#"{"url": "file:///etc/passwd"}"#.to_vec(), Some("application/json")),
        ("undecodable", br#"{"url": "http://example.com/"}"#.to_vec(), Some("text/csv")),
    ];
    for (_, body, content_type) in &cases {
        env.publish_raw(body, *content_type).await;
    }
    env.publish_raw(&good, Some("application/json")).await;

    let worker = env.spawn_worker();
    let letters = env.wait_dead_letters(cases.len(), Duration::from_secs(30)).await;
    let results = env.results(1, Duration::from_secs(20)).await;
    let report = worker.stop().await;

    assert_eq!(results[0].job_id, "good-1");
    assert_eq!(results[0].outcome, Outcome::Ok);
    assert_eq!(report.dead, cases.len() as u64);
    assert_eq!(letters.len(), cases.len());
    for (reason, body, content_type) in &cases {
        let letter =
            letters.iter().find(|l| &l.body == body).unwrap_or_else(|| panic!("no dead letter for a {reason} case"));
        assert_eq!(letter.reason(), *reason, "{:?}", letter.headers);
        assert_eq!(letter.content_type.as_deref(), *content_type, "content type kept");
        assert!(!letter.headers["x-riptide-error"].is_empty());
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_refused_unless_allowed() {
    let env = TestEnv::with(|c| c.allow_private_networks = false).await;
    let urls = [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        format!("http://localhost:{}/page/1", env.site.addr.port()),
        env.site.url("/page/1"),
    ];
    for url in &urls {
        env.publish_raw(&serde_json::to_vec(&JobRequest::for_url(url.clone())).unwrap(), Some("application/json"))
            .await;
    }
    let worker = env.spawn_worker();
    let letters = env.wait_dead_letters(urls.len(), Duration::from_secs(30)).await;
    worker.stop().await;

    for letter in &letters {
        assert_eq!(letter.reason(), "blocked_address", "{:?}", letter.headers);
        assert!(letter.headers["x-riptide-error"].contains("non-public"), "{:?}", letter.headers);
    }
    assert!(env.site.hits("/page/1").is_empty(), "no request may reach the private address");
    env.cleanup().await;
}
