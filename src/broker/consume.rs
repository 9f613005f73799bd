//! Consuming: the job lanes (one channel per lane with its own prefetch, and a weighted pick
//! between them so the high lane goes first without starving the normal one), and the
//! results queue for readers such as `riptide results` and `riptide bench`.
//!
//! It hands out deliveries; it must not decide how to settle them (the worker does, and
//! calls [`JobDelivery::ack`] or [`JobDelivery::requeue`]).

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer};
use tokio_util::sync::CancellationToken;

use super::connection::BrokerConnection;
use super::headers;
use super::{BrokerError, Lane, Topology};
use crate::job::JobResult;

/// One job message as consumed from a lane, with what its headers say.
#[derive(Debug)]
pub struct JobDelivery {
    lane: Lane,
    inner: Delivery,
}

impl JobDelivery {
    /// The lane it came from.
    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// The message body, as the producer sent it.
    pub fn body(&self) -> &[u8] {
        &self.inner.data
    }

    /// The AMQP content type, if the producer set one.
    pub fn content_type(&self) -> Option<&str> {
        self.inner.properties.content_type().as_ref().map(|ct| ct.as_str())
    }

    /// Which attempt this delivery is (1-based; a missing or broken header means the first).
    pub fn attempt(&self) -> u32 {
        headers::get_u64(&self.inner.properties, headers::ATTEMPT)
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(1)
            .max(1)
    }

    /// How often the broker delivered this message before (quorum queues count it in
    /// `x-delivery-count`; 0 on the first delivery).
    pub fn delivery_count(&self) -> u64 {
        headers::get_u64(&self.inner.properties, headers::DELIVERY_COUNT).unwrap_or(0)
    }

    /// The politeness slot kept for a deferred job (Unix ms), if it has one.
    pub fn slot_ms(&self) -> Option<u64> {
        headers::get_u64(&self.inner.properties, headers::SLOT_MS)
    }

    /// When the job was first enqueued, Unix milliseconds, if known.
    pub fn enqueued_ms(&self) -> Option<u64> {
        headers::get_u64(&self.inner.properties, headers::ENQUEUED_MS)
            .or_else(|| self.inner.properties.timestamp().map(|secs| secs.saturating_mul(1000)))
    }

    /// The message's properties, for republishing it byte for byte.
    pub(super) fn properties(&self) -> &BasicProperties {
        &self.inner.properties
    }

    /// Acknowledges the delivery: the broker forgets the message.
    pub async fn ack(&self) -> Result<(), BrokerError> {
        self.inner.acker.ack(BasicAckOptions::default()).await.map(|_| ()).map_err(BrokerError::Channel)
    }

    /// Hands the delivery back: the broker requeues it for another consumer.
    pub async fn requeue(&self) -> Result<(), BrokerError> {
        let options = BasicNackOptions { requeue: true, ..BasicNackOptions::default() };
        self.inner.acker.nack(options).await.map(|_| ()).map_err(BrokerError::Channel)
    }
}

/// The consumers of both lanes of one connection.
pub struct LaneConsumers {
    high: (Channel, Consumer),
    normal: (Channel, Consumer),
    /// One pick in `weight` prefers the normal lane.
    weight: u32,
    picks: u32,
}

impl std::fmt::Debug for LaneConsumers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneConsumers").field("weight", &self.weight).finish_non_exhaustive()
    }
}

async fn open_lane(
    connection: &BrokerConnection,
    topology: &Topology,
    lane: Lane,
    prefetch: u16,
    tag: &str,
) -> Result<(Channel, Consumer), BrokerError> {
    let channel = connection.channel().await?;
    channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(BrokerError::Channel)?;
    let queue = topology.lane_queue(lane);
    let consumer = channel
        .basic_consume(
            queue.as_str().into(),
            format!("{tag}-{}", lane.as_str()).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| BrokerError::Consume { queue, source })?;
    Ok((channel, consumer))
}

impl LaneConsumers {
    /// Starts consuming both lanes with manual acks.
    pub async fn open(
        connection: &BrokerConnection,
        topology: &Topology,
        prefetch: u16,
        weight: u32,
        tag: &str,
    ) -> Result<Self, BrokerError> {
        let high = open_lane(connection, topology, Lane::High, prefetch, tag).await?;
        let normal = open_lane(connection, topology, Lane::Normal, prefetch, tag).await?;
        Ok(LaneConsumers { high, normal, weight: weight.max(1), picks: 0 })
    }

    /// The next delivery. `None` means a consumer ended (its channel or connection closed).
    pub async fn next(&mut self) -> Option<Result<JobDelivery, BrokerError>> {
        self.picks = self.picks.wrapping_add(1);
        let prefer_normal = self.picks.is_multiple_of(self.weight);
        let high = &mut self.high.1;
        let normal = &mut self.normal.1;
        let picked = if prefer_normal {
            tokio::select! {
                biased;
                d = normal.next() => (Lane::Normal, d),
                d = high.next() => (Lane::High, d),
            }
        } else {
            tokio::select! {
                biased;
                d = high.next() => (Lane::High, d),
                d = normal.next() => (Lane::Normal, d),
            }
        };
        match picked {
            (_, None) => None,
            (lane, Some(Ok(inner))) => Some(Ok(JobDelivery { lane, inner })),
            (lane, Some(Err(source))) => Some(Err(BrokerError::Consume { queue: lane.as_str().to_string(), source })),
        }
    }

    /// Stops the broker from sending more; deliveries already received stay ours to settle.
    pub async fn cancel(&self) {
        for (channel, consumer) in [&self.high, &self.normal] {
            if let Err(error) = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await {
                tracing::debug!(%error, "Cancelling a consumer failed; its channel is probably closed already.");
            }
        }
    }
}

impl LaneConsumers {
    /// Closes both lane channels; deliveries not yet acked go back to their queues.
    pub async fn close(&self) {
        for (channel, _) in [&self.high, &self.normal] {
            if let Err(error) = channel.close(200, "worker stopping".into()).await {
                tracing::debug!(%error, "Closing a lane channel failed; it was probably closed already.");
            }
        }
    }
}

/// A reader of the namespace's default results queue: each result read is acked (taken off
/// the queue), so two readers share the results between them.
#[derive(Debug)]
pub struct ResultReader {
    channel: Channel,
    queue: String,
    consumer: Option<Consumer>,
}

impl ResultReader {
    /// Opens a reader on `topology`'s results queue.
    pub async fn open(connection: &BrokerConnection, topology: &Topology) -> Result<Self, BrokerError> {
        Ok(ResultReader { channel: connection.channel().await?, queue: topology.results_queue(), consumer: None })
    }

    /// The next result already in the queue, or `None` when it is empty.
    pub async fn next_waiting(&mut self) -> Result<Option<JobResult>, BrokerError> {
        let got = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions::default())
            .await
            .map_err(|source| BrokerError::Consume { queue: self.queue.clone(), source })?;
        let Some(message) = got else { return Ok(None) };
        self.settle(&message.delivery).await.map(Some)
    }

    /// The next result, waiting for one to arrive; `None` when `stop` fires or the
    /// consumer ends (its channel or connection closed).
    pub async fn next_arriving(&mut self, stop: &CancellationToken) -> Result<Option<JobResult>, BrokerError> {
        if self.consumer.is_none() {
            let consumer = self
                .channel
                .basic_consume(
                    self.queue.as_str().into(),
                    "riptide-results".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|source| BrokerError::Consume { queue: self.queue.clone(), source })?;
            self.consumer = Some(consumer);
        }
        let Some(consumer) = self.consumer.as_mut() else { return Ok(None) };
        let next = tokio::select! {
            () = stop.cancelled() => return Ok(None),
            next = consumer.next() => next,
        };
        match next {
            None => Ok(None),
            Some(Err(source)) => Err(BrokerError::Consume { queue: self.queue.clone(), source }),
            Some(Ok(delivery)) => self.settle(&delivery).await.map(Some),
        }
    }

    /// Decodes and acks. A result that does not decode is acked too (a reader that
    /// stopped on it would stop on it for ever) and reported as an error.
    async fn settle(&self, delivery: &Delivery) -> Result<JobResult, BrokerError> {
        let decoded = JobResult::decode(&delivery.data);
        delivery.acker.ack(BasicAckOptions::default()).await.map_err(BrokerError::Channel)?;
        decoded.map_err(|e| BrokerError::BadResult(e.to_string()))
    }

    /// Closes the reader's channel.
    pub async fn close(self) {
        if let Err(error) = self.channel.close(200, "done".into()).await {
            tracing::debug!(%error, "Closing the results channel failed.");
        }
    }
}
