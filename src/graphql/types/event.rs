//! `LowStockEvent`: what `lowStock` subscribers receive.

use std::sync::Arc;

use async_graphql::{Object, Result};
use chrono::{DateTime, Utc};

use super::{Product, StockMovement, to_int};
use crate::events::StockEvent;

/// A committed change that left a product low on stock.
pub struct LowStockEvent(pub Arc<StockEvent>);

/// A committed change that left a product `LOW_STOCK`: a stock movement, or a new reorder
/// level. Carries everything a dashboard needs, so no second query is required.
#[Object]
impl LowStockEvent {
    /// The product as the change left it.
    async fn product(&self) -> Product {
        Product::from(self.0.product.to_model())
    }

    /// Units on hand after the change.
    async fn stock(&self) -> Result<i32> {
        Ok(to_int(self.0.product.stock)?)
    }

    /// Units available after the change (`stock - reserved`); what `LOW_STOCK` is judged on.
    async fn available(&self) -> Result<i32> {
        Ok(to_int(self.0.product.stock - self.0.product.reserved)?)
    }

    /// The product's reorder level after the change.
    async fn reorder_level(&self) -> Result<i32> {
        Ok(to_int(self.0.product.reorder_level)?)
    }

    /// True when this change moved the product from `IN_STOCK` to `LOW_STOCK` (or created it
    /// low); false when it was low already.
    async fn crossed_threshold(&self) -> bool {
        self.0.crossed_threshold()
    }

    /// The stock movement; null when the change was a new reorder level.
    async fn movement(&self) -> Option<StockMovement> {
        self.0
            .movement
            .clone()
            .map(|movement| StockMovement::with_product(movement, self.0.product.to_model()))
    }

    /// When the change was made.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
}
