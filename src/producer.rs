//! The producer side: turning URLs into crawl jobs and publishing them with confirms.
//!
//! Every job is validated here with the same rules the worker applies, so a bad line is
//! reported to the person who typed it instead of travelling to the dead-letter queue. It
//! does not consume anything.

use std::collections::VecDeque;

use tokio_util::sync::CancellationToken;

use crate::broker::publish::{PendingPublish, Publisher};
use crate::broker::{BrokerError, Lane, Topology, connect};
use crate::config::{Config, WireFormat};
use crate::job::{JobRequest, Mode, Render, encode};
use crate::store::{JobState, JobUpdate, Store, StoreError};

/// Unconfirmed publishes allowed in flight; the notes measured confirms batched in the
/// hundreds at 10-20k messages/s against 1.2-2k/s awaiting each one.
const CONFIRM_WINDOW: usize = 256;

/// The options every enqueued job shares.
#[derive(Debug, Clone, Default)]
pub struct JobTemplate {
    /// What to extract.
    pub mode: Option<Mode>,
    /// How to fetch.
    pub render: Option<Render>,
    /// 0 to 9.
    pub priority: Option<u8>,
    /// Attempts before dead-lettering.
    pub max_attempts: Option<u32>,
    /// Per-attempt budget, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Serve a stored document younger than this.
    pub max_age_secs: Option<u64>,
}

/// What an enqueue run did.
#[derive(Debug, Clone, Default)]
pub struct EnqueueReport {
    /// Ids of the jobs the broker confirmed, in input order.
    pub accepted: Vec<String>,
    /// Lines refused before publishing, with the reason.
    pub rejected: Vec<(String, String)>,
}

/// Why enqueueing stopped.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Redis failed while recording the queued state.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates each URL into a job, records it as queued, publishes it and awaits the
/// broker's confirms. `on_progress` is called once per input line.
pub async fn enqueue(
    config: &Config,
    urls: impl IntoIterator<Item = String>,
    template: &JobTemplate,
    format: WireFormat,
    mut on_progress: impl FnMut(),
) -> Result<EnqueueReport, EnqueueError> {
    let topology = Topology::new(&config.namespace)?;
    let store = Store::new(&config.redis_url, &config.namespace, &config.store)?;
    let connection = connect(&config.amqp_url, "riptide-enqueue").await?;
    let publisher = Publisher::open(&connection, &topology).await?;
    let mut report = EnqueueReport::default();
    let mut pending: VecDeque<(String, PendingPublish)> = VecDeque::new();
    let never = CancellationToken::new();
    for url in urls {
        on_progress();
        let request = request_for(url.trim(), template);
        let job = match request.clone().validate(&config.job, || uuid::Uuid::now_v7().to_string()) {
            Ok(job) => job,
            Err(rejection) => {
                report.rejected.push((url, rejection.to_string()));
                continue;
            }
        };
        // The id is fixed now, so every redelivery of this message is the same job.
        let request = JobRequest { id: Some(job.id.clone()), ..request };
        let (body, content_type) = encode(&request, format).map_err(BrokerError::from)?;
        // Recorded before publishing: a fast worker must not have its "done" overwritten.
        let update =
            JobUpdate { state: JobState::Queued, url: job.url.as_str(), attempt: 0, failure: None, doc_key: None };
        store.patiently(&never, "record queued job", || store.update_job(&job.id, &update)).await?;
        let sent = publisher.send_job(&body, content_type, &job.id, Lane::for_priority(job.priority)).await?;
        pending.push_back((job.id, sent));
        if pending.len() >= CONFIRM_WINDOW {
            confirm_oldest(&mut pending, &mut report).await?;
        }
    }
    while !pending.is_empty() {
        confirm_oldest(&mut pending, &mut report).await?;
    }
    publisher.close().await?;
    connection.close("done").await;
    Ok(report)
}

async fn confirm_oldest(
    pending: &mut VecDeque<(String, PendingPublish)>,
    report: &mut EnqueueReport,
) -> Result<(), BrokerError> {
    if let Some((id, sent)) = pending.pop_front() {
        Publisher::confirmed(sent).await?;
        report.accepted.push(id);
    }
    Ok(())
}

fn request_for(url: &str, template: &JobTemplate) -> JobRequest {
    JobRequest {
        mode: template.mode,
        render: template.render,
        priority: template.priority,
        max_attempts: template.max_attempts,
        timeout_ms: template.timeout_ms,
        max_age_secs: template.max_age_secs,
        ..JobRequest::for_url(url)
    }
}
