//! Opening RabbitMQ connections, with backoff while the broker is away.
//!
//! The one place that connects: every other module holds a [`BrokerConnection`], never a lapin
//! type (only `broker/` speaks lapin; `tests/architecture.rs` checks it). Recovery after a lost
//! connection is the caller's loop around [`connect_patiently`] (the worker's session loop),
//! not lapin's implicit recovery.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use super::BrokerError;
use crate::redact;

/// An open connection to RabbitMQ. Channels for publishing, consuming and inspecting are
/// opened from it by the broker's own types ([`super::publish::Publisher`],
/// [`super::consume::LaneConsumers`], [`super::inspect::Inspector`], ...).
#[derive(Debug)]
pub struct BrokerConnection {
    inner: Connection,
}

impl BrokerConnection {
    /// A fresh channel on this connection.
    pub(super) async fn channel(&self) -> Result<Channel, BrokerError> {
        self.inner.create_channel().await.map_err(BrokerError::Channel)
    }

    /// Whether the connection is still usable.
    pub fn is_open(&self) -> bool {
        self.inner.status().connected()
    }

    /// Closes the connection; the broker requeues whatever is still unacked on it. A
    /// connection that is already gone is fine: there is nothing left to close.
    pub async fn close(&self, reason: &str) {
        if !self.is_open() {
            return;
        }
        if let Err(error) = self.inner.close(200, reason.into()).await {
            tracing::debug!(%error, "Closing the broker connection failed; it was probably gone already.");
        }
    }
}

/// How long a single exchange with the broker (opening a connection, a round of declarations)
/// may take before it counts as an unresponsive broker. Generous: a loaded broker declaring
/// quorum queues on a slow disk takes seconds, not minutes.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs one exchange with the broker under [`ANSWER_TIMEOUT`].
pub(super) async fn answered<T>(
    what: impl FnOnce() -> String,
    exchange: impl Future<Output = Result<T, BrokerError>>,
) -> Result<T, BrokerError> {
    tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(BrokerError::Unresponsive { what: what(), after: ANSWER_TIMEOUT }))
}

/// Opens one connection, named after this process so operators can find it in the
/// management UI.
pub async fn connect(url: &str, name: &str) -> Result<BrokerConnection, BrokerError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let opening = async {
        Connection::connect(url, properties)
            .await
            .map_err(|source| BrokerError::Connect { url: redact::url(url), source })
    };
    let inner = answered(|| format!("the connection handshake at {}", redact::url(url)), opening).await?;
    Ok(BrokerConnection { inner })
}

/// Connects, retrying with capped exponential backoff and jitter until it works or `cancel`
/// fires. Logs the first failure of an outage and the recovery, not every try.
pub async fn connect_patiently(
    url: &str,
    name: &str,
    cancel: &CancellationToken,
) -> Result<BrokerConnection, BrokerError> {
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
                    tracing::info!(url = %redact::url(url), "Connected to RabbitMQ again.");
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
