//! The broker topology: the versioned migrations in `migrations/`, applying them
//! (`riptide migrate`) and checking that a broker has them before a worker starts.
//!
//! It owns the names of every exchange and queue. It declares and inspects only; publishing
//! and consuming live in `publish.rs` and `consume.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};
use serde::Deserialize;

use super::BrokerError;
use super::connection::{BrokerConnection, answered};
use super::inspect::Inspector;

/// The migrations, oldest first, compiled into the binary so `riptide migrate` needs no files.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_initial.toml", include_str!("../../migrations/0001_initial.toml")),
    ("0002_delay_at_least_once.toml", include_str!("../../migrations/0002_delay_at_least_once.toml")),
];

/// The delay-queue name of migrations that do not name theirs (migration 1's classic queues).
const DEFAULT_DELAY_QUEUE: &str = "{ns}.retry.{lane}.{tier}s";

/// One migration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Migration {
    version: u32,
    description: String,
    redis_schema: u32,
    #[serde(default)]
    exchanges: Vec<ExchangeDecl>,
    #[serde(default)]
    queues: Vec<QueueDecl>,
    #[serde(default)]
    bindings: Vec<BindingDecl>,
    retry: Option<RetryDecl>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeDecl {
    name: String,
    kind: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueDecl {
    name: String,
    kind: QueueKind,
    #[serde(default)]
    arguments: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum QueueKind {
    Quorum,
    Classic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingDecl {
    queue: String,
    exchange: String,
    routing_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryDecl {
    exchange: String,
    /// Name template of a delay queue: `{ns}`, `{lane}` and `{tier}` (seconds) are filled in.
    #[serde(default = "default_delay_queue")]
    queue: String,
    /// Queue type of the delay queues (classic when not said).
    #[serde(default = "classic")]
    kind: QueueKind,
    /// Extra queue arguments of every delay queue.
    #[serde(default)]
    arguments: BTreeMap<String, toml::Value>,
    tiers_secs: Vec<u64>,
    lanes: Vec<RetryLaneDecl>,
}

fn default_delay_queue() -> String {
    DEFAULT_DELAY_QUEUE.to_string()
}

fn classic() -> QueueKind {
    QueueKind::Classic
}

impl RetryDecl {
    fn queue_name(&self, namespace: &str, lane: &str, tier_secs: u64) -> String {
        self.queue.replace("{ns}", namespace).replace("{lane}", lane).replace("{tier}", &tier_secs.to_string())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryLaneDecl {
    name: String,
    exchange: String,
    routing_key: String,
}

/// A job lane: a queue consumed by workers and the routing key that reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Priority 0 to 4.
    Normal,
    /// Priority 5 to 9.
    High,
}

impl Lane {
    /// Both lanes, high first.
    pub const ALL: [Lane; 2] = [Lane::High, Lane::Normal];

    /// The lane's name in queue names and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Normal => "normal",
            Lane::High => "high",
        }
    }

    /// The lane of a job priority.
    pub fn for_priority(priority: u8) -> Lane {
        if priority >= crate::job::HIGH_PRIORITY { Lane::High } else { Lane::Normal }
    }
}

/// The names of everything riptide uses on the broker, for one namespace.
#[derive(Debug, Clone)]
pub struct Topology {
    namespace: String,
    /// The newest migration version compiled in; a worker needs at least this.
    pub version: u32,
    /// The Redis schema version the newest migration sets.
    pub redis_schema: u32,
    /// Delay-queue tiers, ascending.
    pub retry_tiers: Vec<Duration>,
    /// Deliveries a lane allows (`x-delivery-limit`) before the broker dead-letters a message
    /// by itself; `None` when the lanes declare none.
    pub delivery_limit: Option<u64>,
    /// Name template of the current delay queues (the newest migration's).
    delay_queue: String,
    /// Delay queues of older migrations, still drained (what waits there comes back to its
    /// lane when its TTL runs out) but never published to.
    retired_delay_queues: Vec<String>,
}

impl Topology {
    /// The topology of `namespace` as the compiled-in migrations describe it.
    pub fn new(namespace: &str) -> Result<Self, BrokerError> {
        let migrations = load_migrations()?;
        let newest = migrations.last().ok_or_else(|| BrokerError::Migration("no migrations compiled in".into()))?;
        let retries: Vec<&RetryDecl> = migrations.iter().filter_map(|m| m.retry.as_ref()).collect();
        let current = retries.last();
        let retry_tiers =
            current.map(|r| r.tiers_secs.iter().map(|s| Duration::from_secs(*s)).collect()).unwrap_or_default();
        let delay_queue = current.map_or_else(default_delay_queue, |r| r.queue.clone());
        let mut retired_delay_queues = Vec::new();
        for older in retries.iter().rev().skip(1).filter(|r| r.queue != delay_queue) {
            for lane in &older.lanes {
                retired_delay_queues
                    .extend(older.tiers_secs.iter().map(|t| older.queue_name(namespace, &lane.name, *t)));
            }
        }
        let delivery_limit = migrations
            .iter()
            .flat_map(|m| m.queues.iter())
            .filter(|q| q.name == "{ns}.jobs")
            .filter_map(|q| q.arguments.get("x-delivery-limit").and_then(toml::Value::as_integer))
            .next_back()
            .and_then(|limit| u64::try_from(limit).ok());
        Ok(Topology {
            namespace: namespace.to_string(),
            version: newest.version,
            redis_schema: newest.redis_schema,
            retry_tiers,
            delivery_limit,
            delay_queue,
            retired_delay_queues,
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The exchange producers publish jobs to.
    pub fn jobs_exchange(&self) -> String {
        format!("{}.jobs", self.namespace)
    }

    /// The queue of a lane; also the routing key that reaches it on the jobs exchange.
    pub fn lane_queue(&self, lane: Lane) -> String {
        match lane {
            Lane::Normal => format!("{}.jobs", self.namespace),
            Lane::High => format!("{}.jobs.high", self.namespace),
        }
    }

    /// The exchange retries are published to.
    pub fn retry_exchange(&self) -> String {
        format!("{}.retry", self.namespace)
    }

    /// The delay queue of a lane and tier; also its routing key on the retry exchange.
    pub fn delay_queue(&self, lane: Lane, tier: Duration) -> String {
        self.delay_queue
            .replace("{ns}", &self.namespace)
            .replace("{lane}", lane.as_str())
            .replace("{tier}", &tier.as_secs().to_string())
    }

    /// Every delay queue: the current ones of every lane and tier, then the retired ones
    /// of older migrations (drained, never published to).
    pub fn delay_queues(&self) -> Vec<String> {
        let mut queues: Vec<String> = Lane::ALL
            .iter()
            .flat_map(|lane| self.retry_tiers.iter().map(move |tier| self.delay_queue(*lane, *tier)))
            .collect();
        queues.extend(self.retired_delay_queues.iter().cloned());
        queues
    }

    /// The dead-letter exchange.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.namespace)
    }

    /// The dead-letter queue; also its routing key on the dead-letter exchange.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.namespace)
    }

    /// The results exchange (topic; routing keys `result.ok|cached|failed`).
    pub fn results_exchange(&self) -> String {
        format!("{}.results", self.namespace)
    }

    /// The default durable results queue.
    pub fn results_queue(&self) -> String {
        format!("{}.results", self.namespace)
    }

    /// The events exchange.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }

    /// Every queue a worker's drain check watches: both lanes and every delay queue.
    pub fn work_queues(&self) -> Vec<String> {
        let mut queues: Vec<String> = Lane::ALL.iter().map(|lane| self.lane_queue(*lane)).collect();
        queues.extend(self.delay_queues());
        queues
    }

    /// Every queue of the namespace (for cleanup of throwaway namespaces).
    pub fn all_queues(&self) -> Vec<String> {
        let mut queues = self.work_queues();
        queues.push(self.dead_letter_queue());
        queues.push(self.results_queue());
        queues
    }

    /// Every exchange of the namespace, the version markers included.
    pub fn all_exchanges(&self) -> Vec<String> {
        let mut exchanges = vec![
            self.jobs_exchange(),
            self.retry_exchange(),
            self.dead_letter_exchange(),
            self.results_exchange(),
            self.events_exchange(),
        ];
        exchanges.extend((1..=self.version).map(|v| self.marker_exchange(v)));
        exchanges
    }

    /// The exchange whose existence says "migration `version` was applied here". Kept on the
    /// broker itself, so a broker that lost its definitions is noticed too.
    fn marker_exchange(&self, version: u32) -> String {
        format!("{}.topology.v{version:04}", self.namespace)
    }

    fn expand(&self, template: &str) -> String {
        template.replace("{ns}", &self.namespace)
    }

    /// Declares every migration on `connection`'s broker, in order, then the version
    /// markers. Idempotent; returns one line per migration.
    pub async fn migrate(&self, connection: &BrokerConnection) -> Result<Vec<String>, BrokerError> {
        let channel = connection.channel().await?;
        let applied =
            answered(|| format!("the declarations of namespace {}", self.namespace), self.apply(&channel)).await;
        if let Err(error) = channel.close(200, "migrated".into()).await {
            tracing::debug!(%error, "Closing the migration channel failed.");
        }
        applied
    }

    /// Deletes every queue and exchange of the namespace (benchmarks and tests clean up
    /// their throwaway namespaces with it).
    pub async fn delete_all(&self, connection: &BrokerConnection) -> Result<(), BrokerError> {
        let channel = connection.channel().await?;
        let deleted =
            answered(|| format!("the deletions of namespace {}", self.namespace), self.delete_on(&channel)).await;
        if let Err(error) = channel.close(200, "deleted".into()).await {
            tracing::debug!(%error, "Closing the cleanup channel failed.");
        }
        deleted
    }

    async fn delete_on(&self, channel: &Channel) -> Result<(), BrokerError> {
        for queue in self.all_queues() {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(|source| BrokerError::Declare { what: format!("deleting queue {queue}"), source })?;
        }
        for exchange in self.all_exchanges() {
            channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .map_err(|source| BrokerError::Declare { what: format!("deleting exchange {exchange}"), source })?;
        }
        Ok(())
    }

    async fn apply(&self, channel: &Channel) -> Result<Vec<String>, BrokerError> {
        let mut applied = Vec::new();
        for migration in load_migrations()? {
            for exchange in &migration.exchanges {
                self.declare_exchange(channel, &self.expand(&exchange.name), exchange_kind(&exchange.kind)?).await?;
            }
            for queue in &migration.queues {
                let name = self.expand(&queue.name);
                let mut args = self.queue_arguments(&queue.arguments)?;
                if queue.kind == QueueKind::Quorum {
                    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
                }
                declare_queue(channel, &name, args).await?;
            }
            for binding in &migration.bindings {
                bind(
                    channel,
                    &self.expand(&binding.queue),
                    &self.expand(&binding.exchange),
                    &self.expand(&binding.routing_key),
                )
                .await?;
            }
            if let Some(retry) = &migration.retry {
                self.declare_delay_queues(channel, retry).await?;
            }
            self.declare_exchange(channel, &self.marker_exchange(migration.version), ExchangeKind::Fanout).await?;
            applied.push(format!("v{}: {}", migration.version, migration.description));
        }
        Ok(applied)
    }

    async fn declare_delay_queues(&self, channel: &Channel, retry: &RetryDecl) -> Result<(), BrokerError> {
        let exchange = self.expand(&retry.exchange);
        for lane in &retry.lanes {
            for secs in &retry.tiers_secs {
                let name = retry.queue_name(&self.namespace, &lane.name, *secs);
                let mut args = self.queue_arguments(&retry.arguments)?;
                if retry.kind == QueueKind::Quorum {
                    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
                }
                args.insert(
                    "x-message-ttl".into(),
                    AMQPValue::LongLongInt(i64::try_from(secs * 1000).unwrap_or(i64::MAX)),
                );
                args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(self.expand(&lane.exchange).into()));
                args.insert(
                    "x-dead-letter-routing-key".into(),
                    AMQPValue::LongString(self.expand(&lane.routing_key).into()),
                );
                declare_queue(channel, &name, args).await?;
                bind(channel, &name, &exchange, &name).await?;
            }
        }
        Ok(())
    }

    async fn declare_exchange(&self, channel: &Channel, name: &str, kind: ExchangeKind) -> Result<(), BrokerError> {
        let options = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        channel
            .exchange_declare(name.into(), kind, options, FieldTable::default())
            .await
            .map_err(|source| BrokerError::Declare { what: format!("exchange {name}"), source })
    }

    fn queue_arguments(&self, raw: &BTreeMap<String, toml::Value>) -> Result<FieldTable, BrokerError> {
        let mut table = FieldTable::default();
        for (key, value) in raw {
            let value = match value {
                toml::Value::Integer(i) => AMQPValue::LongLongInt(*i),
                toml::Value::String(s) => AMQPValue::LongString(self.expand(s).into()),
                toml::Value::Boolean(b) => AMQPValue::Boolean(*b),
                other => return Err(BrokerError::Migration(format!("argument {key}: unsupported value {other}"))),
            };
            table.insert(ShortString::from(key.as_str()), value);
        }
        Ok(table)
    }

    /// Checks that this broker has the newest migration. A worker refuses to start otherwise.
    /// A failed check closes the inspector's channel (a passive declare of a missing exchange).
    pub async fn verify(&self, inspector: &Inspector) -> Result<(), BrokerError> {
        let channel = inspector.channel();
        let marker = self.marker_exchange(self.version);
        let options = ExchangeDeclareOptions { passive: true, durable: true, ..ExchangeDeclareOptions::default() };
        match channel
            .exchange_declare(marker.as_str().into(), ExchangeKind::Fanout, options, FieldTable::default())
            .await
        {
            Ok(()) => Ok(()),
            Err(_) => Err(BrokerError::TopologyOutdated { namespace: self.namespace.clone(), needed: self.version }),
        }
    }
}

fn exchange_kind(kind: &str) -> Result<ExchangeKind, BrokerError> {
    match kind {
        "direct" => Ok(ExchangeKind::Direct),
        "topic" => Ok(ExchangeKind::Topic),
        "fanout" => Ok(ExchangeKind::Fanout),
        "headers" => Ok(ExchangeKind::Headers),
        other => Err(BrokerError::Migration(format!("unknown exchange kind {other:?}"))),
    }
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> Result<(), BrokerError> {
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
        .await
        .map(|_| ())
        .map_err(|source| BrokerError::Declare { what: format!("queue {name}"), source })
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, routing_key: &str) -> Result<(), BrokerError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| BrokerError::Declare {
            what: format!("binding {exchange} -> {queue} ({routing_key})"),
            source,
        })
}

fn load_migrations() -> Result<Vec<Migration>, BrokerError> {
    let mut migrations = Vec::with_capacity(MIGRATIONS.len());
    for (file, text) in MIGRATIONS {
        let migration: Migration = toml::from_str(text).map_err(|e| BrokerError::Migration(format!("{file}: {e}")))?;
        if migrations.last().is_some_and(|prev: &Migration| prev.version >= migration.version) {
            return Err(BrokerError::Migration(format!("{file}: versions must increase")));
        }
        migrations.push(migration);
    }
    Ok(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_parse_and_name_every_queue() {
        let topology = Topology::new("ns").unwrap();
        assert_eq!(topology.version, 2);
        assert_eq!(topology.delivery_limit, Some(10));
        assert_eq!(topology.retry_tiers.first(), Some(&Duration::from_secs(1)));
        assert_eq!(topology.lane_queue(Lane::High), "ns.jobs.high");
        // Retries go to migration 2's quorum delay queues; migration 1's are drained only.
        assert_eq!(topology.delay_queue(Lane::Normal, Duration::from_secs(30)), "ns.delay.normal.30s");
        let delay = topology.delay_queues();
        assert!(delay.contains(&"ns.retry.normal.30s".to_string()), "{delay:?}");
        assert_eq!(delay.len(), 2 * 2 * topology.retry_tiers.len());
        assert_eq!(topology.work_queues().len(), 2 + delay.len());
    }

    #[test]
    fn priorities_pick_lanes() {
        assert_eq!(Lane::for_priority(0), Lane::Normal);
        assert_eq!(Lane::for_priority(4), Lane::Normal);
        assert_eq!(Lane::for_priority(5), Lane::High);
        assert_eq!(Lane::for_priority(9), Lane::High);
    }
}
