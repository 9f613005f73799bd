//! Pool events onto the events exchange: the one place pool happenings reach the broker.
//!
//! Each event is published as JSON (`{v, worker, at_ms, event}`) with the event's own routing
//! key (`wasm.tier.promoted`, `browser.recycled`, ...). Events may be dropped when nobody
//! listens or the broker is away: they are telemetry, so no confirms and no retries here.

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel};

use super::BrokerError;
use super::connection::BrokerConnection;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::job::{CONTENT_TYPE_JSON, MESSAGE_VERSION, now_ms};

#[derive(Serialize)]
struct Envelope<'a, E> {
    v: u8,
    worker: &'a str,
    at_ms: u64,
    event: &'a E,
}

/// Forwards `events` to `exchange`, each under the routing key `routing_key` gives it, until
/// `stop` fires or the pool closes its sender. The broker knows no event type: the caller
/// says how an event is routed.
pub async fn forward<E: Serialize + Clone>(
    mut events: broadcast::Receiver<E>,
    routing_key: fn(&E) -> &'static str,
    connection: &BrokerConnection,
    exchange: String,
    worker: String,
    stop: CancellationToken,
) -> Result<impl Future<Output = ()> + use<E>, BrokerError> {
    let channel = connection.channel().await?;
    Ok(async move {
        forward_on(&mut events, routing_key, &channel, &exchange, &worker, &stop).await;
        if let Err(error) = channel.close(200, "events done".into()).await {
            tracing::debug!(%error, "Closing the events channel failed.");
        }
    })
}

async fn forward_on<E: Serialize + Clone>(
    events: &mut broadcast::Receiver<E>,
    routing_key: fn(&E) -> &'static str,
    channel: &Channel,
    exchange: &str,
    worker: &str,
    stop: &CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(event) => publish(channel, exchange, worker, routing_key(&event), &event).await,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "Dropped pool events: the forwarder fell behind.");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn publish<E: Serialize>(channel: &Channel, exchange: &str, worker: &str, routing_key: &str, event: &E) {
    let envelope = Envelope { v: MESSAGE_VERSION, worker, at_ms: now_ms(), event };
    let Ok(body) = serde_json::to_vec(&envelope) else { return };
    let properties = BasicProperties::default().with_content_type(CONTENT_TYPE_JSON.into());
    let sent = channel
        .basic_publish(exchange.into(), routing_key.into(), BasicPublishOptions::default(), &body, properties)
        .await;
    if let Err(error) = sent {
        tracing::debug!(%error, routing_key, "Could not publish a pool event.");
    }
}
