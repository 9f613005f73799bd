//! The job pipeline end to end on the real RabbitMQ and Redis: success, retries, dead letters,
//! timeouts, the cache, priorities.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::TestEnv;
use riptide::job::Outcome;
use riptide::producer::JobTemplate;
use riptide::store::{Store, StoredDoc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_jobs_end_in_results_and_redis() {
    let env = TestEnv::new().await;
    let urls: Vec<String> = (0..60).map(|n| env.site.url(&format!("/page/{n}"))).collect();
    let ids = env.enqueue(urls, JobTemplate::default()).await;
    let worker = env.spawn_worker();
    let results = env.results(60, Duration::from_secs(60)).await;
    let report = worker.stop().await;

    assert_eq!(report.done, 60);
    let got: HashSet<&str> = results.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect());
    let store = Store::new(&env.config.redis_url, &env.config.namespace, &env.config.store).unwrap();
    for result in &results {
        assert_eq!(result.outcome, Outcome::Ok);
        assert_eq!(result.http_status, Some(200));
        let summary = result.summary.as_ref().unwrap();
        assert!(summary.title.as_deref().unwrap_or("").contains("Storm report"), "{summary:?}");
        assert!(summary.word_count > 500, "{summary:?}");
        let stored: StoredDoc =
            store.get_doc(result.doc_key.as_ref().unwrap()).await.unwrap().expect("document in Redis");
        assert!(stored.doc.text.len() > 1000);
        assert!(!stored.doc.links.is_empty(), "links are extracted");
        let record = store.job_record(&result.job_id).await.unwrap();
        assert_eq!(record.get("state").map(String::as_str), Some("done"));
    }
    assert!(env.dead_letters().await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_failing_twice_with_503_succeeds_on_the_third_attempt() {
    let env = TestEnv::new().await;
    let ids = env.enqueue(vec![env.site.url("/flaky/2/a")], JobTemplate::default()).await;
    let worker = env.spawn_worker();
    let results = env.results(1, Duration::from_secs(30)).await;
    // Nothing else may follow: one job, one result.
    let extra = env.results_within(Duration::from_millis(1500)).await;
    let report = worker.stop().await;

    assert_eq!(results[0].job_id, ids[0]);
    assert_eq!(results[0].outcome, Outcome::Ok);
    assert_eq!(results[0].attempt, 3);
    assert!(extra.is_empty(), "{extra:?}");
    assert_eq!(report.retried, 2);
    assert_eq!(env.site.hits("/flaky/2/a").len(), 3);
    assert!(env.dead_letters().await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let env = TestEnv::new().await;
    env.enqueue(vec![env.site.url("/flaky/1/b?retry_after=3")], JobTemplate::default()).await;
    let worker = env.spawn_worker();
    let results = env.results(1, Duration::from_secs(30)).await;
    worker.stop().await;

    assert_eq!(results[0].attempt, 2);
    let hits = env.site.hits("/flaky/1/b");
    assert_eq!(hits.len(), 2);
    let gap = hits[1] - hits[0];
    assert!(gap >= Duration::from_secs(3), "retried after {gap:?}, the site asked for 3 s");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_goes_to_the_dead_letter_queue_with_its_reason() {
    let env = TestEnv::new().await;
    let ids = env.enqueue(vec![env.site.url("/status/404")], JobTemplate::default()).await;
    let worker = env.spawn_worker();
    let letters = env.wait_dead_letters(1, Duration::from_secs(20)).await;
    let results = env.results(1, Duration::from_secs(10)).await;
    worker.stop().await;

    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.reason(), "http_status");
    assert!(letter.headers["x-riptide-error"].contains("404"), "{letter:?}");
    assert_eq!(letter.headers["x-riptide-attempts"], "1");
    assert_eq!(letter.headers["x-riptide-job-id"], ids[0]);
    assert!(letter.headers.contains_key("x-riptide-failed-at"));
    // Permanent: one fetch, no retry.
    assert_eq!(env.site.hits("/status/404").len(), 1);
    assert_eq!(results[0].outcome, Outcome::Failed);
    assert_eq!(results[0].error.as_ref().unwrap().reason, "http_status");
    let store = Store::new(&env.config.redis_url, &env.config.namespace, &env.config.store).unwrap();
    let record = store.job_record(&ids[0]).await.unwrap();
    assert_eq!(record.get("state").map(String::as_str), Some("dead"));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_page_times_out_is_retried_then_dead_lettered() {
    let env = TestEnv::new().await;
    let template = JobTemplate { timeout_ms: Some(300), max_attempts: Some(2), ..JobTemplate::default() };
    env.enqueue(vec![env.site.url("/hang")], template).await;
    let worker = env.spawn_worker();
    let letters = env.wait_dead_letters(1, Duration::from_secs(20)).await;
    let report = worker.stop().await;

    assert_eq!(letters[0].reason(), "timeout");
    assert_eq!(letters[0].headers["x-riptide-attempts"], "2");
    assert_eq!(env.site.hits("/hang").len(), 2);
    assert_eq!(report.retried, 1);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_stored_document_is_served_from_the_cache() {
    let env = TestEnv::new().await;
    let url = env.site.url("/page/3");
    let template = JobTemplate { max_age_secs: Some(600), ..JobTemplate::default() };
    env.enqueue(vec![url.clone()], template.clone()).await;
    let worker = env.spawn_worker();
    let first = env.results(1, Duration::from_secs(20)).await;
    env.enqueue(vec![url], template).await;
    let second = env.results(1, Duration::from_secs(20)).await;
    worker.stop().await;

    assert_eq!(first[0].outcome, Outcome::Ok);
    assert_eq!(second[0].outcome, Outcome::Cached);
    assert_eq!(first[0].doc_key, second[0].doc_key);
    assert_eq!(env.site.hits("/page/3").len(), 1, "the cached job must not fetch");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_pages_fail_permanently() {
    let env = TestEnv::new().await;
    env.enqueue(vec![env.site.url("/huge"), env.site.url("/binary")], JobTemplate::default()).await;
    let worker = env.spawn_worker();
    let letters = env.wait_dead_letters(2, Duration::from_secs(30)).await;
    worker.stop().await;

    let mut reasons: Vec<&str> = letters.iter().map(|l| l.reason()).collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["body_too_large", "unsupported_content_type"]);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_priority_jobs_go_first_without_starving_the_rest() {
    let env = TestEnv::with(|c| {
        c.worker.concurrency = 1;
        c.worker.prefetch = 4;
    })
    .await;
    let normal =
        env.enqueue((0..12).map(|n| env.site.url(&format!("/page/{n}"))).collect(), JobTemplate::default()).await;
    let high_template = JobTemplate { priority: Some(9), ..JobTemplate::default() };
    let high = env.enqueue((100..106).map(|n| env.site.url(&format!("/page/{n}"))).collect(), high_template).await;
    let worker = env.spawn_worker();
    let results = env.results(18, Duration::from_secs(60)).await;
    worker.stop().await;

    let order: Vec<bool> = results.iter().map(|r| high.contains(&r.job_id)).collect();
    let first_eight_high = order[..8].iter().filter(|h| **h).count();
    assert!(first_eight_high >= 5, "high-priority jobs should lead: {order:?}");
    assert!(order[..8].iter().any(|h| !h), "the normal lane must not starve: {order:?}");
    assert_eq!(results.len(), normal.len() + high.len());
    env.cleanup().await;
}
