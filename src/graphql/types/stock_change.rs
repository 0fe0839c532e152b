//! `StockChange`: what `addStock` and `reduceStock` return.

use async_graphql::{ID, Object, Result};

use super::{Product, StockMovement, to_int};
use crate::service;

/// The result of a successful stock change.
pub struct StockChange(pub service::StockChange);

/// The result of a successful stock change: the REST reply's `{ success, productId, newStock }`
/// plus the product and the movement the change recorded.
#[Object]
impl StockChange {
    /// Always true: a failed change is an error, not a `StockChange`.
    async fn success(&self) -> bool {
        true
    }

    /// The product that changed.
    async fn product_id(&self) -> ID {
        ID(self.0.product.id.to_string())
    }

    /// Stock after the change.
    async fn new_stock(&self) -> Result<i32> {
        Ok(to_int(self.0.product.stock)?)
    }

    /// The product after the change.
    async fn product(&self) -> Product {
        Product::from(self.0.product.clone())
    }

    /// The ledger entry the change recorded.
    async fn movement(&self) -> StockMovement {
        StockMovement::with_product(self.0.movement.clone(), self.0.product.clone())
    }
}
