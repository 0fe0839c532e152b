//! Stock changes and the ledger. The only code that changes a product's stock.
//!
//! Every change is one transaction: lock the product row, check the rule, update stock,
//! version and `updatedAt`, append the movement, commit. The row lock (PostgreSQL
//! `SELECT ... FOR UPDATE`, SQLite `BEGIN IMMEDIATE`) is what makes concurrent changes
//! serialize instead of losing updates or driving stock below zero.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::coalescing::Coalescer;
use super::idempotency::{IdempotentRequest, run_write};
use super::products::bump;
use super::reservations::sweep_expired;
use super::{Actor, lock_live_product};
use crate::database::Database;
use crate::domain::{IdempotencyKey, MAX_STOCK, Quantity, Reason};
use crate::entity::product;
use crate::entity::stock_movement::{self, MovementKind};
use crate::error::{Error, Result};
use crate::events::{EventBus, StockEvent};

/// A stock change as a transport asks for it, validated.
#[derive(Clone, Debug)]
pub struct StockChangeRequest {
    /// The product.
    pub product_id: Uuid,
    /// Add or take.
    pub direction: StockDirection,
    /// How many units.
    pub quantity: Quantity,
    /// Why, for the ledger.
    pub reason: Option<Reason>,
    /// Makes retries safe.
    pub idempotency_key: Option<IdempotencyKey>,
}

impl StockChangeRequest {
    fn idempotency(&self) -> Option<IdempotentRequest> {
        let key = self.idempotency_key.clone()?;
        let operation = match self.direction {
            StockDirection::Add => "addStock",
            StockDirection::Reduce => "reduceStock",
        };
        let reason = self.reason.as_ref().map_or("", Reason::as_str);
        Some(IdempotentRequest {
            key,
            operation,
            fingerprint: format!("{}|{}|{reason}", self.product_id, self.quantity.get()),
        })
    }
}

/// The outcome of a successful stock change: the product after it and its movement.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    coalescer: Coalescer,
}

/// A change as applied inside its transaction, with the product as it was before.
struct AppliedChange {
    before: product::Model,
    product: product::Model,
    movement: stock_movement::Model,
}

impl From<AppliedChange> for StockChange {
    fn from(change: AppliedChange) -> Self {
        Self {
            product: change.product,
            movement: change.movement,
        }
    }
}

/// Locks the product, checks the rule against its available units, updates it and appends the
/// movement, all inside `transaction`.
async fn apply_change(
    transaction: &DatabaseTransaction,
    request: StockChangeRequest,
    actor: &Actor,
) -> Result<AppliedChange> {
    let (kind, delta) = match request.direction {
        StockDirection::Add => (MovementKind::Add, request.quantity.get()),
        StockDirection::Reduce => (MovementKind::Reduce, -request.quantity.get()),
    };
    let locked = lock_live_product(transaction, request.product_id).await?;
    let before = sweep_expired(transaction, locked).await?;
    let stock_after = checked_stock(&before, delta)?;
    let mut row = bump(before.clone());
    row.stock = Set(stock_after);
    let product = row.update(transaction).await?;
    let movement = record_movement(
        transaction,
        MovementRecord {
            product: &product,
            kind,
            stock_before: before.stock,
            reason: request.reason,
            idempotency_key: request.idempotency_key,
            actor,
        },
    )
    .await?;
    Ok(AppliedChange {
        before,
        product,
        movement,
    })
}

impl StockService {
    pub(super) fn new(database: Database, events: EventBus) -> Self {
        Self {
            database,
            events,
            coalescer: Coalescer::default(),
        }
    }

    /// Adds or takes units in one locked transaction and records the movement. Fails with
    /// `NOT_FOUND`, `INSUFFICIENT_STOCK` (taking more than is available) or
    /// `STOCK_LIMIT_EXCEEDED` (adding past the cap), changing nothing. With an idempotency key,
    /// a retry returns the original outcome and changes nothing again.
    pub async fn change(&self, request: StockChangeRequest, actor: &Actor) -> Result<StockChange> {
        // Concurrent reductions of one product share a transaction (see `coalescing`).
        if request.direction == StockDirection::Reduce && request.idempotency_key.is_none() {
            return self
                .coalescer
                .reduce(
                    &self.database,
                    &self.events,
                    request.product_id,
                    request.quantity,
                    request.reason,
                    actor,
                )
                .await;
        }
        let idempotency = request.idempotency();
        let operation = match request.direction {
            StockDirection::Add => "addStock",
            StockDirection::Reduce => "reduceStock",
        };
        let movement_actor = actor.clone();
        let result = run_write(
            &self.database,
            &self.events,
            actor,
            idempotency.as_ref(),
            move |transaction| {
                Box::pin(async move {
                    let change = apply_change(transaction, request, &movement_actor).await?;
                    let event = StockEvent::new(
                        Some(&change.before),
                        &change.product,
                        Some(change.movement.clone()),
                    );
                    Ok((change.into(), vec![event]))
                })
            },
        )
        .await;
        let outcome = result.as_ref().map_or_else(Error::code, |_| "success");
        metrics::counter!("stockroom_stock_changes_total", "operation" => operation, "outcome" => outcome)
            .increment(1);
        result
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

/// Stock after applying `delta` to `product`, or why it cannot be: a reduction may take only
/// the units not held by reservations.
fn checked_stock(product: &product::Model, delta: i64) -> Result<i64> {
    let available = product.available();
    if delta < 0 && available + delta < 0 {
        return Err(Error::InsufficientStock {
            available,
            requested: -delta,
        });
    }
    let after = product
        .stock
        .checked_add(delta)
        .ok_or(Error::StockLimitExceeded)?;
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
    pub idempotency_key: Option<IdempotencyKey>,
    pub actor: &'a Actor,
}

/// Appends a movement inside the caller's transaction. The ledger is append-only: nothing
/// ever updates or deletes a movement.
pub(super) async fn record_movement(
    transaction: &impl ConnectionTrait,
    record: MovementRecord<'_>,
) -> Result<stock_movement::Model> {
    Ok(movement_row(record)
        .into_active_model()
        .reset_all()
        .insert(transaction)
        .await?)
}

/// The movement row for `record`, not yet stored.
pub(super) fn movement_row(record: MovementRecord<'_>) -> stock_movement::Model {
    stock_movement::Model {
        id: Uuid::now_v7(),
        product_id: record.product.id,
        kind: record.kind,
        delta: record.product.stock - record.stock_before,
        stock_before: record.stock_before,
        stock_after: record.product.stock,
        product_version: record.product.version,
        reason: record.reason.map(Reason::into_string),
        idempotency_key: record.idempotency_key.map(|key| key.as_str().to_owned()),
        actor: record.actor.subject.clone(),
        created_at: record.product.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(stock: i64, reserved: i64) -> product::Model {
        let now = chrono::Utc::now();
        product::Model {
            id: Uuid::now_v7(),
            name: "W".into(),
            name_key: "w".into(),
            sku: "W".into(),
            sku_key: "w".into(),
            stock,
            reorder_level: 0,
            version: 1,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            reserved,
        }
    }

    #[test]
    fn stock_never_goes_below_zero() {
        assert_eq!(checked_stock(&product(5, 0), -5).unwrap(), 0);
        let error = checked_stock(&product(5, 0), -6).unwrap_err();
        assert_eq!(error.code(), "INSUFFICIENT_STOCK");
    }

    #[test]
    fn reductions_take_only_units_not_reserved() {
        assert_eq!(checked_stock(&product(10, 7), -3).unwrap(), 7);
        assert_eq!(
            checked_stock(&product(10, 7), -4).unwrap_err().code(),
            "INSUFFICIENT_STOCK"
        );
    }

    #[test]
    fn stock_never_passes_the_cap_or_wraps() {
        assert_eq!(
            checked_stock(&product(MAX_STOCK - 1, 0), 1).unwrap(),
            MAX_STOCK
        );
        assert_eq!(
            checked_stock(&product(MAX_STOCK, 0), 1).unwrap_err().code(),
            "STOCK_LIMIT_EXCEEDED"
        );
        assert_eq!(
            checked_stock(&product(i64::MAX, 0), 1).unwrap_err().code(),
            "STOCK_LIMIT_EXCEEDED"
        );
    }
}
