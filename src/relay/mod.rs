//! Events leaving the process: the background tasks that take committed events from the
//! outbox to the systems outside, on every instance.
//!
//! - the **outbox relay** publishes events to RabbitMQ (`--amqp-url`), in order, at least once;
//! - the **webhook dispatcher** sends each webhook its deliveries, signed, with retries;
//! - the **pruner** removes delivered events and finished deliveries after the retention period.
//!
//! Each wakes when a commit is seen (on PostgreSQL, any instance's) and at least once a second,
//! so a missed wake-up only delays delivery. Failures are logged and retried with back-off;
//! they never stop the server.

pub mod amqp;
pub mod outbox;
pub mod signing;
pub mod targets;
pub mod webhooks;

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::database::Database;
use crate::error::Result;
use crate::events::EventBus;
use amqp::AmqpSink;
pub use webhooks::{Dispatcher, WebhookSettings, default_retry_schedule};

/// The longest a relay sleeps when nothing wakes it.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How soon the dispatcher looks again at a delivery that is due but cannot be sent yet.
const BLOCKED_POLL: Duration = Duration::from_millis(250);
/// How often delivered rows older than the retention period are removed.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Most rows one prune statement removes.
const PRUNE_CHUNK: u64 = 10_000;

/// Where events go and for how long delivered ones are kept.
#[derive(Clone, Debug)]
pub struct RelaySettings {
    /// `amqp://...` of the broker; `None`: no broker.
    pub amqp_url: Option<String>,
    /// The topic exchange events are published to.
    pub amqp_exchange: String,
    /// How webhooks are sent.
    pub webhooks: WebhookSettings,
    /// How long delivered events and finished deliveries are kept.
    pub retention: Duration,
}

/// Starts the relay, the dispatcher and the pruner on the current runtime.
pub fn spawn(database: Database, events: &EventBus, settings: RelaySettings) {
    let mut sink = settings
        .amqp_url
        .clone()
        .map(|url| AmqpSink::new(url, settings.amqp_exchange.clone()));
    let relay_database = database.clone();
    let mut commits = events.commits();
    tokio::spawn(async move {
        let mut backoff = Backoff::default();
        loop {
            match outbox::relay_pending(&relay_database, &mut sink).await {
                Ok(_) => backoff.reset(),
                Err(error) => {
                    let wait = backoff.next();
                    tracing::warn!(?error, retry_in = ?wait, "relaying outbox events failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
            match outbox::lag(&relay_database).await {
                Ok(lag) => metrics::gauge!("stockroom_outbox_lag_seconds").set(lag.as_secs_f64()),
                Err(error) => tracing::debug!(?error, "reading the outbox lag failed"),
            }
            if let Ok(Err(_)) = tokio::time::timeout(IDLE_POLL, commits.changed()).await {
                // The bus is gone (the server is stopping): no more wake-ups, only the timer.
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    });

    let dispatcher = Dispatcher::new(database.clone(), settings.webhooks.clone());
    let mut commits = events.commits();
    tokio::spawn(async move {
        let mut backoff = Backoff::default();
        loop {
            // With no enabled webhook there is nothing to send: look once a second instead of
            // at every commit.
            if let Ok(false) = dispatcher.any_enabled().await {
                metrics::gauge!("stockroom_webhook_lag_seconds").set(0.0);
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            let wait = match dispatcher.send_due().await {
                Ok(started) => {
                    backoff.reset();
                    if started > 0 {
                        // Look again when one ends or a commit comes.
                        continue;
                    }
                    match dispatcher.next_due().await {
                        Ok(Some(due)) => {
                            let overdue = (Utc::now() - due).to_std().unwrap_or_default();
                            metrics::gauge!("stockroom_webhook_lag_seconds")
                                .set(overdue.as_secs_f64());
                            // Due already but not sendable (another instance holds it, or an
                            // earlier delivery of its product goes first): look again soon,
                            // not in a busy loop.
                            let until_due = (due - Utc::now()).to_std().unwrap_or(BLOCKED_POLL);
                            until_due.clamp(Duration::from_millis(10), IDLE_POLL)
                        }
                        Ok(None) => {
                            metrics::gauge!("stockroom_webhook_lag_seconds").set(0.0);
                            IDLE_POLL
                        }
                        Err(error) => {
                            tracing::debug!(?error, "reading the next webhook due time failed");
                            IDLE_POLL
                        }
                    }
                }
                Err(error) => {
                    let wait = backoff.next();
                    tracing::warn!(?error, retry_in = ?wait, "sending webhooks failed; retrying");
                    wait
                }
            };
            tokio::select! {
                changed = commits.changed() => {
                    if changed.is_err() {
                        // The bus is gone (the server is stopping): only the timer is left.
                        tokio::time::sleep(wait).await;
                    }
                }
                () = dispatcher.finished() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    });

    tokio::spawn(async move {
        let mut every = tokio::time::interval(PRUNE_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match prune(&database, settings.retention).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "pruned delivered events"),
                Err(error) => tracing::warn!(?error, "pruning the outbox failed; retrying"),
            }
        }
    });
}

/// Removes events relayed before the retention period that no webhook still waits for, and
/// deliveries finished before it. Returns how many rows it removed.
pub async fn prune(database: &Database, retention: Duration) -> Result<u64> {
    let cutoff = Utc::now()
        - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(36_500));
    let backend = if database.is_postgres() {
        DbBackend::Postgres
    } else {
        DbBackend::Sqlite
    };
    let mut removed = 0;
    loop {
        let transaction = database.begin_write().await?;
        let deliveries = transaction
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "DELETE FROM webhook_deliveries WHERE id IN ( \
                     SELECT id FROM webhook_deliveries \
                     WHERE status <> 'PENDING' AND finished_at < $1 LIMIT $2)",
                [cutoff.into(), PRUNE_CHUNK.into()],
            ))
            .await?
            .rows_affected();
        let events = transaction
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "DELETE FROM outbox_events WHERE position IN ( \
                     SELECT e.position FROM outbox_events e \
                     WHERE e.relayed_at < $1 \
                       AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                                       WHERE d.event_id = e.id AND d.status = 'PENDING') \
                     LIMIT $2)",
                [cutoff.into(), PRUNE_CHUNK.into()],
            ))
            .await?
            .rows_affected();
        transaction.commit().await?;
        removed += deliveries + events;
        if deliveries < PRUNE_CHUNK && events < PRUNE_CHUNK {
            return Ok(removed);
        }
    }
}

/// Exponential back-off from 100 ms to 5 s.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = Duration::from_millis(100) * 2u32.pow(self.failures.min(6));
        self.failures += 1;
        wait.min(Duration::from_secs(5))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}
