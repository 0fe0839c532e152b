//! The webhook dispatcher: sends each pending delivery, signed, and records what came back.
//!
//! Deliveries are claimed with a lease (`claimed_until`), in one `UPDATE` that skips rows other
//! instances are claiming (`FOR UPDATE SKIP LOCKED` on PostgreSQL): two instances never send
//! the same delivery at once, and a crashed instance's claims are taken over when their lease
//! runs out. A delivery is claimed only when no earlier delivery of the same product to the
//! same webhook is still pending, so a webhook receives one product's events in order.
//!
//! Any 2xx is success. `410 Gone` disables the webhook (its pending deliveries fail). Anything
//! else (another status, a timeout, a refused connection) is retried on the configured
//! schedule with ±20% jitter, never sooner than a `Retry-After` asks; after the last retry the
//! delivery fails. Only the first [`RESPONSE_PREFIX_BYTES`] of a response body are kept.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER, USER_AGENT};
use sea_orm::{
    ActiveEnum, ColumnTrait, DbBackend, EntityTrait, QueryFilter, Statement, prelude::Expr,
};

use super::signing::signature;
use super::targets::{self, GuardedResolver};
use crate::database::Database;
use crate::entity::webhook_delivery::DeliveryStatus;
use crate::entity::{outbox_event, webhook, webhook_delivery};
use crate::error::{Error, Result};
use crate::events::outbox::envelope;

/// How much of a response body is kept in the delivery log.
pub const RESPONSE_PREFIX_BYTES: usize = 256;
/// Most deliveries sent at once by one instance.
const SENDING_SLOTS: usize = 32;
/// Most deliveries of one product sent one after another on a slot before it is given back.
const MAX_DELIVERIES_PER_CHAIN: usize = 64;
/// When recording an attempt's outcome failed, the delivery is tried again after this.
const RECORD_FAILURE_RETRY_SECONDS: i64 = 30;
/// Most redirects followed (each one checked like the first target).
const MAX_REDIRECTS: usize = 3;
/// How much longer than one attempt's timeout a claim lasts: time to record the outcome.
/// An instance that dies mid-attempt leaves its claims to others after this.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How webhooks are sent.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Whether targets on loopback, private and link-local addresses may be called.
    pub allow_private_targets: bool,
    /// The wait before each retry: the first entry after the first failure, and so on.
    pub retry_schedule: Vec<Duration>,
    /// How long one attempt may take.
    pub timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            retry_schedule: default_retry_schedule(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over about 28 hours.
pub fn default_retry_schedule() -> Vec<Duration> {
    [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

/// Sends webhook deliveries.
#[derive(Clone)]
pub struct Dispatcher {
    database: Database,
    client: reqwest::Client,
    settings: Arc<WebhookSettings>,
    /// One permit per delivery being sent.
    slots: Arc<tokio::sync::Semaphore>,
    finished: Arc<tokio::sync::Notify>,
}

/// What one attempt came to.
#[derive(Debug)]
enum Outcome {
    Delivered(u16, String),
    Gone(String),
    Failed {
        status: Option<u16>,
        error: String,
        body: Option<String>,
        retry_after: Option<Duration>,
    },
}

impl Dispatcher {
    /// A dispatcher over `database`.
    pub fn new(database: Database, settings: WebhookSettings) -> Self {
        let allow_private = settings.allow_private_targets;
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error("too many redirects");
                }
                match targets::check_form(attempt.url().as_str(), allow_private) {
                    Ok(_) => attempt.follow(),
                    Err(refused) => attempt.error(refused),
                }
            }))
            .no_proxy()
            .build()
            .expect("the webhook HTTP client builds");
        Self {
            database,
            client,
            settings: Arc::new(settings),
            slots: Arc::new(tokio::sync::Semaphore::new(SENDING_SLOTS)),
            finished: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Claims as many due deliveries as there are free sending slots and starts sending each
    /// on its own task (a slow endpoint holds up only its own slots); returns how many it
    /// started. [`Dispatcher::finished`] fires as each one ends.
    pub async fn send_due(&self) -> Result<usize> {
        let mut started = 0;
        loop {
            let free = self.slots.available_permits();
            if free == 0 {
                return Ok(started);
            }
            let claimed = self.claim(free as u64).await?;
            if claimed.is_empty() {
                return Ok(started);
            }
            started += claimed.len();
            for delivery in claimed {
                let slot = self
                    .slots
                    .clone()
                    .try_acquire_owned()
                    .map_err(Error::internal)?;
                let dispatcher = self.clone();
                tokio::spawn(async move {
                    let mut next = Some(delivery);
                    let mut sent = 0;
                    while let Some(delivery) = next.take() {
                        sent += 1;
                        // A busy product gives its slot back now and then, so it does not
                        // hold a slot for as long as its events keep coming.
                        if dispatcher.attempt_and_record(delivery.clone()).await
                            && sent < MAX_DELIVERIES_PER_CHAIN
                        {
                            next = match dispatcher.claim_next_in_order(&delivery).await {
                                Ok(next) => next,
                                Err(error) => {
                                    tracing::debug!(
                                        ?error,
                                        "claiming the next delivery in order failed"
                                    );
                                    None
                                }
                            };
                        }
                    }
                    drop(slot);
                    dispatcher.finished.notify_one();
                });
            }
        }
    }

    /// Fires when a delivery started by [`Dispatcher::send_due`] has ended (the next in its
    /// product's order may be sendable now).
    pub async fn finished(&self) {
        self.finished.notified().await;
    }

    /// Whether any webhook is enabled.
    pub async fn any_enabled(&self) -> Result<bool> {
        use sea_orm::PaginatorTrait;
        Ok(webhook::Entity::find()
            .filter(webhook::Column::Enabled.eq(true))
            .count(self.database.connection())
            .await?
            > 0)
    }

    /// When the next delivery this instance could claim falls due: pending, its webhook
    /// enabled, not held by another instance, and first in its product's order (`None`:
    /// nothing is waiting). Deliveries waiting behind an earlier one that is being retried
    /// are not due, whatever their own time says.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let backend = if self.database.is_postgres() {
            DbBackend::Postgres
        } else {
            DbBackend::Sqlite
        };
        let next = webhook_delivery::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                backend,
                "SELECT c.* FROM webhook_deliveries c \
                 JOIN webhooks w ON w.id = c.webhook_id \
                 WHERE c.status = 'PENDING' AND w.enabled \
                   AND (c.claimed_until IS NULL OR c.claimed_until < $1) \
                   AND NOT EXISTS ( \
                       SELECT 1 FROM webhook_deliveries p \
                       WHERE p.webhook_id = c.webhook_id AND p.product_id = c.product_id \
                         AND p.status = 'PENDING' AND p.position < c.position) \
                 ORDER BY c.next_attempt_at LIMIT 1",
                [Utc::now().into()],
            ))
            .one(self.database.connection())
            .await?;
        Ok(next.map(|delivery| delivery.next_attempt_at))
    }

    async fn claim(&self, limit: u64) -> Result<Vec<webhook_delivery::Model>> {
        let now = Utc::now();
        let lease = chrono::Duration::from_std(self.settings.timeout + LEASE_MARGIN)
            .map_err(Error::internal)?;
        let postgres = self.database.is_postgres();
        let sql = format!(
            "UPDATE webhook_deliveries SET claimed_until = $1, attempts = attempts + 1 \
             WHERE id IN ( \
                 SELECT c.id FROM webhook_deliveries c \
                 JOIN webhooks w ON w.id = c.webhook_id \
                 WHERE c.status = 'PENDING' AND w.enabled \
                   AND c.next_attempt_at <= $2 \
                   AND (c.claimed_until IS NULL OR c.claimed_until < $2) \
                   AND NOT EXISTS ( \
                       SELECT 1 FROM webhook_deliveries p \
                       WHERE p.webhook_id = c.webhook_id AND p.product_id = c.product_id \
                         AND p.status = 'PENDING' AND p.position < c.position) \
                 ORDER BY c.position \
                 LIMIT $3 {lock}) \
             RETURNING *",
            lock = if postgres {
                "FOR UPDATE OF c SKIP LOCKED"
            } else {
                ""
            },
        );
        let backend = if postgres {
            DbBackend::Postgres
        } else {
            DbBackend::Sqlite
        };
        let claimed = if postgres {
            webhook_delivery::Entity::find()
                .from_raw_sql(Statement::from_sql_and_values(
                    backend,
                    sql,
                    [(now + lease).into(), now.into(), limit.into()],
                ))
                .all(self.database.connection())
                .await?
        } else {
            // SQLite: one writer at a time, under the write lock like every other write.
            let transaction = self.database.begin_write().await?;
            let claimed = webhook_delivery::Entity::find()
                .from_raw_sql(Statement::from_sql_and_values(
                    backend,
                    sql,
                    [(now + lease).into(), now.into(), limit.into()],
                ))
                .all(&*transaction)
                .await?;
            transaction.commit().await?;
            claimed
        };
        Ok(claimed)
    }

    /// Sends one claimed delivery and records the outcome; `Ok(true)` when it was delivered.
    async fn attempt(&self, delivery: webhook_delivery::Model) -> Result<bool> {
        let connection = self.database.connection();
        let hook = webhook::Entity::find_by_id(delivery.webhook_id)
            .one(connection)
            .await?;
        let event = outbox_event::Entity::find()
            .filter(outbox_event::Column::Id.eq(delivery.event_id))
            .one(connection)
            .await?;
        let (Some(hook), Some(event)) = (hook, event) else {
            // The webhook was deleted or the event pruned meanwhile.
            self.finish(
                &delivery,
                DeliveryStatus::Failed,
                None,
                Some("the webhook or its event no longer exists".into()),
                None,
            )
            .await?;
            return Ok(false);
        };
        let body = envelope(
            event.id,
            &event.event_type,
            event.occurred_at,
            event.product_id,
            event.sequence,
            &event.data,
        );
        let lease_left = delivery
            .claimed_until
            .map_or(chrono::Duration::zero(), |until| until - Utc::now());
        if lease_left.to_std().unwrap_or_default() < self.settings.timeout {
            // Waiting for a connection took most of the lease: an attempt now could outlive
            // it and run alongside another instance's. The lease runs out and it is claimed
            // again.
            tracing::debug!(delivery = %delivery.id, "lease nearly out before sending; left for a new claim");
            return Ok(false);
        }
        let outcome = self.send(&hook, &event, body).await;
        let delivered = matches!(outcome, Outcome::Delivered(..));
        self.record(&delivery, &hook, outcome).await?;
        Ok(delivered)
    }

    /// Sends one claimed delivery and records its outcome; if recording fails, tries once
    /// more without the response body, so an attempt is never left unrecorded (and resent
    /// when its lease runs out) because of what an endpoint answered.
    async fn attempt_and_record(&self, delivery: webhook_delivery::Model) -> bool {
        let result = self.attempt(delivery.clone()).await;
        if let Err(error) = &result {
            tracing::warn!(?error, delivery = %delivery.id, "recording a webhook attempt failed; recording it without the response");
            let fallback = self
                .update(&delivery, |row| {
                    row.last_response = sea_orm::Set(None);
                    row.last_error =
                        sea_orm::Set(Some("the outcome could not be recorded; retrying".into()));
                    row.claimed_until = sea_orm::Set(None);
                    row.next_attempt_at = sea_orm::Set(
                        Utc::now() + chrono::Duration::seconds(RECORD_FAILURE_RETRY_SECONDS),
                    );
                })
                .await;
            if let Err(error) = fallback {
                tracing::warn!(?error, delivery = %delivery.id, "recording a webhook attempt failed again; its lease will run out");
            }
        }
        matches!(result, Ok(true))
    }

    /// Claims the next delivery of `delivered`'s webhook and product, if it is the first
    /// pending one in that order, due, and held by no one: a product's deliveries then follow
    /// each other on one task without a full claim each.
    async fn claim_next_in_order(
        &self,
        delivered: &webhook_delivery::Model,
    ) -> Result<Option<webhook_delivery::Model>> {
        let now = Utc::now();
        let lease = chrono::Duration::from_std(self.settings.timeout + LEASE_MARGIN)
            .map_err(Error::internal)?;
        let backend = if self.database.is_postgres() {
            DbBackend::Postgres
        } else {
            DbBackend::Sqlite
        };
        let statement = Statement::from_sql_and_values(
            backend,
            "UPDATE webhook_deliveries SET claimed_until = $1, attempts = attempts + 1 \
             WHERE id = ( \
                 SELECT id FROM webhook_deliveries \
                 WHERE webhook_id = $2 AND product_id = $3 AND status = 'PENDING' \
                 ORDER BY position LIMIT 1) \
               AND status = 'PENDING' AND next_attempt_at <= $4 \
               AND (claimed_until IS NULL OR claimed_until < $4) \
               AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = $2 AND w.enabled) \
             RETURNING *",
            [
                (now + lease).into(),
                delivered.webhook_id.into(),
                delivered.product_id.into(),
                now.into(),
            ],
        );
        let transaction = self.database.begin_write().await?;
        let next = webhook_delivery::Entity::find()
            .from_raw_sql(statement)
            .one(&*transaction)
            .await?;
        transaction.commit().await?;
        Ok(next)
    }

    async fn send(
        &self,
        hook: &webhook::Model,
        event: &outbox_event::Model,
        body: String,
    ) -> Outcome {
        if let Err(refused) = targets::check_form(&hook.url, self.settings.allow_private_targets) {
            return failed(None, refused.to_string(), None, None);
        }
        let id = event.id.to_string();
        let timestamp = Utc::now().timestamp();
        let signed = signature(&hook.secret, &id, timestamp, &body);
        let request = self
            .client
            .post(&hook.url)
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("Stockroom-Webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed)
            .body(body);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let reason = if error.is_timeout() {
                    "timed out".to_owned()
                } else if error.is_redirect() {
                    format!("redirect refused: {}", error_chain(&error))
                } else {
                    format!("request failed: {}", error_chain(&error))
                };
                return failed(None, reason, None, None);
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let mut prefix = Vec::new();
        while prefix.len() < RESPONSE_PREFIX_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => prefix.extend_from_slice(&chunk),
                _ => break,
            }
        }
        prefix.truncate(RESPONSE_PREFIX_BYTES);
        // Text as PostgreSQL stores it: valid UTF-8 (a cut character replaced) without NULs.
        let prefix = String::from_utf8_lossy(&prefix).replace('\0', "\u{FFFD}");
        if status.is_success() {
            Outcome::Delivered(status.as_u16(), prefix)
        } else if status == StatusCode::GONE {
            Outcome::Gone(prefix)
        } else {
            failed(
                Some(status.as_u16()),
                format!("answered {status}"),
                Some(prefix),
                retry_after,
            )
        }
    }

    async fn record(
        &self,
        delivery: &webhook_delivery::Model,
        hook: &webhook::Model,
        outcome: Outcome,
    ) -> Result<()> {
        match outcome {
            Outcome::Delivered(status, body) => {
                metrics::counter!("stockroom_event_deliveries_total", "sink" => "webhook", "outcome" => "delivered").increment(1);
                let seconds = (Utc::now() - delivery.created_at)
                    .num_microseconds()
                    .unwrap_or(0);
                metrics::histogram!("stockroom_event_delivery_delay_seconds", "sink" => "webhook")
                    .record(seconds as f64 / 1e6);
                self.finish(
                    delivery,
                    DeliveryStatus::Succeeded,
                    Some(status),
                    None,
                    Some(body),
                )
                .await
            }
            Outcome::Gone(body) => {
                metrics::counter!("stockroom_event_deliveries_total", "sink" => "webhook", "outcome" => "gone").increment(1);
                tracing::warn!(webhook = %hook.id, "a webhook answered 410 Gone and is disabled");
                let transaction = self.database.begin_write().await?;
                webhook::Entity::update_many()
                    .col_expr(webhook::Column::Enabled, Expr::value(false))
                    .col_expr(
                        webhook::Column::DisabledReason,
                        Expr::value("the endpoint answered 410 Gone"),
                    )
                    .col_expr(webhook::Column::UpdatedAt, Expr::value(Utc::now()))
                    .filter(webhook::Column::Id.eq(hook.id))
                    .exec(&*transaction)
                    .await?;
                let now = Utc::now();
                webhook_delivery::Entity::update_many()
                    .col_expr(
                        webhook_delivery::Column::Status,
                        Expr::value(DeliveryStatus::Failed.to_value()),
                    )
                    .col_expr(
                        webhook_delivery::Column::LastError,
                        Expr::value("the webhook was disabled: its endpoint answered 410 Gone"),
                    )
                    .col_expr(webhook_delivery::Column::FinishedAt, Expr::value(now))
                    .col_expr(
                        webhook_delivery::Column::ClaimedUntil,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .filter(webhook_delivery::Column::WebhookId.eq(hook.id))
                    .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
                    .filter(webhook_delivery::Column::Id.ne(delivery.id))
                    .exec(&*transaction)
                    .await?;
                transaction.commit().await?;
                self.finish(
                    delivery,
                    DeliveryStatus::Failed,
                    Some(StatusCode::GONE.as_u16()),
                    Some("the endpoint answered 410 Gone; the webhook is disabled".into()),
                    Some(body),
                )
                .await
            }
            Outcome::Failed {
                status,
                error,
                body,
                retry_after,
            } => {
                let retry = usize::try_from(delivery.attempts)
                    .ok()
                    .and_then(|attempts| attempts.checked_sub(1))
                    .and_then(|index| self.settings.retry_schedule.get(index));
                let Some(wait) = retry else {
                    metrics::counter!("stockroom_event_deliveries_total", "sink" => "webhook", "outcome" => "failed").increment(1);
                    return self
                        .finish(delivery, DeliveryStatus::Failed, status, Some(error), body)
                        .await;
                };
                metrics::counter!("stockroom_event_deliveries_total", "sink" => "webhook", "outcome" => "retry").increment(1);
                let jitter = rand::rng().random_range(0.8..1.2);
                let wait = wait.mul_f64(jitter).max(retry_after.unwrap_or_default());
                let next =
                    Utc::now() + chrono::Duration::from_std(wait).map_err(Error::internal)?;
                self.update(delivery, |row| {
                    row.next_attempt_at = sea_orm::Set(next);
                    row.last_status_code = sea_orm::Set(status.map(i32::from));
                    row.last_error = sea_orm::Set(Some(error));
                    row.last_response = sea_orm::Set(body);
                    row.claimed_until = sea_orm::Set(None);
                })
                .await
            }
        }
    }

    async fn finish(
        &self,
        delivery: &webhook_delivery::Model,
        status: DeliveryStatus,
        code: Option<u16>,
        error: Option<String>,
        body: Option<String>,
    ) -> Result<()> {
        self.update(delivery, |row| {
            row.status = sea_orm::Set(status);
            row.last_status_code = sea_orm::Set(code.map(i32::from));
            row.last_error = sea_orm::Set(error);
            row.last_response = sea_orm::Set(body);
            row.claimed_until = sea_orm::Set(None);
            row.finished_at = sea_orm::Set(Some(Utc::now()));
        })
        .await
    }

    async fn update(
        &self,
        delivery: &webhook_delivery::Model,
        change: impl FnOnce(&mut webhook_delivery::ActiveModel),
    ) -> Result<()> {
        let mut row = webhook_delivery::ActiveModel {
            id: sea_orm::Unchanged(delivery.id),
            ..Default::default()
        };
        change(&mut row);
        let transaction = self.database.begin_write().await?;
        // Only while the row is still this attempt's (pending, with our lease: the claim's
        // `claimed_until` is the fencing token): a delivery that was meanwhile failed by a 410,
        // or whose lease ran out and was claimed again, keeps its newer state.
        webhook_delivery::Entity::update_many()
            .set(row)
            .filter(webhook_delivery::Column::Id.eq(delivery.id))
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
            .filter(webhook_delivery::Column::ClaimedUntil.eq(delivery.claimed_until))
            .exec(&*transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }
}

fn failed(
    status: Option<u16>,
    error: String,
    body: Option<String>,
    retry_after: Option<Duration>,
) -> Outcome {
    Outcome::Failed {
        status,
        error,
        body,
        retry_after,
    }
}

/// A `Retry-After` header: seconds, or an HTTP date (capped at a day).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&Utc) - Utc::now()).to_std().ok()?
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// An error with its causes, for the delivery log (no secrets: URLs are the operator's own).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("99999999"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        let soon = (Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
    }

    #[test]
    fn the_default_schedule_spans_about_a_day() {
        let total: Duration = default_retry_schedule().iter().sum();
        assert!(total > Duration::from_secs(20 * 3600) && total < Duration::from_secs(36 * 3600));
    }
}
