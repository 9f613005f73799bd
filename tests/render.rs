//! Render modes through the whole worker, with real Chromium: a client-rendered page in
//! `headless` and in `auto`, a static page in `auto` left to the static fetcher, the host
//! remembered in Redis for every worker, and `wait_for`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::TestEnv;
use riptide::job::{JobRequest, Outcome, Render};
use riptide::producer::JobTemplate;
use riptide::store::Store;

fn template(render: Render) -> JobTemplate {
    JobTemplate { render: Some(render), timeout_ms: Some(30_000), ..JobTemplate::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rendered_pages_are_rendered_and_static_ones_are_not() {
    let env = TestEnv::new().await;
    let headless = env.enqueue(vec![env.site.url("/spa/1")], template(Render::Headless)).await;
    let auto_spa = env.enqueue(vec![env.site.url("/spa/2")], template(Render::Auto)).await;
    let auto_static = env.enqueue(vec![env.site.url("/page/3")], template(Render::Auto)).await;
    let worker = env.spawn_worker();
    let results = env.results(3, Duration::from_secs(90)).await;

    let by_id = |id: &str| results.iter().find(|r| r.job_id == id).unwrap();
    for id in [&headless[0], &auto_spa[0]] {
        let result = by_id(id);
        assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
        assert_eq!(result.render_used, Some(Render::Headless), "{result:?}");
        let summary = result.summary.as_ref().unwrap();
        assert!(summary.word_count > 200, "the rendered article was extracted: {summary:?}");
        assert!(result.timings.render_ms > 0);
    }
    let static_result = by_id(&auto_static[0]);
    assert_eq!(static_result.render_used, Some(Render::Static), "a static page in auto is not rendered");
    assert_eq!(static_result.engine.as_deref(), Some("wasm"));

    // The origin and first path segment are remembered for every worker: the next auto job
    // under /spa/ skips the static fetch, while /page/ is not sent to the browser.
    let store = Store::new(&env.config.redis_url, &env.config.namespace, &env.config.store).unwrap();
    let scope = |path: &str| riptide::page::render_memo_scope(&url::Url::parse(&env.site.url(path)).unwrap());
    assert!(store.needs_browser(&scope("/spa/4")).await.unwrap());
    assert!(!store.needs_browser(&scope("/page/4")).await.unwrap());
    let static_fetches_before = env.site.hits("/spa/4").len();
    env.enqueue(vec![env.site.url("/spa/4")], template(Render::Auto)).await;
    let again = env.results(1, Duration::from_secs(60)).await;
    assert_eq!(again[0].render_used, Some(Render::Headless));
    assert_eq!(again[0].timings.fetch_ms, 0, "no static fetch under a remembered scope");
    assert_eq!(env.site.hits("/spa/4").len(), static_fetches_before + 1, "one request: the browser's");
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_waits_for_the_selector() {
    let env = TestEnv::new().await;
    let request = JobRequest {
        id: Some("waits".into()),
        render: Some(Render::Headless),
        wait_for: Some("#late".into()),
        timeout_ms: Some(30_000),
        ..JobRequest::for_url(env.site.url("/spa/5"))
    };
    env.publish_raw(&serde_json::to_vec(&request).unwrap(), Some("application/json")).await;
    let worker = env.spawn_worker();
    let results = env.results(1, Duration::from_secs(90)).await;
    worker.stop().await;
    assert_eq!(results[0].outcome, Outcome::Ok, "{:?}", results[0]);
    assert_eq!(results[0].render_used, Some(Render::Headless));
    env.cleanup().await;
}
