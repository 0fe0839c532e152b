//! Stock changes and the ledger. The only code that changes a product's stock.
//!
//! Every change is one transaction: lock the product row, check the rule, update stock,
//! version and `updatedAt`, append the movement, commit. The row lock (PostgreSQL
//! `SELECT ... FOR UPDATE`, SQLite `BEGIN IMMEDIATE`) is what makes concurrent changes
//! serialize instead of losing updates or driving stock below zero.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::products::bump;
use super::{Actor, lock_live_product};
use crate::database::Database;
use crate::domain::{MAX_STOCK, Quantity, Reason};
use crate::entity::product;
use crate::entity::stock_movement::{self, MovementKind};
use crate::error::{Error, Result};
use crate::events::{EventBus, StockEvent};

/// The outcome of a successful stock change: the product after it and its movement.
#[derive(Clone, Debug)]
pub struct StockChange {
    /// The product as committed.
    pub product: product::Model,
    /// The ledger entry the change wrote.
    pub movement: stock_movement::Model,
}

/// Which way a stock change goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StockDirection {
    /// Units arrive (`addStock`).
    Add,
    /// Units leave (`reduceStock`).
    Reduce,
}

/// Where a movement stands in a listing, for keyset pagination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MovementPosition {
    /// The movement's id: the order of the whole ledger.
    pub id: Uuid,
    /// The product version it produced: the order of one product's history.
    pub product_version: i32,
}

impl From<&stock_movement::Model> for MovementPosition {
    fn from(movement: &stock_movement::Model) -> Self {
        Self {
            id: movement.id,
            product_version: movement.product_version,
        }
    }
}

/// Changes stock and reads the ledger.
#[derive(Clone, Debug)]
pub struct StockService {
    database: Database,
    events: EventBus,
}

impl StockService {
    pub(super) fn new(database: Database, events: EventBus) -> Self {
        Self { database, events }
    }

    /// Adds or takes `quantity` units in one locked transaction and records the movement.
    /// Fails with `NOT_FOUND`, `INSUFFICIENT_STOCK` (taking more than is on hand) or
    /// `STOCK_LIMIT_EXCEEDED` (adding past the cap), changing nothing.
    pub async fn change(
        &self,
        product_id: Uuid,
        direction: StockDirection,
        quantity: Quantity,
        reason: Option<Reason>,
        actor: &Actor,
    ) -> Result<StockChange> {
        let (kind, delta) = match direction {
            StockDirection::Add => (MovementKind::Add, quantity.get()),
            StockDirection::Reduce => (MovementKind::Reduce, -quantity.get()),
        };
        let transaction = self.database.begin_write().await?;
        let current = lock_live_product(&transaction, product_id).await?;
        let stock_before = current.stock;
        let stock_after = checked_stock(stock_before, delta)?;

        let mut row = bump(current.clone());
        row.stock = Set(stock_after);
        let product = row.update(&transaction).await?;
        let movement = record_movement(
            &transaction,
            MovementRecord {
                product: &product,
                kind,
                stock_before,
                reason,
                actor,
            },
        )
        .await?;
        let event = StockEvent::new(Some(&current), &product, Some(movement.clone()));
        self.events.commit(transaction, vec![event]).await?;
        Ok(StockChange { product, movement })
    }

    /// Up to `limit` movements, newest first, starting after `after`. With `product_id`,
    /// that product's history in exact commit order; without, the whole ledger.
    pub async fn movements(
        &self,
        product_id: Option<Uuid>,
        after: Option<MovementPosition>,
        limit: u64,
    ) -> Result<Vec<stock_movement::Model>> {
        use stock_movement::Column;
        let mut query = stock_movement::Entity::find();
        query = match product_id {
            Some(product_id) => {
                query = query.filter(Column::ProductId.eq(product_id));
                if let Some(after) = after {
                    query = query.filter(Column::ProductVersion.lt(after.product_version));
                }
                query.order_by_desc(Column::ProductVersion)
            }
            None => {
                if let Some(after) = after {
                    query = query.filter(Column::Id.lt(after.id));
                }
                query.order_by_desc(Column::Id)
            }
        };
        Ok(query.limit(limit).all(self.database.connection()).await?)
    }

    /// How many movements the ledger holds, for one product or in all.
    pub async fn count_movements(&self, product_id: Option<Uuid>) -> Result<u64> {
        let mut query = stock_movement::Entity::find();
        if let Some(product_id) = product_id {
            query = query.filter(stock_movement::Column::ProductId.eq(product_id));
        }
        Ok(query.count(self.database.connection()).await?)
    }
}

/// Stock after applying `delta`, or why it cannot be.
fn checked_stock(stock: i64, delta: i64) -> Result<i64> {
    let after = stock.checked_add(delta).ok_or(Error::StockLimitExceeded)?;
    if after < 0 {
        return Err(Error::InsufficientStock {
            available: stock,
            requested: -delta,
        });
    }
    if after > MAX_STOCK {
        return Err(Error::StockLimitExceeded);
    }
    Ok(after)
}

/// What [`record_movement`] needs to append one ledger entry.
pub(super) struct MovementRecord<'a> {
    /// The product as updated by the change (its stock and version are the "after" values).
    pub product: &'a product::Model,
    pub kind: MovementKind,
    pub stock_before: i64,
    pub reason: Option<Reason>,
    pub actor: &'a Actor,
}

/// Appends a movement inside the caller's transaction. The ledger is append-only: nothing
/// ever updates or deletes a movement.
pub(super) async fn record_movement(
    transaction: &impl ConnectionTrait,
    record: MovementRecord<'_>,
) -> Result<stock_movement::Model> {
    let movement = stock_movement::Model {
        id: Uuid::now_v7(),
        product_id: record.product.id,
        kind: record.kind,
        delta: record.product.stock - record.stock_before,
        stock_before: record.stock_before,
        stock_after: record.product.stock,
        product_version: record.product.version,
        reason: record.reason.map(Reason::into_string),
        idempotency_key: None,
        actor: record.actor.subject.clone(),
        created_at: record.product.updated_at,
    };
    Ok(movement
        .into_active_model()
        .reset_all()
        .insert(transaction)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_never_goes_below_zero() {
        assert_eq!(checked_stock(5, -5).unwrap(), 0);
        let error = checked_stock(5, -6).unwrap_err();
        assert_eq!(error.code(), "INSUFFICIENT_STOCK");
    }

    #[test]
    fn stock_never_passes_the_cap_or_wraps() {
        assert_eq!(checked_stock(MAX_STOCK - 1, 1).unwrap(), MAX_STOCK);
        assert_eq!(
            checked_stock(MAX_STOCK, 1).unwrap_err().code(),
            "STOCK_LIMIT_EXCEEDED"
        );
        assert_eq!(
            checked_stock(i64::MAX, 1).unwrap_err().code(),
            "STOCK_LIMIT_EXCEEDED"
        );
    }
}
