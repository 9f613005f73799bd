//! Confirmed publishing: jobs, results, retries and dead letters.
//!
//! Every publish here is `mandatory` on a channel in confirm mode, and is done only when the
//! broker has confirmed it and not returned it, so "published" means "a queue has it". It
//! must not ack deliveries: settling a delivery is the worker's job.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};

use super::connection::{BrokerConnection, answered};
use super::consume::JobDelivery;
use super::headers;
use super::{BrokerError, Lane, Topology};
use crate::config::WireFormat;
use crate::failure::Failure;
use crate::job::{JobResult, encode, now_ms};

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// A confirm-mode channel and the names it publishes to.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    topology: Topology,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("namespace", &self.topology.namespace()).finish_non_exhaustive()
    }
}

/// A publish sent but not yet confirmed; see [`Publisher::confirmed`].
#[derive(Debug)]
pub struct PendingPublish {
    confirm: PublisherConfirm,
    exchange: String,
    routing_key: String,
}

/// What a dead letter records about its failure.
#[derive(Debug, Clone)]
pub struct DeadLetterInfo<'a> {
    /// The failure that ended the job.
    pub failure: &'a Failure,
    /// Attempts made, this one included.
    pub attempts: u32,
    /// The job id, when the message decoded far enough to have one.
    pub job_id: Option<&'a str>,
    /// The queue the message was consumed from.
    pub source_queue: &'a str,
    /// This worker's id.
    pub worker: &'a str,
}

impl Publisher {
    /// Opens a channel on `connection` and puts it in confirm mode.
    pub async fn open(connection: &BrokerConnection, topology: &Topology) -> Result<Self, BrokerError> {
        let channel = connection.channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(BrokerError::Channel)?;
        Ok(Publisher { channel, topology: topology.clone() })
    }

    /// Sends a message without waiting for its confirm (batch producers await many at once).
    pub async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<PendingPublish, BrokerError> {
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                options,
                body,
                properties.with_delivery_mode(PERSISTENT),
            )
            .await
            .map_err(|source| BrokerError::Publish { exchange: exchange.to_string(), source })?;
        Ok(PendingPublish { confirm, exchange: exchange.to_string(), routing_key: routing_key.to_string() })
    }

    /// Waits for the broker's confirm of a sent message. A broker under a resource alarm
    /// stops reading publishes; after [`super::connection::ANSWER_TIMEOUT`] that is an error (the caller still
    /// holds the message it was publishing for, unacked), not a silent stall.
    pub async fn confirmed(pending: PendingPublish) -> Result<(), BrokerError> {
        let PendingPublish { confirm, exchange, routing_key } = pending;
        let awaited =
            async { confirm.await.map_err(|source| BrokerError::Publish { exchange: exchange.clone(), source }) };
        let confirmation = answered(|| format!("a publish to {exchange} with a confirm"), awaited).await?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(BrokerError::Unroutable { exchange, routing_key }),
            Confirmation::Nack(_) => Err(BrokerError::Nacked { exchange, routing_key }),
            // Only happens if confirm mode were off, which `open` rules out.
            Confirmation::NotRequested => Ok(()),
        }
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BrokerError> {
        Self::confirmed(self.send(exchange, routing_key, body, properties).await?).await
    }

    /// Sends an encoded job to its lane; `job_id` becomes the AMQP message id.
    pub async fn send_job(
        &self,
        body: &[u8],
        content_type: &str,
        job_id: &str,
        lane: Lane,
    ) -> Result<PendingPublish, BrokerError> {
        let now = now_ms();
        let mut table = FieldTable::default();
        headers::set_u64(&mut table, headers::ENQUEUED_MS, now);
        let properties = BasicProperties::default()
            .with_content_type(content_type.into())
            .with_message_id(job_id.into())
            .with_timestamp(now / 1000)
            .with_headers(table);
        self.send(&self.topology.jobs_exchange(), &self.topology.lane_queue(lane), body, properties).await
    }

    /// Publishes a job result on the results exchange, routed `result.{outcome}`.
    pub async fn publish_result(&self, result: &JobResult, format: WireFormat) -> Result<(), BrokerError> {
        let (body, content_type) = encode(result, format)?;
        let properties = BasicProperties::default()
            .with_content_type(content_type.into())
            .with_message_id(result.job_id.as_str().into())
            .with_timestamp(result.finished_at_ms / 1000);
        let routing_key = format!("result.{}", result.outcome.as_str());
        self.publish(&self.topology.results_exchange(), &routing_key, &body, properties).await
    }

    /// Puts the delivered message, byte for byte, in the delay queue of `lane` and `tier`; it
    /// returns to its lane when the tier's TTL runs out, as attempt `next_attempt`.
    pub async fn publish_retry(
        &self,
        delivery: &JobDelivery,
        lane: Lane,
        tier: std::time::Duration,
        next_attempt: u32,
        failure: &Failure,
    ) -> Result<(), BrokerError> {
        let (body, original) = (delivery.body(), delivery.properties());
        let mut table = headers::carry_over(original);
        headers::set_u64(&mut table, headers::ATTEMPT, u64::from(next_attempt));
        headers::set_str(&mut table, headers::LAST_REASON, failure.reason.as_str());
        headers::set_str(&mut table, headers::LAST_ERROR, truncate(&failure.message, 1024));
        let properties = copy_identity(original).with_headers(table);
        let queue = self.topology.delay_queue(lane, tier);
        self.publish(&self.topology.retry_exchange(), &queue, body, properties).await
    }

    /// Puts the delivered message, byte for byte, in the delay queue of `lane` and `tier` for
    /// politeness: its attempt stays as it was (a deferral is not a failed attempt), and it
    /// carries the request slot kept for it (or none).
    pub async fn publish_deferral(
        &self,
        delivery: &JobDelivery,
        lane: Lane,
        tier: std::time::Duration,
        slot_ms: Option<u64>,
        reason: &str,
    ) -> Result<(), BrokerError> {
        let (body, original) = (delivery.body(), delivery.properties());
        let mut table = headers::carry_over(original);
        headers::remove(&mut table, headers::SLOT_MS);
        if let Some(slot) = slot_ms {
            headers::set_u64(&mut table, headers::SLOT_MS, slot);
        }
        headers::set_str(&mut table, headers::DEFERRED, reason);
        let properties = copy_identity(original).with_headers(table);
        let queue = self.topology.delay_queue(lane, tier);
        self.publish(&self.topology.retry_exchange(), &queue, body, properties).await
    }

    /// Puts the delivered message, byte for byte, in the dead-letter queue with its reason.
    pub async fn publish_dead_letter(
        &self,
        delivery: &JobDelivery,
        info: &DeadLetterInfo<'_>,
    ) -> Result<(), BrokerError> {
        let (body, original) = (delivery.body(), delivery.properties());
        let mut table = headers::carry_over(original);
        headers::set_str(&mut table, headers::REASON, info.failure.reason.as_str());
        headers::set_str(&mut table, headers::ERROR, truncate(&info.failure.message, 4096));
        headers::set_u64(&mut table, headers::ATTEMPTS, u64::from(info.attempts));
        headers::set_str(
            &mut table,
            headers::FAILED_AT,
            humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        );
        headers::set_str(&mut table, headers::WORKER, info.worker);
        headers::set_str(&mut table, headers::SOURCE_QUEUE, info.source_queue);
        if let Some(job_id) = info.job_id {
            headers::set_str(&mut table, headers::JOB_ID, job_id);
        }
        let properties = copy_identity(original).with_headers(table);
        self.publish(&self.topology.dead_letter_exchange(), &self.topology.dead_letter_queue(), body, properties).await
    }

    /// Hands a delivery back by publishing it anew to its lane, byte for byte with its
    /// headers (its attempt unchanged, the broker's delivery count dropped), so a stopping
    /// worker does not use up the lane's delivery limit; the caller acks the delivery once
    /// this returns. At-least-once: a crash between the two leaves both copies, and the job
    /// id makes the second run overwrite the first's records.
    pub async fn hand_back(&self, delivery: &JobDelivery) -> Result<(), BrokerError> {
        let original = delivery.properties();
        let properties = copy_identity(original).with_headers(headers::carry_over(original));
        let lane = delivery.lane();
        self.publish(&self.topology.jobs_exchange(), &self.topology.lane_queue(lane), delivery.body(), properties).await
    }

    /// Republishes a message (from the DLQ) onto the jobs exchange, for `riptide dlq replay`.
    pub async fn publish_to_lane(
        &self,
        body: &[u8],
        properties: BasicProperties,
        lane: Lane,
    ) -> Result<(), BrokerError> {
        self.publish(&self.topology.jobs_exchange(), &self.topology.lane_queue(lane), body, properties).await
    }

    /// Closes the channel, waiting for outstanding confirms first.
    pub async fn close(&self) -> Result<(), BrokerError> {
        self.channel.wait_for_confirms().await.map_err(BrokerError::Channel)?;
        self.channel.close(200, "bye".into()).await.map_err(BrokerError::Channel)
    }
}

/// The properties that identify a message and its encoding, without its headers.
fn copy_identity(original: &BasicProperties) -> BasicProperties {
    let mut properties = BasicProperties::default();
    if let Some(ct) = original.content_type() {
        properties = properties.with_content_type(ct.clone());
    }
    if let Some(id) = original.message_id() {
        properties = properties.with_message_id(id.clone());
    }
    if let Some(ts) = original.timestamp() {
        properties = properties.with_timestamp(*ts);
    }
    properties
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
