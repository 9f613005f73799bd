//! Looking at queues without touching their messages: ready counts and consumers by passive
//! declare, per queue and summed per logical queue of a namespace.
//!
//! Read-only; used by the worker's drain check, the ops poller and `riptide stats`.

use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde::Serialize;

use super::{BrokerError, Lane, Topology};

/// Messages ready in `queue` and its consumer count.
pub async fn queue_depth(channel: &Channel, queue: &str) -> Result<(u32, u32), BrokerError> {
    let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let declared = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .map_err(|source| BrokerError::Consume { queue: queue.to_string(), source })?;
    Ok((declared.message_count(), declared.consumer_count()))
}

/// Depth of one logical queue of a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Logical name, a closed set used as a metric label: jobs, jobs_high, retry, dlq, results.
    pub name: &'static str,
    /// Messages ready (for `retry`, summed over every delay queue).
    pub ready: u64,
    /// Consumers (for `retry`, always 0: nobody consumes delay queues).
    pub consumers: u64,
    /// The broker queues behind the name.
    pub queues: Vec<String>,
}

/// Depths of the job lanes, the delay queues (summed), the DLQ and the results queue.
pub async fn namespace_depths(channel: &Channel, topology: &Topology) -> Result<Vec<QueueDepth>, BrokerError> {
    let delay_queues: Vec<String> = Lane::ALL
        .iter()
        .flat_map(|lane| topology.retry_tiers.iter().map(move |tier| topology.delay_queue(*lane, *tier)))
        .collect();
    let groups: [(&'static str, Vec<String>); 5] = [
        ("jobs", vec![topology.lane_queue(Lane::Normal)]),
        ("jobs_high", vec![topology.lane_queue(Lane::High)]),
        ("retry", delay_queues),
        ("dlq", vec![topology.dead_letter_queue()]),
        ("results", vec![topology.results_queue()]),
    ];
    let mut depths = Vec::with_capacity(groups.len());
    for (name, queues) in groups {
        let (mut ready, mut consumers) = (0u64, 0u64);
        for queue in &queues {
            let (r, c) = queue_depth(channel, queue).await?;
            ready += u64::from(r);
            consumers += u64::from(c);
        }
        depths.push(QueueDepth { name, ready, consumers, queues });
    }
    Ok(depths)
}
