//! The dead-letter queue as operators see it: read every dead letter with its reason, filter,
//! replay onto the jobs exchange (optionally with overrides) and purge.
//!
//! Messages are taken with `basic.get` and left unacked until settled, so a replay or purge
//! that stops halfway leaves every unsettled message in the queue (the broker requeues it when
//! the channel closes). A replay publishes and waits for the broker's confirm before it acks
//! the dead letter: a crash in between duplicates a job, it never loses one.

use std::time::SystemTime;

use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use serde::Serialize;

use super::connection::BrokerConnection;
use super::publish::Publisher;
use super::{BrokerError, Lane, Topology, headers};
use crate::config::{JobLimits, WireFormat};
use crate::job::{JobRequest, Mode, Render, decode_request, encode, id_from_bytes, now_ms};
use crate::redact;

/// Most dead letters read in one go (they are held unacked, in memory); replay and purge of
/// a larger selection go in rounds ([`replay_in_rounds`], [`purge_in_rounds`]).
pub const MAX_BATCH: usize = 10_000;

/// One dead letter, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The job id, or a digest of the body for messages that never decoded.
    pub id: String,
    /// Why it died (`x-riptide-reason`, or the broker's reason such as `delivery_limit`).
    pub reason: String,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: u64,
    /// When it died, RFC 3339.
    pub failed_at: Option<String>,
    /// The job's URL, when the body decodes.
    pub url: Option<String>,
    /// The URL's host.
    pub host: Option<String>,
    /// Content type of the body.
    pub content_type: Option<String>,
    /// Body size in bytes.
    pub bytes: usize,
    /// Every header, for `dlq show`.
    pub headers: Vec<(String, String)>,
    /// The body, when it is UTF-8 (JSON jobs), for `dlq show`.
    pub body_text: Option<String>,
}

/// Which dead letters an operation applies to. Empty means none: callers must select.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Every dead letter.
    pub all: bool,
    /// These ids.
    pub ids: Vec<String>,
    /// Only this reason.
    pub reason: Option<String>,
    /// Only jobs for this host.
    pub host: Option<String>,
    /// Only those that died at or after this time.
    pub since: Option<SystemTime>,
}

impl Selection {
    /// Whether anything at all is selected (a filter alone selects what it matches).
    pub fn is_empty(&self) -> bool {
        !self.all && self.ids.is_empty() && self.reason.is_none() && self.host.is_none() && self.since.is_none()
    }

    fn matches(&self, letter: &DeadLetter) -> bool {
        let id_ok = self.ids.is_empty() || self.ids.contains(&letter.id);
        let reason_ok = self.reason.as_ref().is_none_or(|r| *r == letter.reason);
        let host_ok = self.host.as_ref().is_none_or(|h| letter.host.as_deref() == Some(h.as_str()));
        let since_ok = self.since.is_none_or(|since| {
            letter.failed_at.as_deref().and_then(|t| humantime::parse_rfc3339_weak(t).ok()).is_some_and(|t| t >= since)
        });
        id_ok && reason_ok && host_ok && since_ok
    }
}

/// Fields a replay may change.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// New render mode.
    pub render: Option<Render>,
    /// New extraction mode.
    pub mode: Option<Mode>,
    /// New attempt budget.
    pub max_attempts: Option<u32>,
    /// New per-attempt timeout.
    pub timeout_ms: Option<u64>,
}

impl Overrides {
    fn is_empty(&self) -> bool {
        self.render.is_none() && self.mode.is_none() && self.max_attempts.is_none() && self.timeout_ms.is_none()
    }
}

/// What a replay or purge did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Dead letters matched.
    pub matched: usize,
    /// Dead letters replayed or purged (0 on a dry run).
    pub done: usize,
    /// Dead letters that could not be replayed, with why (they stay in the DLQ).
    pub skipped: Vec<(String, String)>,
}

/// A read of the DLQ on its own channel; unsettled messages return to the queue on close.
pub struct DlqSession {
    channel: Channel,
    publisher: Publisher,
    limits: JobLimits,
    held: Vec<(DeadLetter, BasicGetMessage)>,
}

impl std::fmt::Debug for DlqSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DlqSession").field("held", &self.held.len()).finish_non_exhaustive()
    }
}

impl DlqSession {
    /// Opens the session and reads up to [`MAX_BATCH`] dead letters (held, unacked).
    pub async fn open(
        connection: &BrokerConnection,
        topology: &Topology,
        limits: &JobLimits,
    ) -> Result<Self, BrokerError> {
        let channel = connection.channel().await?;
        let publisher = Publisher::open(connection, topology).await?;
        let queue = topology.dead_letter_queue();
        let mut held = Vec::new();
        while held.len() < MAX_BATCH {
            let got = channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(|source| BrokerError::Consume { queue: queue.clone(), source })?;
            let Some(message) = got else { break };
            held.push((describe(&message, limits), message));
        }
        Ok(DlqSession { channel, publisher, limits: limits.clone(), held })
    }

    /// The dead letters read, in queue order.
    pub fn letters(&self) -> impl Iterator<Item = &DeadLetter> {
        self.held.iter().map(|(letter, _)| letter)
    }

    /// The selected dead letters.
    pub fn select<'a>(&'a self, selection: &'a Selection) -> impl Iterator<Item = &'a DeadLetter> {
        self.letters().filter(move |letter| !selection.is_empty() && selection.matches(letter))
    }

    /// Replays the selected dead letters onto their lane, confirmed, then acks each.
    pub async fn replay(
        &mut self,
        selection: &Selection,
        overrides: &Overrides,
        dry_run: bool,
    ) -> Result<Outcome, BrokerError> {
        let mut outcome = Outcome::default();
        for (letter, message) in &self.held {
            if selection.is_empty() || !selection.matches(letter) {
                continue;
            }
            outcome.matched += 1;
            let (body, properties, lane) = match self.replay_message(message, overrides) {
                Ok(prepared) => prepared,
                Err(why) => {
                    outcome.skipped.push((letter.id.clone(), why));
                    continue;
                }
            };
            if dry_run {
                continue;
            }
            self.publisher.publish_to_lane(&body, properties, lane).await?;
            message.delivery.acker.ack(BasicAckOptions::default()).await.map_err(BrokerError::Channel)?;
            outcome.done += 1;
        }
        Ok(outcome)
    }

    /// The message to publish for a replay: the original bytes, or the job re-encoded with
    /// the overrides; fresh headers (attempt 1, new enqueue time).
    fn replay_message(
        &self,
        message: &BasicGetMessage,
        overrides: &Overrides,
    ) -> Result<(Vec<u8>, BasicProperties, Lane), String> {
        let delivery = &message.delivery;
        let content_type = delivery.properties.content_type().as_ref().map(|c| c.as_str().to_string());
        let decoded = decode_request(&delivery.data, content_type.as_deref(), &self.limits);
        let lane = decoded.as_ref().map(|r| Lane::for_priority(r.priority.unwrap_or(0))).unwrap_or(Lane::Normal);
        let (body, content_type) = if overrides.is_empty() {
            (delivery.data.clone(), content_type)
        } else {
            let request =
                decoded.map_err(|rejection| format!("cannot apply overrides to an undecodable job: {rejection}"))?;
            let request = JobRequest {
                id: Some(request.id.clone().unwrap_or_else(|| id_from_bytes(&delivery.data))),
                render: overrides.render.or(request.render),
                mode: overrides.mode.or(request.mode),
                max_attempts: overrides.max_attempts.or(request.max_attempts),
                timeout_ms: overrides.timeout_ms.or(request.timeout_ms),
                ..request
            };
            let format = if content_type.as_deref() == Some(crate::job::CONTENT_TYPE_JSON) {
                WireFormat::Json
            } else {
                WireFormat::Msgpack
            };
            let (body, ct) = encode(&request, format).map_err(|e| e.to_string())?;
            (body, Some(ct.to_string()))
        };
        let mut table = FieldTable::default();
        headers::set_u64(&mut table, headers::ENQUEUED_MS, now_ms());
        let mut properties = BasicProperties::default().with_headers(table);
        if let Some(ct) = content_type {
            properties = properties.with_content_type(ct.as_str().into());
        }
        if let Some(id) = delivery.properties.message_id() {
            properties = properties.with_message_id(id.clone());
        }
        Ok((body, properties, lane))
    }

    /// Deletes the selected dead letters (acks them).
    pub async fn purge(&mut self, selection: &Selection, dry_run: bool) -> Result<Outcome, BrokerError> {
        let mut outcome = Outcome::default();
        for (letter, message) in &self.held {
            if selection.is_empty() || !selection.matches(letter) {
                continue;
            }
            outcome.matched += 1;
            if !dry_run {
                message.delivery.acker.ack(BasicAckOptions::default()).await.map_err(BrokerError::Channel)?;
                outcome.done += 1;
            }
        }
        Ok(outcome)
    }

    /// Dead letters read by this session (at most [`MAX_BATCH`]).
    pub fn read(&self) -> usize {
        self.held.len()
    }

    /// Closes the session: every dead letter not replayed or purged goes back to the queue.
    pub async fn close(self) -> Result<(), BrokerError> {
        self.publisher.close().await?;
        self.channel.close(200, "dlq session done".into()).await.map_err(BrokerError::Channel)
    }
}

/// Replays the selection from a DLQ of any size: one session of up to [`MAX_BATCH`] dead
/// letters after another, until a round replays nothing or reads less than a full batch.
pub async fn replay_in_rounds(
    connection: &BrokerConnection,
    topology: &Topology,
    limits: &JobLimits,
    selection: &Selection,
    overrides: &Overrides,
) -> Result<Outcome, BrokerError> {
    let mut total = Outcome::default();
    loop {
        let mut session = DlqSession::open(connection, topology, limits).await?;
        let outcome = session.replay(selection, overrides, false).await;
        let read = session.read();
        session.close().await?;
        let outcome = outcome?;
        let round_done = outcome.done;
        total.absorb(outcome);
        if round_done == 0 || read < MAX_BATCH {
            return Ok(total);
        }
    }
}

/// Purges the selection from a DLQ of any size, in rounds as [`replay_in_rounds`] does.
pub async fn purge_in_rounds(
    connection: &BrokerConnection,
    topology: &Topology,
    limits: &JobLimits,
    selection: &Selection,
) -> Result<Outcome, BrokerError> {
    let mut total = Outcome::default();
    loop {
        let mut session = DlqSession::open(connection, topology, limits).await?;
        let outcome = session.purge(selection, false).await;
        let read = session.read();
        session.close().await?;
        let outcome = outcome?;
        let round_done = outcome.done;
        total.absorb(outcome);
        if round_done == 0 || read < MAX_BATCH {
            return Ok(total);
        }
    }
}

impl Outcome {
    fn absorb(&mut self, round: Outcome) {
        self.matched += round.matched;
        self.done += round.done;
        self.skipped.extend(round.skipped);
    }
}

fn describe(message: &BasicGetMessage, limits: &JobLimits) -> DeadLetter {
    let delivery = &message.delivery;
    let properties = &delivery.properties;
    let content_type = properties.content_type().as_ref().map(|c| c.as_str().to_string());
    let request = decode_request(&delivery.data, content_type.as_deref(), limits).ok();
    let host =
        request.as_ref().and_then(|r| url::Url::parse(&r.url).ok()).and_then(|u| u.host_str().map(str::to_string));
    let url = request.as_ref().map(|r| redact::url(&r.url));
    let id = headers::get_str(properties, headers::JOB_ID)
        .or_else(|| request.as_ref().and_then(|r| r.id.clone()))
        .or_else(|| properties.message_id().as_ref().map(|m| m.as_str().to_string()))
        .unwrap_or_else(|| id_from_bytes(&delivery.data));
    let reason = headers::get_str(properties, headers::REASON)
        .or_else(|| headers::get_str(properties, "x-first-death-reason"))
        .unwrap_or_else(|| "unknown".to_string());
    DeadLetter {
        id,
        reason,
        error: headers::get_str(properties, headers::ERROR).unwrap_or_default(),
        attempts: headers::get_u64(properties, headers::ATTEMPTS).unwrap_or(0),
        failed_at: headers::get_str(properties, headers::FAILED_AT),
        url,
        host,
        content_type,
        bytes: delivery.data.len(),
        headers: headers::to_strings(properties),
        body_text: std::str::from_utf8(&delivery.data).ok().filter(|t| t.len() <= 64 * 1024).map(redact::job_json),
    }
}
