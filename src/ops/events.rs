//! Pool events onto the events exchange: the one place pool happenings reach the broker.
//!
//! Each event is published as JSON (`{v, worker, at_ms, event}`) with the event's own routing
//! key (`wasm.tier.promoted`, `browser.recycled`, ...). Events may be dropped when nobody
//! listens or the broker is away: they are telemetry, so no confirms and no retries here.

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::job::{CONTENT_TYPE_JSON, MESSAGE_VERSION, now_ms};

/// An event that knows its routing key.
pub trait PoolEvent: Serialize + Clone + Send + 'static {
    /// The topic routing key, e.g. `browser.crashed`.
    fn routing_key(&self) -> &'static str;
}

impl PoolEvent for crate::browser::BrowserEvent {
    fn routing_key(&self) -> &'static str {
        crate::browser::BrowserEvent::routing_key(self)
    }
}

impl PoolEvent for crate::wasm::WasmEvent {
    fn routing_key(&self) -> &'static str {
        crate::wasm::WasmEvent::routing_key(self)
    }
}

#[derive(Serialize)]
struct Envelope<'a, E> {
    v: u8,
    worker: &'a str,
    at_ms: u64,
    event: &'a E,
}

/// Forwards `events` to `exchange` until `stop` fires or the pool closes its sender.
pub async fn forward<E: PoolEvent>(
    mut events: broadcast::Receiver<E>,
    channel: Channel,
    exchange: String,
    worker: String,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(event) => publish(&channel, &exchange, &worker, &event).await,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "Dropped pool events: the forwarder fell behind.");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn publish<E: PoolEvent>(channel: &Channel, exchange: &str, worker: &str, event: &E) {
    let envelope = Envelope { v: MESSAGE_VERSION, worker, at_ms: now_ms(), event };
    let Ok(body) = serde_json::to_vec(&envelope) else { return };
    let properties = BasicProperties::default().with_content_type(CONTENT_TYPE_JSON.into());
    let sent = channel
        .basic_publish(exchange.into(), event.routing_key().into(), BasicPublishOptions::default(), &body, properties)
        .await;
    if let Err(error) = sent {
        tracing::debug!(%error, routing_key = event.routing_key(), "Could not publish a pool event.");
    }
}
