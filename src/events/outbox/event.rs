//! What leaves the process: the outbox events a committed change produces, and the JSON shape
//! consumers receive.
//!
//! One [`StockEvent`] (a change to one product) becomes one or more outbox events: the change
//! itself (`stock.changed`, `product.created`, ...) and, when the change moved the product
//! across a threshold, the alert (`stock.low`, `stock.out`, `stock.restocked`). Alerts are
//! judged on each event's "before" and "after", which the services chain so that every change
//! of a product starts where the previous one ended: a crossing shows once, whatever caused it.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::ActiveEnum;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::events::StockEvent;

/// The shape of `data` this version writes; it grows only by new fields.
pub const SCHEMA_VERSION: u32 = 1;

/// Every event type, as consumers see it (and as AMQP routing keys).
pub const EVENT_TYPES: [&str; 8] = [
    STOCK_CHANGED,
    STOCK_LOW,
    STOCK_OUT,
    STOCK_RESTOCKED,
    LOT_EXPIRED,
    PRODUCT_CREATED,
    PRODUCT_UPDATED,
    PRODUCT_DELETED,
];

/// Stock on hand, reserved or expired changed.
pub const STOCK_CHANGED: &str = "stock.changed";
/// The product entered `LOW_STOCK`.
pub const STOCK_LOW: &str = "stock.low";
/// The product's available units reached 0.
pub const STOCK_OUT: &str = "stock.out";
/// The product left `LOW_STOCK`.
pub const STOCK_RESTOCKED: &str = "stock.restocked";
/// A lot passed its date.
pub const LOT_EXPIRED: &str = "lot.expired";
/// A product was created.
pub const PRODUCT_CREATED: &str = "product.created";
/// A product's name, SKU or reorder level changed, or it was restored.
pub const PRODUCT_UPDATED: &str = "product.updated";
/// A product was deleted.
pub const PRODUCT_DELETED: &str = "product.deleted";

/// One event on its way into the outbox: everything but the sequence, which the database
/// gives it under the product's lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOutboxEvent {
    pub id: Uuid,
    pub event_type: &'static str,
    pub product_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// The event's `data`, as JSON text.
    pub data: String,
}

/// The outbox events of a transaction's changes, in the order they happened.
pub fn outbox_events(changes: &[StockEvent]) -> Vec<NewOutboxEvent> {
    let mut events = Vec::with_capacity(changes.len());
    for change in changes {
        // A deleted product stays silent: a sweep that still touches it (a reservation
        // running out, a lot passing its date) is no news to anyone outside.
        if change.deleted && change.was_deleted == Some(true) {
            continue;
        }
        let data = data_of(change);
        let mut push = |event_type: &'static str, data: &Value| {
            events.push(NewOutboxEvent {
                id: Uuid::now_v7(),
                event_type,
                product_id: change.product.id,
                occurred_at: change.occurred_at,
                data: data.to_string(),
            });
        };
        push(change_type(change), &data);
        // No alerts for a deletion, nor for a restore (the stock did not move).
        if change.deleted || change.was_deleted == Some(true) {
            continue;
        }
        let alert = json!({ "product": data["product"], "previous": data["previous"] });
        for alert_type in alerts(change) {
            push(alert_type, &alert);
        }
    }
    events
}

/// What kind of change `change` is.
fn change_type(change: &StockEvent) -> &'static str {
    if change.lot.is_some() {
        LOT_EXPIRED
    } else if change.was_low.is_none() {
        PRODUCT_CREATED
    } else if change.deleted {
        PRODUCT_DELETED
    } else if change.movement.is_some() || change.was_available != Some(change.available()) {
        STOCK_CHANGED
    } else {
        PRODUCT_UPDATED
    }
}

/// The thresholds `change` crossed: `stock.low` on entering `LOW_STOCK` (a product created low
/// counts), `stock.out` on available reaching 0, `stock.restocked` on leaving `LOW_STOCK`.
fn alerts(change: &StockEvent) -> Vec<&'static str> {
    let mut alerts = Vec::new();
    let low = change.is_low();
    if low && change.was_low != Some(true) {
        alerts.push(STOCK_LOW);
    }
    if change.available() <= 0 && change.was_available.is_none_or(|before| before > 0) {
        alerts.push(STOCK_OUT);
    }
    if !low && change.was_low == Some(true) {
        alerts.push(STOCK_RESTOCKED);
    }
    alerts
}

fn status(low: bool) -> &'static str {
    if low { "LOW_STOCK" } else { "IN_STOCK" }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The `data` of `change`'s event: the product after it, what it was before, and the movement
/// or lot when there is one.
fn data_of(change: &StockEvent) -> Value {
    let product = &change.product;
    let mut data = json!({
        "product": {
            "id": product.id,
            "sku": product.sku,
            "name": product.name,
            "stock": product.stock,
            "reserved": product.reserved,
            "expired": product.expired,
            "available": change.available(),
            "reorderLevel": product.reorder_level,
            "status": status(change.is_low()),
            "version": product.version,
            "deleted": change.deleted,
            "updatedAt": timestamp(product.updated_at),
        },
        "previous": match (change.was_available, change.was_low) {
            (Some(available), Some(low)) => json!({ "available": available, "status": status(low) }),
            _ => Value::Null,
        },
    });
    if let Some(movement) = &change.movement {
        data["movement"] = json!({
            "id": movement.id,
            "kind": movement.kind.to_value(),
            "delta": movement.delta,
            "stockBefore": movement.stock_before,
            "stockAfter": movement.stock_after,
            "reason": movement.reason,
            "actor": movement.actor,
            "createdAt": timestamp(movement.created_at),
        });
    }
    if let Some(lot) = &change.lot {
        data["lot"] = json!({
            "id": lot.id,
            "locationId": lot.location_id,
            "code": lot.code,
            "expiresOn": lot.expires_on,
            "stock": lot.stock,
        });
    }
    data
}

/// An event as consumers receive it (webhook body, AMQP message):
/// `{ id, type, occurredAt, productId, sequence, schemaVersion, data }`.
pub fn envelope(
    id: Uuid,
    event_type: &str,
    occurred_at: DateTime<Utc>,
    product_id: Uuid,
    sequence: i64,
    data: &str,
) -> String {
    let data: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    json!({
        "id": id,
        "type": event_type,
        "occurredAt": timestamp(occurred_at),
        "productId": product_id,
        "sequence": sequence,
        "schemaVersion": SCHEMA_VERSION,
        "data": data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::sample_event;

    fn types(change: &StockEvent) -> Vec<&'static str> {
        outbox_events(std::slice::from_ref(change))
            .iter()
            .map(|event| event.event_type)
            .collect()
    }

    #[test]
    fn a_change_that_enters_low_stock_alerts_once() {
        let mut change = sample_event(2);
        change.product.reorder_level = 5;
        change.was_low = Some(false);
        change.was_available = Some(8);
        assert_eq!(types(&change), [STOCK_CHANGED, STOCK_LOW]);

        change.was_low = Some(true);
        change.was_available = Some(3);
        assert_eq!(types(&change), [STOCK_CHANGED]);
    }

    #[test]
    fn reaching_zero_is_out_of_stock_and_leaving_low_is_restocked() {
        let mut change = sample_event(0);
        change.product.reorder_level = 5;
        change.was_low = Some(true);
        change.was_available = Some(1);
        assert_eq!(types(&change), [STOCK_CHANGED, STOCK_OUT]);

        let mut change = sample_event(20);
        change.product.reorder_level = 5;
        change.was_low = Some(true);
        change.was_available = Some(0);
        assert_eq!(types(&change), [STOCK_CHANGED, STOCK_RESTOCKED]);
    }

    #[test]
    fn a_catalogue_change_is_an_update_and_a_deletion_has_no_alerts() {
        let mut change = sample_event(0);
        change.movement = None;
        change.was_low = Some(true);
        change.was_available = Some(0);
        assert_eq!(types(&change), [PRODUCT_UPDATED]);

        change.deleted = true;
        change.was_deleted = Some(false);
        change.was_low = Some(false);
        change.was_available = Some(10);
        assert_eq!(types(&change), [PRODUCT_DELETED]);

        // Changes to a product deleted already (a sweep) say nothing.
        change.was_deleted = Some(true);
        change.was_available = Some(12);
        assert_eq!(types(&change), Vec::<&str>::new());
    }

    #[test]
    fn the_envelope_carries_the_sequence_and_the_data() {
        let id = Uuid::now_v7();
        let body = envelope(
            id,
            STOCK_LOW,
            Utc::now(),
            id,
            7,
            r#"{"product":{"stock":1}}"#,
        );
        let value: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["sequence"], 7);
        assert_eq!(value["type"], STOCK_LOW);
        assert_eq!(value["data"]["product"]["stock"], 1);
    }
}
