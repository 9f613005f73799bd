//! Consuming the job lanes: one channel per lane with its own prefetch, and a weighted pick
//! between them so the high lane goes first without starving the normal one.
//!
//! It hands out deliveries; it must not ack them (the worker settles each delivery).

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};

use super::{BrokerError, Lane, Topology};

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
    connection: &Connection,
    topology: &Topology,
    lane: Lane,
    prefetch: u16,
    tag: &str,
) -> Result<(Channel, Consumer), BrokerError> {
    let channel = connection.create_channel().await.map_err(BrokerError::Channel)?;
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
        connection: &Connection,
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
    pub async fn next(&mut self) -> Option<Result<(Lane, Delivery), BrokerError>> {
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
            (lane, Some(Ok(delivery))) => Some(Ok((lane, delivery))),
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
