//! Writing events into the outbox, inside the transaction of the change they describe.
//!
//! Each product's events are numbered by a counter row per product (`outbox_sequences`),
//! updated in the same transaction: a change that rolls back gives its numbers back, and two
//! changes of one product (which already hold its row lock one after the other) number theirs
//! one after the other, so a product's sequence has no gaps and follows commit order. The
//! deliveries for every enabled webhook that receives the event's type are written in the same
//! transaction too: a webhook created before the commit gets the event, whatever happens next.
//!
//! On PostgreSQL the counters, the events, the deliveries and the `NOTIFY`s for live
//! subscribers are one statement (data-modifying `WITH` clauses), so the outbox adds no round
//! trip to a change that holds a row lock.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Set, Statement};
use serde_json::json;
use uuid::Uuid;

use super::event::NewOutboxEvent;
use crate::entity::webhook_delivery::DeliveryStatus;
use crate::entity::{outbox_event, outbox_sequence, webhook, webhook_delivery};
use crate::error::{Error, Result};

/// Most rows per `INSERT` on SQLite (its bind limit is 32,766).
const SQLITE_CHUNK: usize = 500;

/// The PostgreSQL statement: counters, events, deliveries, then the live notifications.
/// `$1`: the events as a JSON array; `$2`: the notification payloads as a JSON array of
/// strings; `$3`: the notification channel.
const POSTGRES_WRITE: &str = "\
WITH input AS (
    SELECT * FROM json_to_recordset($1::json)
        AS e(ord int, id uuid, event_type text, product_id uuid, occurred_at timestamptz, data text)
), counts AS (
    SELECT product_id, count(*)::bigint AS n FROM input GROUP BY product_id
), bumped AS (
    INSERT INTO outbox_sequences AS s (product_id, last_sequence)
    SELECT product_id, n FROM counts ORDER BY product_id
    ON CONFLICT (product_id) DO UPDATE SET last_sequence = s.last_sequence + excluded.last_sequence
    RETURNING s.product_id, s.last_sequence
), stored AS (
    INSERT INTO outbox_events (id, event_type, product_id, sequence, occurred_at, data, created_at)
    SELECT i.id, i.event_type, i.product_id,
           b.last_sequence - c.n + row_number() OVER (PARTITION BY i.product_id ORDER BY i.ord),
           i.occurred_at, i.data, clock_timestamp()
    FROM input i
    JOIN bumped b ON b.product_id = i.product_id
    JOIN counts c ON c.product_id = i.product_id
    ORDER BY i.ord
    RETURNING position, id, event_type, product_id
), receivers AS (
    -- SHARE: a webhook being deleted or disabled right now is waited for and then left out
    -- (its row is read again after the wait), instead of failing this change on the
    -- deliveries' foreign key or adding deliveries to a webhook that was just turned off.
    SELECT w.id AS webhook_id, s.id AS event_id, s.product_id, s.position
    FROM stored s
    JOIN webhooks w ON w.enabled
        AND (w.event_types = '' OR strpos(w.event_types, ',' || s.event_type || ',') > 0)
    FOR SHARE OF w
), fanned_out AS (
    INSERT INTO webhook_deliveries
        (id, webhook_id, event_id, product_id, position, status, attempts, next_attempt_at, created_at)
    SELECT gen_random_uuid(), webhook_id, event_id, product_id, position, 'PENDING', 0,
           clock_timestamp(), clock_timestamp()
    FROM receivers
)
SELECT pg_notify($3, payload)
FROM json_array_elements_text($2::json) WITH ORDINALITY AS note(payload, ord)
ORDER BY ord";

/// Writes `events` (with the live `notifications` on PostgreSQL) inside `transaction`.
pub async fn write(
    transaction: &impl ConnectionTrait,
    events: &[NewOutboxEvent],
    channel: &str,
    notifications: &[String],
) -> Result<()> {
    match transaction.get_database_backend() {
        DbBackend::Postgres => write_postgres(transaction, events, channel, notifications).await,
        _ => write_sqlite(transaction, events).await,
    }
}

async fn write_postgres(
    transaction: &impl ConnectionTrait,
    events: &[NewOutboxEvent],
    channel: &str,
    notifications: &[String],
) -> Result<()> {
    let input: Vec<serde_json::Value> = events
        .iter()
        .enumerate()
        .map(|(ord, event)| {
            json!({
                "ord": ord,
                "id": event.id,
                "event_type": event.event_type,
                "product_id": event.product_id,
                "occurred_at": event.occurred_at,
                "data": event.data,
            })
        })
        .collect();
    let input = serde_json::to_string(&input).map_err(Error::internal)?;
    let notifications = serde_json::to_string(notifications).map_err(Error::internal)?;
    transaction
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            POSTGRES_WRITE,
            [input.into(), notifications.into(), channel.into()],
        ))
        .await?;
    Ok(())
}

/// SQLite holds one writer at a time (`BEGIN IMMEDIATE`), so reading a counter and writing it
/// back cannot interleave with another writer.
async fn write_sqlite(transaction: &impl ConnectionTrait, events: &[NewOutboxEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut counts: BTreeMap<Uuid, i64> = BTreeMap::new();
    for event in events {
        *counts.entry(event.product_id).or_default() += 1;
    }
    let stored: HashMap<Uuid, i64> = outbox_sequence::Entity::find()
        .filter(outbox_sequence::Column::ProductId.is_in(counts.keys().copied()))
        .all(transaction)
        .await?
        .into_iter()
        .map(|row| (row.product_id, row.last_sequence))
        .collect();
    let mut next: HashMap<Uuid, i64> = HashMap::new();
    let mut counters = Vec::with_capacity(counts.len());
    for (product_id, count) in &counts {
        let last = stored.get(product_id).copied().unwrap_or(0);
        next.insert(*product_id, last);
        counters.push(outbox_sequence::ActiveModel {
            product_id: Set(*product_id),
            last_sequence: Set(last + count),
        });
    }
    for chunk in counters.chunks(SQLITE_CHUNK) {
        outbox_sequence::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(outbox_sequence::Column::ProductId)
                    .update_column(outbox_sequence::Column::LastSequence)
                    .to_owned(),
            )
            .exec(transaction)
            .await?;
    }
    let created_at = Utc::now();
    let webhooks = webhook::Entity::find()
        .filter(webhook::Column::Enabled.eq(true))
        .all(transaction)
        .await?;
    let mut deliveries = Vec::new();
    for event in events {
        let sequence = next.get_mut(&event.product_id).expect("counted above");
        *sequence += 1;
        let row = outbox_event::ActiveModel {
            id: Set(event.id),
            event_type: Set(event.event_type.to_owned()),
            product_id: Set(event.product_id),
            sequence: Set(*sequence),
            occurred_at: Set(event.occurred_at),
            data: Set(event.data.clone()),
            created_at: Set(created_at),
            relayed_at: Set(None),
            ..Default::default()
        };
        let position = outbox_event::Entity::insert(row)
            .exec(transaction)
            .await?
            .last_insert_id;
        for hook in webhooks
            .iter()
            .filter(|hook| hook.receives(event.event_type))
        {
            deliveries.push(webhook_delivery::ActiveModel {
                id: Set(Uuid::now_v7()),
                webhook_id: Set(hook.id),
                event_id: Set(event.id),
                product_id: Set(event.product_id),
                position: Set(position),
                status: Set(DeliveryStatus::Pending),
                attempts: Set(0),
                next_attempt_at: Set(created_at),
                claimed_until: Set(None),
                last_status_code: Set(None),
                last_error: Set(None),
                last_response: Set(None),
                created_at: Set(created_at),
                finished_at: Set(None),
            });
        }
    }
    for chunk in deliveries.chunks(SQLITE_CHUNK) {
        webhook_delivery::Entity::insert_many(chunk.to_vec())
            .exec(transaction)
            .await?;
    }
    Ok(())
}
