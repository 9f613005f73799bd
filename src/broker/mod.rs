//! Everything riptide does on RabbitMQ: connecting (`connection.rs`), the topology and its
//! migrations (`topology.rs`), confirmed publishing (`publish.rs`), consuming the job lanes
//! (`consume.rs`), dead letters (`dlq.rs`), pool events onto the events exchange (`events.rs`),
//! message headers (`headers.rs`) and queue depths (`inspect.rs`).
//!
//! It never calls up into the pipeline or the pools: the worker joins them.

pub mod connection;
pub mod consume;
pub mod dlq;
pub mod events;
pub mod headers;
pub mod inspect;
pub mod publish;
pub mod topology;

pub use connection::{BrokerConnection, connect, connect_patiently};
pub use topology::{Lane, Topology};

use crate::failure::{Failure, FailureReason};

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The connection could not be opened.
    #[error("cannot connect to RabbitMQ at {url}: {source}")]
    Connect {
        /// The URL with its password redacted.
        url: String,
        /// The client's error.
        #[source]
        source: lapin::Error,
    },
    /// A channel could not be opened or set up.
    #[error("RabbitMQ channel: {0}")]
    Channel(#[source] lapin::Error),
    /// A declaration was refused (often: it exists with other arguments).
    #[error("declaring {what}: {source}")]
    Declare {
        /// What was being declared.
        what: String,
        /// The broker's answer.
        #[source]
        source: lapin::Error,
    },
    /// A migration file is malformed (a build problem, caught by the unit tests).
    #[error("migration: {0}")]
    Migration(String),
    /// The broker lacks the newest migration.
    #[error(
        "the broker topology of namespace {namespace:?} is older than this worker needs (v{needed}); run `riptide migrate`"
    )]
    TopologyOutdated {
        /// The namespace checked.
        namespace: String,
        /// The version this build needs.
        needed: u32,
    },
    /// A publish could not be sent or its confirm never came.
    #[error("publishing to {exchange}: {source}")]
    Publish {
        /// Target exchange.
        exchange: String,
        /// The client's error.
        #[source]
        source: lapin::Error,
    },
    /// The broker refused to take responsibility for a message.
    #[error("the broker nacked a message for {exchange} ({routing_key})")]
    Nacked {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
    },
    /// No queue is bound for the routing key: the message would have been lost.
    #[error("no queue is bound to {exchange} for {routing_key}; run `riptide migrate`")]
    Unroutable {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
    },
    /// A message could not be encoded.
    #[error(transparent)]
    Encode(#[from] crate::job::EncodeError),
    /// A queue could not be read.
    #[error("reading {queue}: {source}")]
    Consume {
        /// The queue.
        queue: String,
        /// The client's error.
        #[source]
        source: lapin::Error,
    },
    /// A message on the results queue is neither a JSON nor a MessagePack result.
    #[error("a result that does not decode: {0}")]
    BadResult(String),
    /// The broker accepted the connection but did not answer in time (a resource alarm, a
    /// quorum queue without a leader, a broker that is shutting down): failing beats hanging.
    #[error("RabbitMQ did not answer {what} within {after:?} (check `rabbitmq-diagnostics alarms`)")]
    Unresponsive {
        /// What was waited for.
        what: String,
        /// How long.
        after: std::time::Duration,
    },
    /// We were told to stop while waiting for the broker.
    #[error("stopped while waiting for RabbitMQ")]
    Cancelled,
}

impl BrokerError {
    /// Broker hiccups are never the job's fault: retryable.
    pub fn classify(&self) -> Failure {
        Failure::retryable(FailureReason::Connect, self.to_string())
    }
}
