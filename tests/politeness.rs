//! Politeness across the fleet on the real RabbitMQ and Redis, with fixture origins on several
//! loopback ports (one origin each): pacing shared by several workers, no head-of-line
//! blocking, robots.txt, host backoff after a 429, conditional requests, canonical URLs.
//!
//! Each worker here is a separate `worker::run` with its own politeness instance and robots
//! cache, so what they share is only what the fleet shares: Redis and the broker.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Collector, RobotsReply, TestEnv, spawn_worker_with, start_origin};
use riptide::job::Outcome;
use riptide::producer::JobTemplate;

/// Fewer deliveries per job than this is "a handful" (a first try plus a few deferrals).
const HANDFUL: u64 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_keep_one_origins_pace() {
    let delay = Duration::from_millis(200);
    let env = TestEnv::with(|c| c.politeness.default_delay_ms = 200).await;
    let origin = start_origin(RobotsReply::Status(404)).await;
    let urls: Vec<String> = (0..40).map(|n| origin.url(&format!("/page/{n}"))).collect();
    let ids = env.enqueue(urls, JobTemplate::default()).await;
    let collector = Collector::start(&env).await;
    let workers: Vec<_> = (0..3).map(|_| spawn_worker_with(env.config.clone())).collect();
    collector.wait_for_jobs(40, Duration::from_secs(40)).await;
    let mut deferred = 0;
    for worker in workers {
        let report = worker.stop().await;
        assert_eq!(report.retried, 0, "{report:?}");
        deferred += report.deferred;
    }
    let results = collector.finish();
    common::assert_each_job_done_once(&ids, &results);
    assert!(results.iter().all(|r| r.attempt == 1), "a deferral must not use an attempt");

    let arrivals = origin.arrivals("/page/");
    assert_eq!(arrivals.len(), 40, "each page fetched once");
    // The fleet's slots are exactly 200 ms apart on Redis's clock, and no request leaves before
    // its slot; but one that leaves late (its worker's timer fired late) brings the next gap
    // below 200 ms by as much. Alone this test saw 3 to 9 ms of lateness; with the rest of the
    // suite running beside it on two cores, over 15 ms. A broken pacing puts requests
    // milliseconds apart, far below this.
    let slack = Duration::from_millis(50);
    let gaps: Vec<Duration> = arrivals.windows(2).map(|pair| pair[1].at - pair[0].at).collect();
    for gap in &gaps {
        assert!(*gap + slack >= delay, "two requests {gap:?} apart, the delay is {delay:?}");
    }
    let mean = gaps.iter().sum::<Duration>() / u32::try_from(gaps.len()).unwrap();
    let span = arrivals[39].at - arrivals[0].at;
    eprintln!(
        "pacing: 40 requests over {span:?}, gaps min {:?} mean {mean:?} max {:?}, {deferred} deferrals",
        gaps.iter().min().unwrap(),
        gaps.iter().max().unwrap()
    );
    // Each job: one delivery plus its deferrals.
    assert!(deferred > 0, "40 jobs at 200 ms cannot all wait inline");
    assert!((40 + deferred) <= 40 * HANDFUL, "{deferred} deferrals for 40 jobs");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_origin_does_not_starve_the_others() {
    let env = TestEnv::with(|c| c.politeness.default_delay_ms = 100).await;
    let flooded = start_origin(RobotsReply::Status(404)).await;
    let mut others = Vec::new();
    for _ in 0..10 {
        others.push(start_origin(RobotsReply::Status(404)).await);
    }
    // The flood is queued first: the others sit behind 300 of its jobs.
    let flood_ids =
        env.enqueue((0..300).map(|n| flooded.url(&format!("/page/{n}"))).collect(), JobTemplate::default()).await;
    let other_urls: Vec<String> = others.iter().flat_map(|o| (0..3).map(|n| o.url(&format!("/page/{n}")))).collect();
    let other_ids: HashSet<String> = env.enqueue(other_urls, JobTemplate::default()).await.into_iter().collect();
    let collector = Collector::start(&env).await;
    let started = Instant::now();
    let worker = spawn_worker_with(env.config.clone());
    let deadline = started + Duration::from_secs(60);
    let mut others_done = None;
    loop {
        assert!(Instant::now() < deadline, "the run did not finish in time");
        let results = collector.results_snapshot();
        let done: HashSet<&str> = results.iter().map(|r| r.job_id.as_str()).collect();
        if others_done.is_none() && other_ids.iter().all(|id| done.contains(id.as_str())) {
            others_done = Some(started.elapsed());
        }
        if flood_ids.iter().all(|id| done.contains(id.as_str())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let flood_done = started.elapsed();
    worker.stop().await;
    let others_done = others_done.expect("the other origins' jobs finished");
    // 300 requests 100 ms apart take 30 s at least; the 30 must not wait for them (behind
    // the flood in the queue, they wait for one pass of its deferrals, a few seconds).
    eprintln!("flood: the other origins' 30 jobs done after {others_done:?}, the flood's 300 after {flood_done:?}");
    assert!(flood_done >= Duration::from_millis(299 * 100), "{flood_done:?}");
    assert!(others_done * 2 < flood_done, "others took {others_done:?}, the flood {flood_done:?}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robots_txt_is_fetched_once_for_the_fleet_and_obeyed() {
    let env = TestEnv::new().await;
    let origin = start_origin(RobotsReply::Body("User-agent: *\nDisallow: /private\n".into())).await;
    // Also a 600 KiB file: its first rule holds, what lies past 500 KiB is not read.
    let mut big = String::from("User-agent: *\nDisallow: /secret\n");
    while big.len() < 600 * 1024 {
        big.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    big.push_str("Disallow: /\n");
    let large = start_origin(RobotsReply::Body(big)).await;
    let mut urls: Vec<String> = (0..10).map(|n| origin.url(&format!("/page/{n}"))).collect();
    urls.push(origin.url("/private/1"));
    urls.push(large.url("/page/1"));
    urls.push(large.url("/secret/1"));
    let ids = env.enqueue(urls, JobTemplate::default()).await;
    let collector = Collector::start(&env).await;
    let workers: Vec<_> = (0..3).map(|_| spawn_worker_with(env.config.clone())).collect();
    collector.wait_for_jobs(ids.len(), Duration::from_secs(30)).await;
    for worker in workers {
        worker.stop().await;
    }
    let results = collector.finish();
    let failed: Vec<_> = results.iter().filter(|r| r.outcome == Outcome::Failed).collect();
    assert_eq!(failed.len(), 2, "{results:#?}");
    for result in &failed {
        assert!(result.url.ends_with("/private/1") || result.url.ends_with("/secret/1"), "{result:?}");
        assert_eq!(result.error.as_ref().unwrap().reason, "robots_denied");
    }
    assert_eq!(results.iter().filter(|r| r.outcome == Outcome::Ok).count(), 11);
    let letters = env.wait_dead_letters(2, Duration::from_secs(5)).await;
    assert!(letters.iter().all(|l| l.reason() == "robots_denied"), "{letters:?}");
    assert_eq!(origin.arrivals("/robots.txt").len(), 1, "one fetch for the fleet");
    assert_eq!(large.arrivals("/robots.txt").len(), 1, "one fetch for the fleet");
    assert!(origin.arrivals("/private").is_empty() && large.arrivals("/secret").is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_robots_txt_defers_jobs_until_it_answers() {
    let env = TestEnv::with(|c| c.politeness.robots_error_recheck_secs = 1).await;
    let origin = start_origin(RobotsReply::Status(503)).await;
    let missing = start_origin(RobotsReply::Status(404)).await;
    let ids = env.enqueue(vec![origin.url("/page/1"), missing.url("/page/1")], JobTemplate::default()).await;
    let collector = Collector::start(&env).await;
    let worker = spawn_worker_with(env.config.clone());
    // The 404 origin is allowed at once; the 503 origin waits.
    collector.wait_for_jobs(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(origin.arrivals("/page/").is_empty(), "no page while robots.txt is unavailable");
    assert!(origin.arrivals("/robots.txt").len() >= 2, "robots.txt is fetched again after the recheck time");
    origin.set_robots(RobotsReply::Body("User-agent: *\nAllow: /\n".into()));
    collector.wait_for_jobs(2, Duration::from_secs(15)).await;
    let report = worker.stop().await;
    let results = collector.finish();
    common::assert_each_job_done_once(&ids, &results);
    assert!(results.iter().all(|r| r.attempt == 1), "{results:?}");
    assert_eq!(report.retried, 0);
    assert!(report.deferred >= 1);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_blocks_the_origin_for_every_worker() {
    // Paced (100 ms), so the 429 is answered before the origin's next request is due.
    let env = TestEnv::with(|c| {
        c.politeness.default_delay_ms = 100;
        c.politeness.max_block_secs = 86_400;
    })
    .await;
    let limited = start_origin(RobotsReply::Status(404)).await;
    let other = start_origin(RobotsReply::Status(404)).await;
    let mut urls: Vec<String> = (0..6).map(|n| limited.url(&format!("/limited/{n}"))).collect();
    urls.extend((0..6).map(|n| other.url(&format!("/page/{n}"))));
    let ids = env.enqueue(urls, JobTemplate::default()).await;
    let collector = Collector::start(&env).await;
    let workers: Vec<_> = (0..2).map(|_| spawn_worker_with(env.config.clone())).collect();
    collector.wait_for_jobs(12, Duration::from_secs(30)).await;
    for worker in workers {
        worker.stop().await;
    }
    let results = collector.finish();
    common::assert_each_job_done_once(&ids, &results);
    let arrivals = limited.arrivals("/limited/");
    assert_eq!(arrivals[0].status, 429);
    let refused_at = arrivals[0].at;
    for later in &arrivals[1..] {
        let after = later.at - refused_at;
        assert!(after >= Duration::from_secs(2), "a request {after:?} after the 429 asked for 2 s");
    }
    // Other origins are unaffected: all done before the block ended.
    let others = other.arrivals("/page/");
    assert_eq!(others.len(), 6);
    assert!(others.iter().all(|a| a.at < refused_at + Duration::from_secs(2)), "the other origin waited");
    // Only the refused job used an attempt; the others waited without.
    let retried: Vec<_> = results.iter().filter(|r| r.attempt > 1).collect();
    assert_eq!(retried.len(), 1, "{results:#?}");
    // `riptide hosts` shows what the fleet knows of the origin.
    let rows = riptide::cli::hosts::rows(&env.config, Some(&limited.url("/"))).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].origin, format!("http://{}", limited.addr));
    assert_eq!(rows[0].block_streak, 1, "{rows:?}");
    assert_eq!(rows[0].robots.as_deref(), Some("allow_all"), "404 robots.txt allows all");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_spellings_of_a_page_share_one_document() {
    let env = TestEnv::new().await;
    let origin = start_origin(RobotsReply::Status(404)).await;
    let urls = vec![origin.url("/a/./page/1?utm_source=x&id=%7e1#top"), origin.url("/a/b/../page/1?id=~1")];
    let ids = env.enqueue(urls, JobTemplate::default()).await;
    let worker = spawn_worker_with(Arc::clone(&env.config));
    let results = env.results(2, Duration::from_secs(20)).await;
    worker.stop().await;
    assert_eq!(results.len(), ids.len());
    assert_eq!(results[0].doc_key, results[1].doc_key, "{results:#?}");
    let canonical = format!("http://{}/a/page/1?id=~1", origin.addr);
    assert!(results.iter().all(|r| r.canonical_url.as_deref() == Some(canonical.as_str())), "{results:#?}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_crawled_again_is_not_modified_and_its_document_lives_on() {
    use deadpool_redis::redis::AsyncCommands;
    let env = TestEnv::new().await;
    let origin = start_origin(RobotsReply::Status(404)).await;
    let url = origin.url("/etag/1");
    let worker = spawn_worker_with(Arc::clone(&env.config));
    env.enqueue(vec![url.clone()], JobTemplate::default()).await;
    let first = env.results(1, Duration::from_secs(20)).await.remove(0);
    assert_eq!(first.outcome, Outcome::Ok);
    let doc_key = first.doc_key.clone().unwrap();
    let client = deadpool_redis::redis::Client::open(env.config.redis_url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    // Age the document: a short TTL left, as if it were stored long ago.
    let _: () = redis.expire(&doc_key, 100).await.unwrap();

    env.enqueue(vec![url], JobTemplate::default()).await;
    let second = env.results(1, Duration::from_secs(20)).await.remove(0);
    worker.stop().await;
    assert_eq!(second.outcome, Outcome::NotModified, "{second:#?}");
    assert_eq!(second.doc_key.as_deref(), Some(doc_key.as_str()));
    assert_eq!(second.summary, first.summary, "the stored document is served");
    let arrivals = origin.arrivals("/etag/");
    assert_eq!(arrivals.len(), 2);
    assert_eq!(arrivals[1].status, 304, "no body the second time");
    assert_eq!(arrivals[1].headers.get("if-none-match").unwrap(), "\"v1-/etag/1\"");
    let ttl: i64 = redis.ttl(&doc_key).await.unwrap();
    assert!(ttl > 1000, "the document's TTL is refreshed, {ttl} s left");
    let store = riptide::store::Store::new(&env.config.redis_url, &env.config.namespace, &env.config.store).unwrap();
    let stored = store.get_doc(&doc_key).await.unwrap().unwrap();
    assert_eq!(stored.job_id, second.job_id, "fetch time and job refreshed");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_path_sends_the_user_agent_and_the_jobs_headers() {
    let env = TestEnv::new().await;
    let origin = start_origin(RobotsReply::Status(404)).await;
    let job = serde_json::json!({
        "url": origin.url("/page/rendered"),
        "render": "headless",
        "headers": {"X-Riptide-Test": "yes", "Cookie": "sid=secret"},
    });
    env.publish_raw(&serde_json::to_vec(&job).unwrap(), Some("application/json")).await;
    let worker = spawn_worker_with(Arc::clone(&env.config));
    let result = env.results(1, Duration::from_secs(60)).await.remove(0);
    worker.stop().await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:#?}");
    assert_eq!(result.render_used, Some(riptide::job::Render::Headless));
    let page = origin.arrivals("/page/rendered");
    let headers = &page.first().expect("the page was requested").headers;
    assert_eq!(headers.get("user-agent").unwrap(), env.config.fetch.user_agent.as_str());
    assert_eq!(headers.get("x-riptide-test").unwrap(), "yes");
    // Credential headers stay out of the browser: its subresources go to other hosts too.
    assert!(headers.get("cookie").is_none(), "{headers:?}");
    // robots.txt was fetched with the same user agent.
    let robots = origin.arrivals("/robots.txt");
    assert_eq!(robots[0].headers.get("user-agent").unwrap(), env.config.fetch.user_agent.as_str());
    env.cleanup().await;
}
