//! Stock changes and the ledger. The only code that changes a product's stock.
//!
//! Every change is one transaction: lock the product row, check the rule, update stock,
//! version and `updatedAt`, append the movement, commit. The row lock (PostgreSQL
//! `SELECT ... FOR UPDATE`, SQLite `BEGIN IMMEDIATE`) is what makes concurrent changes
//! serialize instead of losing updates or driving stock below zero.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::coalescing::Coalescer;
use super::idempotency::{IdempotentRequest, run_write};
use super::locked::{
    MovementRecord, StockChange, bump, checked_stock, lock_live_product, record_movement,
    sweep_expired,
};
use super::{Actor, PageDirection};
use crate::database::Database;
use crate::domain::{IdempotencyKey, Quantity, Reason};
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
    let mut row = bump(before.clone())?;
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

    /// Up to `limit` movements in listing order, newest first: forward, the ones after
    /// `cursor` (older); backward, the ones before it (newer), nearest first. With
    /// `product_id`, that product's history in exact commit order; without, the whole ledger.
    pub async fn movements(
        &self,
        product_id: Option<Uuid>,
        cursor: Option<MovementPosition>,
        direction: PageDirection,
        limit: u64,
    ) -> Result<Vec<stock_movement::Model>> {
        use sea_orm::Order;
        use stock_movement::Column;
        let backward = direction == PageDirection::Backward;
        let order = if backward { Order::Asc } else { Order::Desc };
        let mut query = stock_movement::Entity::find();
        query = match product_id {
            Some(product_id) => {
                query = query.filter(Column::ProductId.eq(product_id));
                if let Some(cursor) = cursor {
                    query = query.filter(if backward {
                        Column::ProductVersion.gt(cursor.product_version)
                    } else {
                        Column::ProductVersion.lt(cursor.product_version)
                    });
                }
                query.order_by(Column::ProductVersion, order)
            }
            None => {
                if let Some(cursor) = cursor {
                    query = query.filter(if backward {
                        Column::Id.gt(cursor.id)
                    } else {
                        Column::Id.lt(cursor.id)
                    });
                }
                query.order_by(Column::Id, order)
            }
        };
        Ok(query.limit(limit).all(self.database.connection()).await?)
    }

    /// Movements by id, in one query (missing ones are simply absent).
    pub async fn find_movements(&self, ids: &[Uuid]) -> Result<Vec<stock_movement::Model>> {
        Ok(stock_movement::Entity::find()
            .filter(stock_movement::Column::Id.is_in(ids.iter().copied()))
            .all(self.database.connection())
            .await?)
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
