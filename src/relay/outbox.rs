//! The outbox relay: hands undelivered outbox events to the broker, in order, at least once.
//!
//! On PostgreSQL every instance runs one. A batch is claimed with `FOR UPDATE SKIP LOCKED` in a
//! transaction that stays open while the broker confirms it, then marked relayed and
//! committed: two instances never hold the same event, and an instance that dies mid-batch
//! (its connection drops, its transaction rolls back) leaves the batch to the next claimer.
//! A claimed event whose product has an earlier undelivered event held by another instance is
//! left for later, so one product's events always leave in order. On SQLite (one process) the
//! batch is read, published and then marked, without holding the write lock while the broker
//! answers.
//!
//! With no broker configured the relay only marks events relayed: they stay for the retention
//! period (webhooks read them), then the pruner removes them.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement, TransactionTrait, prelude::Expr,
};

use super::amqp::AmqpSink;
use crate::database::Database;
use crate::entity::outbox_event;
use crate::error::{Error, Result};

/// Most events per batch.
pub const BATCH: u64 = 500;

/// How long a claim's transaction may sit idle (waiting on the broker) before PostgreSQL ends
/// it: well past the publish timeout.
const CLAIM_IDLE_LIMIT: Duration = Duration::from_secs(30);

/// PostgreSQL: claims up to `$1` undelivered events, oldest first, skipping rows another
/// instance holds. Of a product's claimed events only those before its first undelivered
/// event outside this batch (one another instance holds) are taken: found per product with
/// one short index scan, whatever the backlog. `held_elsewhere` is `MATERIALIZED` so that the
/// scan runs once per product of the batch: inlined, PostgreSQL ran it once per claimed row
/// (twice, in fact), and with a hot product's relayed rows (dead until vacuumed) at the front
/// of its index, a claim of 500 took seconds under load.
const CLAIM_POSTGRES: &str = "\
WITH batch AS (
    SELECT position, product_id FROM outbox_events
    WHERE relayed_at IS NULL
    ORDER BY position
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), held_elsewhere AS MATERIALIZED (
    SELECT p.product_id,
           (SELECT min(o.position) FROM outbox_events o
            WHERE o.product_id = p.product_id
              AND o.relayed_at IS NULL
              AND o.position NOT IN (SELECT position FROM batch)) AS first_foreign
    FROM (SELECT DISTINCT product_id FROM batch) p
)
SELECT e.* FROM outbox_events e
JOIN batch b ON b.position = e.position
JOIN held_elsewhere h ON h.product_id = e.product_id
WHERE h.first_foreign IS NULL OR e.position < h.first_foreign
ORDER BY e.position";

/// Relays every undelivered event, batch after batch; returns how many it relayed.
pub async fn relay_pending(database: &Database, sink: &mut Option<AmqpSink>) -> Result<u64> {
    let mut relayed = 0;
    loop {
        let batch = relay_batch(database, sink).await?;
        relayed += batch;
        if batch == 0 {
            return Ok(relayed);
        }
    }
}

async fn relay_batch(database: &Database, sink: &mut Option<AmqpSink>) -> Result<u64> {
    // Connect before claiming, so no claim is held while the broker is unreachable.
    if let Some(sink) = sink.as_mut() {
        sink.connect().await.map_err(Error::unavailable)?;
    }
    let connection = database.connection();
    if database.is_postgres() {
        let transaction = connection.begin().await?;
        // Should this task ever stall while holding its claim, PostgreSQL ends the session and
        // the rows go back to the other instances.
        transaction
            .execute_unprepared(&format!(
                "SET LOCAL idle_in_transaction_session_timeout = '{}s'",
                CLAIM_IDLE_LIMIT.as_secs()
            ))
            .await?;
        let events = outbox_event::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                DbBackend::Postgres,
                CLAIM_POSTGRES,
                [BATCH.into()],
            ))
            .all(&transaction)
            .await?;
        if events.is_empty() {
            transaction.commit().await?;
            return Ok(0);
        }
        publish(sink, &events).await?;
        mark_relayed(&transaction, &events).await?;
        transaction.commit().await?;
        Ok(events.len() as u64)
    } else {
        let events = outbox_event::Entity::find()
            .filter(outbox_event::Column::RelayedAt.is_null())
            .order_by_asc(outbox_event::Column::Position)
            .limit(BATCH)
            .all(connection)
            .await?;
        if events.is_empty() {
            return Ok(0);
        }
        publish(sink, &events).await?;
        let transaction = database.begin_write().await?;
        mark_relayed(&*transaction, &events).await?;
        transaction.commit().await?;
        Ok(events.len() as u64)
    }
}

async fn publish(sink: &mut Option<AmqpSink>, events: &[outbox_event::Model]) -> Result<()> {
    let Some(sink) = sink.as_mut() else {
        return Ok(());
    };
    match sink.publish(events).await {
        Ok(()) => {
            metrics::counter!("stockroom_event_deliveries_total", "sink" => "amqp", "outcome" => "delivered")
                .increment(events.len() as u64);
            if let Some(oldest) = events.first() {
                let seconds = (Utc::now() - oldest.created_at)
                    .num_microseconds()
                    .unwrap_or(0);
                metrics::histogram!("stockroom_event_delivery_delay_seconds", "sink" => "amqp")
                    .record(seconds as f64 / 1e6);
            }
            Ok(())
        }
        Err(error) => {
            metrics::counter!("stockroom_event_deliveries_total", "sink" => "amqp", "outcome" => "failed")
                .increment(events.len() as u64);
            Err(Error::unavailable(error))
        }
    }
}

async fn mark_relayed(
    transaction: &impl ConnectionTrait,
    events: &[outbox_event::Model],
) -> Result<()> {
    outbox_event::Entity::update_many()
        .col_expr(outbox_event::Column::RelayedAt, Expr::value(Utc::now()))
        .filter(outbox_event::Column::Position.is_in(events.iter().map(|event| event.position)))
        .exec(transaction)
        .await?;
    Ok(())
}

/// Age of the oldest undelivered event (zero when there is none).
pub async fn lag(database: &Database) -> Result<Duration> {
    let oldest: Option<chrono::DateTime<Utc>> = outbox_event::Entity::find()
        .select_only()
        .column(outbox_event::Column::CreatedAt)
        .filter(outbox_event::Column::RelayedAt.is_null())
        .order_by_asc(outbox_event::Column::Position)
        .into_tuple()
        .one(database.connection())
        .await?;
    Ok(oldest
        .and_then(|at| (Utc::now() - at).to_std().ok())
        .unwrap_or_default())
}
