//! What an event says: everything a dashboard needs without a second query, small enough for
//! a PostgreSQL `NOTIFY` (under 8,000 bytes, whatever the text fields hold).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::fold_case;
use crate::entity::{product, stock_movement};

/// One committed change to a product: a stock movement, or an update of its reorder level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockEvent {
    /// The product right after the change.
    pub product: ProductSnapshot,
    /// The movement, when stock moved.
    pub movement: Option<stock_movement::Model>,
    /// Whether the product was low before the change (`None`: it did not exist yet).
    pub was_low: Option<bool>,
    /// When the change was made.
    pub occurred_at: DateTime<Utc>,
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
            occurred_at: product.updated_at,
        }
    }

    /// Whether the change left the product `LOW_STOCK` (judged on available units).
    pub fn is_low(&self) -> bool {
        self.product.stock - self.product.reserved <= self.product.reorder_level
    }

    /// Whether the change moved the product from `IN_STOCK` to `LOW_STOCK` (a product created
    /// low counts as crossing).
    pub fn crossed_threshold(&self) -> bool {
        self.is_low() && self.was_low != Some(true)
    }

    /// The event as JSON, for `NOTIFY`.
    pub fn to_payload(&self) -> String {
        serde_json::to_string(self).expect("an event always serializes")
    }
}

/// The product fields an event carries (the case-folded keys are derived, not sent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSnapshot {
    pub id: Uuid,
    pub name: String,
    pub sku: String,
    pub stock: i64,
    pub reserved: i64,
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
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::{ProductName, Reason, Sku};
    use crate::entity::stock_movement::MovementKind;
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
        assert_eq!(serde_json::from_str::<StockEvent>(&payload).unwrap(), event);
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
