//! `riptide dlq list | show | replay | purge`: the operator's tools for dead letters, over
//! [`crate::broker::dlq`]. Replay and purge need a selection (ids, `--all` or a filter) and
//! take `--dry-run`; both print counts.

use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args, Subcommand};

use crate::broker::dlq::{DlqSession, MAX_BATCH, Overrides, Selection, purge_in_rounds, replay_in_rounds};
use crate::broker::{Topology, connect};
use crate::config::Config;
use crate::job::{Mode, Render};

/// The `dlq` subcommands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters (id, reason, attempts, time, URL).
    List {
        /// Filters.
        #[command(flatten)]
        filter: FilterArgs,
        /// Print JSON lines instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter with every header and its body.
    Show {
        /// Its id (job id, or the digest shown by `list` for undecodable messages).
        id: String,
    },
    /// Put dead letters back on the jobs exchange (confirmed before each is removed).
    Replay {
        /// Ids to replay.
        ids: Vec<String>,
        /// Filters.
        #[command(flatten)]
        filter: FilterArgs,
        /// New render mode for the replayed jobs.
        #[arg(long, value_parser = super::parse_render)]
        render: Option<Render>,
        /// New extraction mode.
        #[arg(long, value_parser = super::parse_mode)]
        mode: Option<Mode>,
        /// New attempt budget.
        #[arg(long)]
        max_attempts: Option<u32>,
        /// New per-attempt timeout in milliseconds.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Count what would be replayed, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete dead letters.
    Purge {
        /// Ids to delete.
        ids: Vec<String>,
        /// Filters.
        #[command(flatten)]
        filter: FilterArgs,
        /// Count what would be deleted, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Filters shared by the subcommands.
#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Every dead letter.
    #[arg(long)]
    pub all: bool,
    /// Only this reason (e.g. http_status, timeout, invalid_job, delivery_limit).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only jobs for this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only those that died within this long (e.g. 30m, 2h) or since this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
}

impl FilterArgs {
    fn selection(&self, ids: Vec<String>) -> anyhow::Result<Selection> {
        let since = match &self.since {
            None => None,
            Some(raw) => Some(match humantime::parse_duration(raw) {
                // Longer ago than the clock goes back: everything.
                Ok(ago) => SystemTime::now().checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH),
                Err(_) => humantime::parse_rfc3339_weak(raw)
                    .map_err(|_| anyhow::anyhow!("--since {raw:?}: use a duration (30m, 2h) or an RFC 3339 time"))?,
            }),
        };
        Ok(Selection { all: self.all, ids, reason: self.reason.clone(), host: self.host.clone(), since })
    }
}

/// Runs a `dlq` subcommand.
pub async fn run(config: &Config, command: DlqCommand) -> anyhow::Result<ExitCode> {
    let topology = Topology::new(&config.namespace)?;
    let connection = connect(&config.amqp_url, "riptide-dlq").await?;
    let mut session = DlqSession::open(&connection, &topology, &config.job).await?;
    let code = match command {
        DlqCommand::Replay { ids, filter, render, mode, max_attempts, timeout_ms, dry_run: false } => {
            // Rounds of their own sessions: this one goes back untouched first.
            session.close().await?;
            let selection = filter.selection(ids)?;
            anyhow::ensure!(!selection.is_empty(), "select what to replay: ids, --all, --reason, --host or --since");
            let overrides = Overrides { render, mode, max_attempts, timeout_ms };
            let outcome = replay_in_rounds(&connection, &topology, &config.job, &selection, &overrides).await?;
            for (id, why) in &outcome.skipped {
                eprintln!("skipped {id}: {why}");
            }
            println!("replayed {} of {} matched dead letter(s)", outcome.done, outcome.matched);
            connection.close("dlq done").await;
            return Ok(ExitCode::SUCCESS);
        }
        DlqCommand::Purge { ids, filter, dry_run: false } => {
            session.close().await?;
            let selection = filter.selection(ids)?;
            anyhow::ensure!(!selection.is_empty(), "select what to purge: ids, --all, --reason, --host or --since");
            let outcome = purge_in_rounds(&connection, &topology, &config.job, &selection).await?;
            println!("purged {} dead letter(s)", outcome.done);
            connection.close("dlq done").await;
            return Ok(ExitCode::SUCCESS);
        }
        DlqCommand::List { filter, json } => {
            let selection = filter.selection(Vec::new())?;
            let everything = Selection { all: true, ..Selection::default() };
            let chosen = if selection.is_empty() { &everything } else { &selection };
            let mut count = 0;
            for letter in session.select(chosen) {
                count += 1;
                if json {
                    println!("{}", serde_json::to_string(letter)?);
                } else {
                    println!(
                        "{:<40} {:<24} {:>2}x  {:<24}  {}",
                        letter.id,
                        letter.reason,
                        letter.attempts,
                        letter.failed_at.as_deref().unwrap_or("-"),
                        letter.url.as_deref().unwrap_or("(undecodable)")
                    );
                }
            }
            if session.read() >= MAX_BATCH {
                eprintln!(
                    "{count} dead letter(s) among the first {MAX_BATCH} read; the DLQ holds more (narrow with filters, or purge / replay, which go in rounds)"
                );
            } else {
                eprintln!("{count} dead letter(s)");
            }
            ExitCode::SUCCESS
        }
        DlqCommand::Show { id } => {
            let selection = Selection { ids: vec![id.clone()], ..Selection::default() };
            match session.select(&selection).next() {
                Some(letter) => {
                    println!("{}", serde_json::to_string_pretty(letter)?);
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("no dead letter {id:?}");
                    ExitCode::from(3)
                }
            }
        }
        DlqCommand::Replay { ids, filter, render, mode, max_attempts, timeout_ms, dry_run } => {
            let selection = filter.selection(ids)?;
            anyhow::ensure!(!selection.is_empty(), "select what to replay: ids, --all, --reason, --host or --since");
            let overrides = Overrides { render, mode, max_attempts, timeout_ms };
            let outcome = session.replay(&selection, &overrides, dry_run).await?;
            for (id, why) in &outcome.skipped {
                eprintln!("skipped {id}: {why}");
            }
            println!(
                "would replay {} of {} matched dead letter(s)",
                outcome.matched - outcome.skipped.len(),
                outcome.matched
            );
            ExitCode::SUCCESS
        }
        DlqCommand::Purge { ids, filter, dry_run } => {
            let selection = filter.selection(ids)?;
            anyhow::ensure!(!selection.is_empty(), "select what to purge: ids, --all, --reason, --host or --since");
            let outcome = session.purge(&selection, dry_run).await?;
            println!("would purge {} dead letter(s)", outcome.matched);
            ExitCode::SUCCESS
        }
    };
    session.close().await?;
    connection.close("dlq done").await;
    Ok(code)
}
