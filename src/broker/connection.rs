//! Opening RabbitMQ connections, with backoff while the broker is away.
//!
//! The one place that connects: every other module receives a [`lapin::Connection`] or a
//! channel. Recovery after a lost connection is the caller's loop around
//! [`connect_patiently`] (the worker's session loop), not lapin's implicit recovery.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use super::BrokerError;
use crate::config::redact_url;

/// Opens one connection, named after this process so operators can find it in the
/// management UI.
pub async fn connect(url: &str, name: &str) -> Result<Connection, BrokerError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, properties).await.map_err(|source| BrokerError::Connect { url: redact_url(url), source })
}

/// Connects, retrying with capped exponential backoff and jitter until it works or `cancel`
/// fires. Logs the first failure of an outage and the recovery, not every try.
pub async fn connect_patiently(url: &str, name: &str, cancel: &CancellationToken) -> Result<Connection, BrokerError> {
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    let mut failed = false;
    loop {
        match connect(url, name).await {
            Ok(connection) => {
                if failed {
                    tracing::info!(url = %redact_url(url), "Connected to RabbitMQ again.");
                }
                return Ok(connection);
            }
            Err(error) => {
                if !failed {
                    tracing::warn!(%error, "RabbitMQ is unreachable; retrying with backoff.");
                    failed = true;
                }
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tokio::select! {
                    () = cancel.cancelled() => return Err(BrokerError::Cancelled),
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
