//! Stock changes and the ledger. The only code that changes a product's stock.
//!
//! Every change is one transaction: lock the product row, check the rule, update stock,
//! version and `updatedAt`, append the movement, commit. The row lock (PostgreSQL
//! `SELECT ... FOR UPDATE`, SQLite `BEGIN IMMEDIATE`) is what makes concurrent changes
//! serialize instead of losing updates or driving stock below zero.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbBackend, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
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

/// Most products whose movement pages one statement reads (one `UNION ALL` part each; SQLite
/// allows 500 parts).
pub const MAX_PRODUCTS_PER_PAGE_QUERY: usize = 100;

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

    /// A page of movements for each of `product_ids`, in one statement per
    /// [`MAX_PRODUCTS_PER_PAGE_QUERY`] products: up to `limit` of each product's movements in
    /// listing order (newest first), starting past `cursor_version` (forward: older versions;
    /// backward: newer ones, nearest first). The result is grouped by product, each group in
    /// page order.
    pub async fn movements_of_products(
        &self,
        product_ids: &[Uuid],
        cursor_version: Option<i32>,
        direction: PageDirection,
        limit: u64,
    ) -> Result<Vec<stock_movement::Model>> {
        let mut movements = Vec::new();
        if limit == 0 {
            return Ok(movements);
        }
        for chunk in product_ids.chunks(MAX_PRODUCTS_PER_PAGE_QUERY) {
            movements.extend(
                self.movement_pages(chunk, cursor_version, direction, limit)
                    .await?,
            );
        }
        Ok(movements)
    }

    /// [`StockService::movements_of_products`] for one statement's worth of products.
    async fn movement_pages(
        &self,
        product_ids: &[Uuid],
        cursor_version: Option<i32>,
        direction: PageDirection,
        limit: u64,
    ) -> Result<Vec<stock_movement::Model>> {
        let connection = self.database.connection();
        let backend = connection.get_database_backend();
        let placeholder = |position: usize| match backend {
            DbBackend::Postgres => format!("${position}"),
            _ => format!("?{position}"),
        };
        let (order, past_cursor) = match direction {
            PageDirection::Forward => ("DESC", "<"),
            PageDirection::Backward => ("ASC", ">"),
        };
        let mut values: Vec<sea_orm::Value> = vec![i64::try_from(limit).unwrap_or(i64::MAX).into()];
        let limit_placeholder = placeholder(1);
        let cursor_filter = match cursor_version {
            Some(version) => {
                values.push(version.into());
                format!(" AND product_version {past_cursor} {}", placeholder(2))
            }
            None => String::new(),
        };
        // One LIMITed look-up per product, each a range of the (product_id, product_version)
        // index, so a page costs the same however long a product's ledger grows.
        let pages: Vec<String> = product_ids
            .iter()
            .enumerate()
            .map(|(index, product_id)| {
                values.push((*product_id).into());
                format!(
                    "SELECT * FROM (SELECT * FROM stock_movements \
                     WHERE product_id = {}{cursor_filter} \
                     ORDER BY product_version {order} LIMIT {limit_placeholder}) AS page_{index}",
                    placeholder(values.len())
                )
            })
            .collect();
        let mut movements = stock_movement::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                backend,
                pages.join(" UNION ALL "),
                values,
            ))
            .all(connection)
            .await?;
        // UNION ALL keeps no order between its parts: put each product's page back in order.
        movements.sort_by(|left, right| {
            let by_version = left.product_version.cmp(&right.product_version);
            left.product_id
                .cmp(&right.product_id)
                .then(match direction {
                    PageDirection::Forward => by_version.reverse(),
                    PageDirection::Backward => by_version,
                })
        });
        Ok(movements)
    }

    /// How many movements each of `product_ids` has, in one statement (products without
    /// movements are absent).
    pub async fn count_movements_of_products(
        &self,
        product_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, u64>> {
        #[derive(FromQueryResult)]
        struct MovementCount {
            product_id: Uuid,
            count: i64,
        }
        if product_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let counts = stock_movement::Entity::find()
            .select_only()
            .column(stock_movement::Column::ProductId)
            .column_as(stock_movement::Column::Id.count(), "count")
            .filter(stock_movement::Column::ProductId.is_in(product_ids.iter().copied()))
            .group_by(stock_movement::Column::ProductId)
            .into_model::<MovementCount>()
            .all(self.database.connection())
            .await?;
        Ok(counts
            .into_iter()
            .map(|row| (row.product_id, u64::try_from(row.count).unwrap_or(0)))
            .collect())
    }

    /// Movements by id, in one query (missing ones are simply absent).
    pub async fn find_movements(&self, ids: &[Uuid]) -> Result<Vec<stock_movement::Model>> {
        Ok(stock_movement::Entity::find()
            .filter(stock_movement::Column::Id.is_in(ids.iter().copied()))
            .all(self.database.connection())
            .await?)
    }

    /// How many movements the whole ledger holds.
    pub async fn count_movements(&self) -> Result<u64> {
        Ok(stock_movement::Entity::find()
            .count(self.database.connection())
            .await?)
    }
}
