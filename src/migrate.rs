//! `riptide migrate`: brings a namespace's broker topology and Redis schema to this build's
//! version (idempotent, safe to run from several processes at once), and removes a namespace
//! (benchmarks and tests clean up their throwaway namespaces with it).
//!
//! It only sequences the two owners: the broker declares its topology (`broker/topology.rs`),
//! the store records its schema version (`store/`).

use crate::broker::{BrokerError, Topology, connect};
use crate::config::Config;
use crate::store::{Store, StoreError};

/// Why a namespace could not be migrated.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// RabbitMQ refused a declaration or could not be reached.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Redis could not record the schema version or delete the namespace's keys.
    #[error("Redis: {0}")]
    Store(#[from] StoreError),
}

/// Applies every migration to the broker and Redis of `config`'s namespace; returns one line
/// per broker migration.
pub async fn migrate(config: &Config) -> Result<Vec<String>, MigrateError> {
    let topology = Topology::new(&config.namespace)?;
    let connection = connect(&config.amqp_url, "riptide-migrate").await?;
    let applied = topology.migrate(&connection).await;
    connection.close("migrated").await;
    let applied = applied?;
    let store = Store::new(&config.redis_url, &config.namespace, &config.store)?;
    store.raise_schema_version(topology.redis_schema).await?;
    Ok(applied)
}

/// Deletes every queue and exchange of `config`'s namespace and its Redis keys.
pub async fn remove(config: &Config) -> Result<(), MigrateError> {
    let topology = Topology::new(&config.namespace)?;
    let connection = connect(&config.amqp_url, "riptide-cleanup").await?;
    let deleted = topology.delete_all(&connection).await;
    connection.close("cleaned").await;
    deleted?;
    Store::new(&config.redis_url, &config.namespace, &config.store)?.delete_namespace().await?;
    Ok(())
}
