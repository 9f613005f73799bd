//! Looking at queues without touching their messages: ready counts and consumers by passive
//! declare, per queue and summed per logical queue of a namespace.
//!
//! Read-only; used by the worker's drain check, the ops poller and `riptide stats`.

use lapin::Channel;

use super::connection::BrokerConnection;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde::Serialize;

use super::{BrokerError, Lane, Topology};

/// A channel that only looks at queues (passive declares). A passive declare of a missing
/// queue closes its channel, so an inspector is not shared with publishing or consuming.
#[derive(Debug)]
pub struct Inspector {
    channel: Channel,
}

impl Inspector {
    /// Opens an inspecting channel on `connection`.
    pub async fn open(connection: &BrokerConnection) -> Result<Self, BrokerError> {
        Ok(Inspector { channel: connection.channel().await? })
    }

    /// Messages ready in `queue` and its consumer count.
    pub async fn queue_depth(&self, queue: &str) -> Result<(u32, u32), BrokerError> {
        queue_depth(&self.channel, queue).await
    }

    /// Depths of the job lanes, the delay queues (summed), the DLQ and the results queue.
    pub async fn namespace_depths(&self, topology: &Topology) -> Result<Vec<QueueDepth>, BrokerError> {
        namespace_depths(&self.channel, topology).await
    }

    /// Closes the channel. A dropped channel is closed by lapin in the background, which
    /// races the connection's own close and logs a spurious ERROR at every normal shutdown.
    pub async fn close(self) {
        if let Err(error) = self.channel.close(200, "done".into()).await {
            tracing::debug!(%error, "Closing an inspecting channel failed; it was probably closed already.");
        }
    }

    /// The channel, for the topology check that shares it.
    pub(super) fn channel(&self) -> &Channel {
        &self.channel
    }
}

/// Messages ready in `queue` and its consumer count.
async fn queue_depth(channel: &Channel, queue: &str) -> Result<(u32, u32), BrokerError> {
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

async fn namespace_depths(channel: &Channel, topology: &Topology) -> Result<Vec<QueueDepth>, BrokerError> {
    let delay_queues = topology.delay_queues();
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
