//! What an event says: everything a dashboard needs without a second query, small enough for
//! a PostgreSQL `NOTIFY` (under 8,000 bytes, whatever the text fields hold).
//!
//! Between instances an event travels as [`EventPayload`], a versioned type of its own: the
//! entities can gain columns without making events from other versions unreadable (fields a
//! reader does not know are ignored; fields it misses take their defaults).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::fold_case;
use crate::entity::stock_movement::MovementKind;
use crate::entity::{product, stock_bucket, stock_movement};

/// The payload format this version writes.
const PAYLOAD_FORMAT: u32 = 1;

fn first_format() -> u32 {
    1
}

/// An event as it travels between instances.
#[derive(Serialize, Deserialize)]
struct EventPayload {
    /// Which shape this is (absent in payloads of the first format).
    #[serde(default = "first_format")]
    format: u32,
    product: ProductSnapshot,
    movement: Option<MovementSnapshot>,
    was_low: Option<bool>,
    occurred_at: DateTime<Utc>,
    /// The lot that expired, for a lot's expiry (absent in payloads before lots existed).
    #[serde(default)]
    lot: Option<LotSnapshot>,
    /// The change deleted the product (absent before reads were cached).
    #[serde(default)]
    deleted: bool,
    /// A change of the catalogue only (name, SKU, deletion): for caches, not subscribers.
    #[serde(default)]
    quiet: bool,
    /// Units available before the change (absent before events left the process).
    #[serde(default)]
    was_available: Option<i64>,
    /// Whether the product was deleted before the change (absent before events left the
    /// process).
    #[serde(default)]
    was_deleted: Option<bool>,
}

/// One committed change to a product: a stock movement, or an update of its reorder level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockEvent {
    /// The product right after the change.
    pub product: ProductSnapshot,
    /// The movement, when stock moved.
    pub movement: Option<stock_movement::Model>,
    /// Whether the product was low before the change (`None`: it did not exist yet).
    pub was_low: Option<bool>,
    /// Units available before the change (`None`: the product did not exist yet).
    pub was_available: Option<i64>,
    /// Whether the product was deleted before the change (`None`: it did not exist yet).
    pub was_deleted: Option<bool>,
    /// When the change was made.
    pub occurred_at: DateTime<Utc>,
    /// The lot, when the change is a lot passing its date.
    pub lot: Option<LotSnapshot>,
    /// Whether the product is deleted after the change.
    pub deleted: bool,
    /// Whether the change touched the catalogue only (a rename, a deletion, a restore): it
    /// keeps every instance's product cache current, and subscriptions do not show it.
    pub quiet: bool,
}

impl StockEvent {
    /// The event for a change that left `product` as it is now; `before` is the product
    /// before the change (`None` when the change created it).
    pub fn new(
        before: Option<&product::Model>,
        product: &product::Model,
        movement: Option<stock_movement::Model>,
    ) -> Self {
        Self {
            product: ProductSnapshot::from(product),
            movement,
            was_low: before.map(product::Model::is_low_stock),
            was_available: before.map(product::Model::available),
            was_deleted: before.map(product::Model::is_deleted),
            occurred_at: product.updated_at,
            lot: None,
            deleted: product.is_deleted(),
            quiet: false,
        }
    }

    /// The event for a change of the catalogue only (name, SKU, reorder level, deletion or
    /// restore) that left the product as `product`.
    pub fn catalogue(before: &product::Model, product: &product::Model) -> Self {
        Self {
            deleted: product.is_deleted(),
            quiet: true,
            ..Self::new(Some(before), product, None)
        }
    }

    /// The event for `lot` passing its date, which left the product (`before` it) as `product`.
    pub fn lot_expired(
        before: &product::Model,
        product: &product::Model,
        lot: &stock_bucket::Model,
    ) -> Self {
        Self {
            lot: Some(LotSnapshot::from(lot)),
            ..Self::new(Some(before), product, None)
        }
    }

    /// Units available after the change: stock less reserved and expired units.
    pub fn available(&self) -> i64 {
        self.product.stock - self.product.reserved - self.product.expired
    }

    /// Whether the change left the product `LOW_STOCK` (judged on available units).
    pub fn is_low(&self) -> bool {
        self.available() <= self.product.reorder_level
    }

    /// Whether the change moved the product from `IN_STOCK` to `LOW_STOCK` (a product created
    /// low counts as crossing).
    pub fn crossed_threshold(&self) -> bool {
        self.is_low() && self.was_low != Some(true)
    }

    /// The event as JSON, for `NOTIFY`.
    pub fn to_payload(&self) -> String {
        let payload = EventPayload {
            format: PAYLOAD_FORMAT,
            product: self.product.clone(),
            movement: self.movement.as_ref().map(MovementSnapshot::from),
            was_low: self.was_low,
            occurred_at: self.occurred_at,
            lot: self.lot.clone(),
            deleted: self.deleted,
            quiet: self.quiet,
            was_available: self.was_available,
            was_deleted: self.was_deleted,
        };
        serde_json::to_string(&payload).expect("an event always serializes")
    }

    /// Reads an event sent by [`StockEvent::to_payload`] of this or another version.
    pub fn from_payload(payload: &str) -> serde_json::Result<Self> {
        let payload: EventPayload = serde_json::from_str(payload)?;
        Ok(Self {
            product: payload.product,
            movement: payload.movement.map(MovementSnapshot::into_model),
            was_low: payload.was_low,
            was_available: payload.was_available,
            was_deleted: payload.was_deleted,
            occurred_at: payload.occurred_at,
            lot: payload.lot,
            deleted: payload.deleted,
            quiet: payload.quiet,
        })
    }
}

/// A movement as it travels between instances and as it is stored with an idempotency key.
/// The field names are those the first format used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovementSnapshot {
    pub id: Uuid,
    pub product_id: Uuid,
    pub kind: MovementKind,
    pub delta: i64,
    pub stock_before: i64,
    pub stock_after: i64,
    pub product_version: i32,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    pub actor: String,
    pub created_at: DateTime<Utc>,
}

impl From<&stock_movement::Model> for MovementSnapshot {
    fn from(movement: &stock_movement::Model) -> Self {
        Self {
            id: movement.id,
            product_id: movement.product_id,
            kind: movement.kind,
            delta: movement.delta,
            stock_before: movement.stock_before,
            stock_after: movement.stock_after,
            product_version: movement.product_version,
            reason: movement.reason.clone(),
            idempotency_key: movement.idempotency_key.clone(),
            actor: movement.actor.clone(),
            created_at: movement.created_at,
        }
    }
}

impl MovementSnapshot {
    /// The movement as a model, for the GraphQL types that show movements.
    pub fn into_model(self) -> stock_movement::Model {
        stock_movement::Model {
            id: self.id,
            product_id: self.product_id,
            kind: self.kind,
            delta: self.delta,
            stock_before: self.stock_before,
            stock_after: self.stock_after,
            product_version: self.product_version,
            reason: self.reason,
            idempotency_key: self.idempotency_key,
            actor: self.actor,
            created_at: self.created_at,
        }
    }
}

/// The product fields an event carries, also stored with an idempotency key (the case-folded
/// keys are derived, not sent). The field names are those the first format used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSnapshot {
    pub id: Uuid,
    pub name: String,
    pub sku: String,
    pub stock: i64,
    #[serde(default)]
    pub reserved: i64,
    #[serde(default)]
    pub expired: i64,
    pub reorder_level: i64,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&product::Model> for ProductSnapshot {
    fn from(product: &product::Model) -> Self {
        Self {
            id: product.id,
            name: product.name.clone(),
            sku: product.sku.clone(),
            stock: product.stock,
            reserved: product.reserved,
            expired: product.expired,
            reorder_level: product.reorder_level,
            version: product.version,
            created_at: product.created_at,
            updated_at: product.updated_at,
        }
    }
}

impl ProductSnapshot {
    /// The product as a model, for the GraphQL types that show products.
    pub fn to_model(&self) -> product::Model {
        product::Model {
            id: self.id,
            name: self.name.clone(),
            name_key: fold_case(&self.name),
            sku: self.sku.clone(),
            sku_key: fold_case(&self.sku),
            stock: self.stock,
            reorder_level: self.reorder_level,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: None,
            reserved: self.reserved,
            expired: self.expired,
        }
    }
}

/// A lot as an event carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotSnapshot {
    pub id: Uuid,
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub code: String,
    #[serde(default)]
    pub expires_on: Option<NaiveDate>,
    pub stock: i64,
    pub reserved: i64,
    pub expired: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&stock_bucket::Model> for LotSnapshot {
    fn from(lot: &stock_bucket::Model) -> Self {
        Self {
            id: lot.id,
            product_id: lot.product_id,
            location_id: lot.location_id,
            code: lot.lot_code.clone(),
            expires_on: lot.expires_on,
            stock: lot.stock,
            reserved: lot.reserved,
            expired: lot.expired,
            created_at: lot.created_at,
        }
    }
}

impl LotSnapshot {
    /// The lot as a model, for the GraphQL types that show lots.
    pub fn to_model(&self) -> stock_bucket::Model {
        stock_bucket::Model {
            id: self.id,
            product_id: self.product_id,
            location_id: self.location_id,
            lot_code: self.code.clone(),
            expires_on: self.expires_on,
            stock: self.stock,
            reserved: self.reserved,
            expired: self.expired,
            created_at: self.created_at,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{ProductName, Reason, Sku};
    use crate::service::Actor;

    pub fn sample_event(stock: i64) -> StockEvent {
        let now = Utc::now();
        let product = product::Model {
            id: Uuid::now_v7(),
            name: "Widget".into(),
            name_key: "widget".into(),
            sku: "W-1".into(),
            sku_key: "w-1".into(),
            stock,
            reorder_level: 5,
            version: 2,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            reserved: 0,
            expired: 0,
        };
        StockEvent::new(None, &product, None)
    }

    #[test]
    fn the_largest_possible_event_fits_in_a_notify_payload() {
        // Four-byte characters in every text field at its longest, and quotes that JSON escapes.
        let wide = |chars: usize| "𝄞\"".repeat(chars / 2);
        let name = ProductName::parse(&wide(ProductName::MAX_CHARS)).unwrap();
        let sku = Sku::parse(&wide(Sku::MAX_CHARS)).unwrap();
        let reason = Reason::parse(Some(&wide(Reason::MAX_CHARS)))
            .unwrap()
            .unwrap();
        let actor = Actor {
            subject: wide(Actor::MAX_SUBJECT_CHARS),
            role: crate::domain::Role::Admin,
        };
        let mut event = sample_event(i64::from(i32::MAX));
        event.product.name = name.as_str().to_owned();
        event.product.sku = sku.as_str().to_owned();
        event.movement = Some(stock_movement::Model {
            id: Uuid::now_v7(),
            product_id: event.product.id,
            kind: MovementKind::Reduce,
            delta: -i64::from(i32::MAX),
            stock_before: i64::from(i32::MAX),
            stock_after: 0,
            product_version: i32::MAX,
            reason: Some(reason.into_string()),
            idempotency_key: Some("k".repeat(200)),
            actor: actor.subject,
            created_at: Utc::now(),
        });

        let payload = event.to_payload();

        assert!(payload.len() < 8000, "{} bytes", payload.len());
        assert_eq!(StockEvent::from_payload(&payload).unwrap(), event);
    }

    #[test]
    fn a_payload_of_the_first_format_written_from_the_entities_still_reads() {
        // As an instance of the first version sent it: the entity's own fields, keys included.
        let payload = r#"{"product":{"id":"019a0000-0000-7000-8000-000000000001","name":"Widget",
            "sku":"W-1","stock":4,"reserved":0,"reorder_level":5,"version":3,
            "created_at":"2026-11-22T10:00:00Z","updated_at":"2026-11-22T10:05:00Z"},
            "movement":{"id":"019a0000-0000-7000-8000-000000000002",
            "product_id":"019a0000-0000-7000-8000-000000000001","kind":"Reduce","delta":-1,
            "stock_before":5,"stock_after":4,"product_version":3,"reason":null,
            "idempotency_key":null,"actor":"alice","created_at":"2026-11-22T10:05:00Z"},
            "was_low":false,"occurred_at":"2026-11-22T10:05:00Z"}"#;

        let event = StockEvent::from_payload(payload).unwrap();

        assert_eq!(event.product.stock, 4);
        assert_eq!(event.movement.as_ref().unwrap().kind, MovementKind::Reduce);
        assert!(event.crossed_threshold());
    }

    #[test]
    fn fields_a_reader_does_not_know_are_ignored() {
        let event = sample_event(3);
        let mut payload: serde_json::Value = serde_json::from_str(&event.to_payload()).unwrap();
        payload["format"] = 2.into();
        payload["product"]["colour"] = "red".into();
        payload["warehouse"] = "WH-2".into();

        let read = StockEvent::from_payload(&payload.to_string()).unwrap();

        assert_eq!(read, event);
    }

    #[test]
    fn crossing_is_from_in_stock_to_low_stock_only() {
        let mut event = sample_event(5); // reorder level 5: low
        event.was_low = Some(false);
        assert!(event.crossed_threshold());
        event.was_low = Some(true);
        assert!(!event.crossed_threshold());
        event.was_low = None;
        assert!(event.crossed_threshold(), "created low");
        let event = sample_event(6);
        assert!(!event.is_low() && !event.crossed_threshold());
    }
}
