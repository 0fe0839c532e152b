//! Stock changes and the ledger. The only code that changes a product's stock.
//!
//! Every change is one transaction: lock the product row, check the rule, update stock,
//! version and `updatedAt`, append the movement, commit. The row lock (PostgreSQL
//! `SELECT ... FOR UPDATE`, SQLite `BEGIN IMMEDIATE`) is what makes concurrent changes
//! serialize instead of losing updates or driving stock below zero.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, DatabaseTransaction, DbBackend, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use super::buckets::{LotInput, Source};
use super::coalescing::Coalescer;
use super::idempotency::{IdempotentRequest, run_write};
use super::locations::{existing_location, receiving_location};
use super::locked::{LockedProduct, MovementNote, StockChange};
use super::{Actor, PageDirection, now};
use crate::clock::Clock;
use crate::database::Database;
use crate::domain::{DaysAhead, IdempotencyKey, LotCode, Quantity, Reason};
use crate::entity::stock_movement::{self, MovementKind};
use crate::entity::{stock_allocation, stock_bucket};
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
    /// Adds go to this location (`MAIN` when `None`); reductions take only from it (from every
    /// location by priority when `None`).
    pub location_id: Option<Uuid>,
    /// Adds go to this lot (the lot-less stock when `None`); reductions ignore it.
    pub lot: Option<LotInput>,
}

impl StockChangeRequest {
    fn idempotency(&self) -> Option<IdempotentRequest> {
        let key = self.idempotency_key.clone()?;
        let operation = match self.direction {
            StockDirection::Add => "addStock",
            StockDirection::Reduce => "reduceStock",
        };
        let reason = self.reason.as_ref().map_or("", Reason::as_str);
        // Requests without a location or lot keep the fingerprint they always had; the others
        // are a JSON array, which no free text can imitate.
        let fingerprint = if self.location_id.is_none() && self.lot.is_none() {
            format!("{}|{}|{reason}", self.product_id, self.quantity.get())
        } else {
            serde_json::json!([
                self.product_id,
                self.quantity.get(),
                reason,
                self.location_id,
                self.lot.as_ref().map(|lot| lot.code.as_str()),
                self.lot.as_ref().and_then(|lot| lot.expires_on),
            ])
            .to_string()
        };
        Some(IdempotentRequest {
            key,
            operation,
            fingerprint,
        })
    }
}

/// A transfer between two locations, validated.
#[derive(Clone, Debug)]
pub struct TransferRequest {
    /// The product.
    pub product_id: Uuid,
    /// Where the units leave.
    pub from_location_id: Uuid,
    /// Where they arrive.
    pub to_location_id: Uuid,
    /// How many units.
    pub quantity: Quantity,
    /// Only from this lot (first-expiring lots first when `None`).
    pub lot_code: Option<LotCode>,
    /// Why, for the ledger.
    pub reason: Option<Reason>,
    /// Makes retries safe.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// A write-off, validated.
#[derive(Clone, Debug)]
pub struct WriteOffRequest {
    /// The product.
    pub product_id: Uuid,
    /// The location the units leave.
    pub location_id: Uuid,
    /// The lot (the lot-less stock when `None`).
    pub lot_code: Option<LotCode>,
    /// How many units.
    pub quantity: Quantity,
    /// Why: required.
    pub reason: Reason,
    /// Makes retries safe.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// Which way a stock change goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StockDirection {
    /// Units arrive (`addStock`).
    Add,
    /// Units leave (`reduceStock`).
    Reduce,
}

/// Which movements a listing returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MovementFilter {
    /// One product's history (in exact commit order); the whole ledger when `None`.
    pub product_id: Option<Uuid>,
    /// Only movements that touched this location.
    pub location_id: Option<Uuid>,
    /// Only movements that touched a lot with this code.
    pub lot_code: Option<String>,
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
    clock: Clock,
}

/// Locks the product, applies the change to its buckets (checked against their available
/// units), records the movement and stores it all inside `transaction`.
async fn apply_change(
    transaction: &DatabaseTransaction,
    request: StockChangeRequest,
    actor: &Actor,
    clock: &Clock,
) -> Result<(StockChange, Vec<StockEvent>)> {
    let quantity = request.quantity.get();
    let (kind, destination, source) = match request.direction {
        StockDirection::Add => (
            MovementKind::Add,
            Some(receiving_location(transaction, request.location_id, "locationId").await?),
            Source::Anywhere,
        ),
        StockDirection::Reduce => {
            let source = match request.location_id {
                Some(location_id) => {
                    existing_location(transaction, location_id, "locationId").await?;
                    Source::Location(location_id)
                }
                None => Source::Anywhere,
            };
            (MovementKind::Reduce, None, source)
        }
    };
    let mut locked = LockedProduct::lock_live(transaction, request.product_id, clock).await?;
    let today = locked.today;
    let allocations = match &destination {
        Some(location) => {
            locked.ensure_room(quantity)?;
            vec![
                locked
                    .buckets
                    .add(location, request.lot.as_ref(), quantity, today, now())?,
            ]
        }
        None => locked.buckets.take(source, quantity)?,
    };
    let change = locked.record(
        allocations,
        MovementNote {
            kind,
            reason: request.reason,
            idempotency_key: request.idempotency_key,
            actor,
        },
    )?;
    let events = locked.save(transaction).await?;
    Ok((change, events))
}

/// Moves units between two locations of one product: the product's stock is unchanged.
async fn apply_transfer(
    transaction: &DatabaseTransaction,
    request: TransferRequest,
    actor: &Actor,
    clock: &Clock,
) -> Result<(StockChange, Vec<StockEvent>)> {
    existing_location(transaction, request.from_location_id, "fromLocationId").await?;
    let destination =
        receiving_location(transaction, Some(request.to_location_id), "toLocationId").await?;
    let mut locked = LockedProduct::lock_live(transaction, request.product_id, clock).await?;
    let today = locked.today;
    let source = match &request.lot_code {
        Some(code) => Source::Bucket(request.from_location_id, code.as_str()),
        None => Source::Location(request.from_location_id),
    };
    let taken = locked.buckets.take(source, request.quantity.get())?;
    let mut allocations = taken.clone();
    for part in taken {
        let lot = if part.lot_code.is_empty() {
            None
        } else {
            let expires_on = locked
                .buckets
                .rows()
                .find(|row| row.id == part.bucket_id)
                .and_then(|row| row.expires_on);
            Some(LotInput {
                code: LotCode::parse(&part.lot_code)?,
                expires_on,
            })
        };
        allocations.push(locked.buckets.add(
            &destination,
            lot.as_ref(),
            -part.quantity,
            today,
            now(),
        )?);
    }
    let change = locked.record(
        allocations,
        MovementNote {
            kind: MovementKind::Transfer,
            reason: request.reason,
            idempotency_key: request.idempotency_key,
            actor,
        },
    )?;
    let events = locked.save(transaction).await?;
    Ok((change, events))
}

/// Removes units from one bucket without a sale (expired units included).
async fn apply_write_off(
    transaction: &DatabaseTransaction,
    request: WriteOffRequest,
    actor: &Actor,
    clock: &Clock,
) -> Result<(StockChange, Vec<StockEvent>)> {
    existing_location(transaction, request.location_id, "locationId").await?;
    let mut locked = LockedProduct::lock_live(transaction, request.product_id, clock).await?;
    let lot_code = request.lot_code.as_ref().map_or("", LotCode::as_str);
    let allocation =
        locked
            .buckets
            .write_off(request.location_id, lot_code, request.quantity.get())?;
    let change = locked.record(
        vec![allocation],
        MovementNote {
            kind: MovementKind::WriteOff,
            reason: Some(request.reason),
            idempotency_key: request.idempotency_key,
            actor,
        },
    )?;
    let events = locked.save(transaction).await?;
    Ok((change, events))
}

impl StockService {
    pub(super) fn new(database: Database, events: EventBus, clock: Clock) -> Self {
        Self {
            database,
            events,
            coalescer: Coalescer::default(),
            clock,
        }
    }

    /// Adds or takes units in one locked transaction and records the movement. Fails with
    /// `NOT_FOUND`, `INSUFFICIENT_STOCK` (taking more than is available) or
    /// `STOCK_LIMIT_EXCEEDED` (adding past the cap), changing nothing. With an idempotency key,
    /// a retry returns the original outcome and changes nothing again.
    pub async fn change(&self, request: StockChangeRequest, actor: &Actor) -> Result<StockChange> {
        // Concurrent reductions of one product share a transaction (see `coalescing`).
        if request.direction == StockDirection::Reduce && request.idempotency_key.is_none() {
            if let Some(location_id) = request.location_id {
                existing_location(self.database.connection(), location_id, "locationId").await?;
            }
            return self
                .coalescer
                .reduce(
                    &self.database,
                    &self.events,
                    &self.clock,
                    request.product_id,
                    request.location_id,
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
        let clock = self.clock.clone();
        let result = run_write(
            &self.database,
            &self.events,
            actor,
            idempotency.as_ref(),
            move |transaction| {
                Box::pin(async move {
                    apply_change(transaction, request, &movement_actor, &clock).await
                })
            },
        )
        .await;
        let outcome = result.as_ref().map_or_else(Error::code, |_| "success");
        metrics::counter!("stockroom_stock_changes_total", "operation" => operation, "outcome" => outcome)
            .increment(1);
        result
    }

    /// Moves units of a product from one location to another in one transaction (movement kind
    /// `TRANSFER`; the product's stock is unchanged). Takes available units only: from the
    /// named lot, or first-expiring lots first. Lots keep their code and date at the
    /// destination. Fails with `BAD_USER_INPUT` (same, unknown or archived location),
    /// `NOT_FOUND` or `INSUFFICIENT_STOCK`, changing nothing.
    pub async fn transfer(&self, request: TransferRequest, actor: &Actor) -> Result<StockChange> {
        if request.from_location_id == request.to_location_id {
            return Err(Error::bad_field(
                "toLocationId",
                "a transfer needs two different locations",
            ));
        }
        let idempotency = request
            .idempotency_key
            .clone()
            .map(|key| IdempotentRequest {
                key,
                operation: "transferStock",
                fingerprint: serde_json::json!([
                    request.product_id,
                    request.from_location_id,
                    request.to_location_id,
                    request.quantity.get(),
                    request.lot_code.as_ref().map(LotCode::as_str),
                    request.reason.as_ref().map(Reason::as_str),
                ])
                .to_string(),
            });
        let movement_actor = actor.clone();
        let clock = self.clock.clone();
        let result = run_write(
            &self.database,
            &self.events,
            actor,
            idempotency.as_ref(),
            move |transaction| {
                Box::pin(async move {
                    apply_transfer(transaction, request, &movement_actor, &clock).await
                })
            },
        )
        .await;
        count_outcome("transferStock", &result);
        result
    }

    /// Removes units from one bucket of a location without a sale (movement kind `WRITE_OFF`):
    /// expired units can be written off, units held by reservations cannot. Fails with
    /// `BAD_USER_INPUT` (unknown location or lot), `NOT_FOUND` or `INSUFFICIENT_STOCK` (more
    /// than the bucket holds unreserved), changing nothing.
    pub async fn write_off(&self, request: WriteOffRequest, actor: &Actor) -> Result<StockChange> {
        let idempotency = request
            .idempotency_key
            .clone()
            .map(|key| IdempotentRequest {
                key,
                operation: "writeOffStock",
                fingerprint: serde_json::json!([
                    request.product_id,
                    request.location_id,
                    request.lot_code.as_ref().map(LotCode::as_str),
                    request.quantity.get(),
                    request.reason.as_str(),
                ])
                .to_string(),
            });
        let movement_actor = actor.clone();
        let clock = self.clock.clone();
        let result = run_write(
            &self.database,
            &self.events,
            actor,
            idempotency.as_ref(),
            move |transaction| {
                Box::pin(async move {
                    apply_write_off(transaction, request, &movement_actor, &clock).await
                })
            },
        )
        .await;
        count_outcome("writeOffStock", &result);
        result
    }

    /// Marks the lots that passed their date as expired, product by product, with a
    /// `lotExpired` event each (and `lowStock` when that leaves a product low); returns how
    /// many lots. The background task calls this; every write to a product does it too.
    pub async fn expire_lots(&self) -> Result<u64> {
        let today = self.clock.today();
        let due: Vec<Uuid> = stock_bucket::Entity::find()
            .select_only()
            .column(stock_bucket::Column::ProductId)
            .filter(stock_bucket::Column::Expired.eq(false))
            .filter(stock_bucket::Column::ExpiresOn.lt(today))
            .distinct()
            .order_by_asc(stock_bucket::Column::ProductId)
            .limit(500)
            .into_tuple()
            .all(self.database.connection())
            .await?;
        let mut expired = 0;
        for product_id in due {
            match self.expire_lots_of(product_id).await {
                Ok(count) => expired += count,
                // One product that fails must not hold up the others.
                Err(error) => {
                    error.log_cause();
                    tracing::warn!(product = %product_id, code = error.code(), "marking a product's expired lots failed; retrying next round");
                }
            }
        }
        Ok(expired)
    }

    /// Locks one product and marks its lots past their date; returns how many.
    async fn expire_lots_of(&self, product_id: Uuid) -> Result<u64> {
        let transaction = self.database.begin_write().await?;
        let Some(locked) = LockedProduct::lock_any(&*transaction, product_id, &self.clock).await?
        else {
            return Ok(0);
        };
        let events = locked.save(&*transaction).await?;
        let expired = events.iter().filter(|event| event.lot.is_some()).count() as u64;
        self.events.commit(transaction, events).await?;
        Ok(expired)
    }

    /// The buckets of each of `product_ids` (one query): their stock per location and lot.
    pub async fn buckets_of_products(
        &self,
        product_ids: &[Uuid],
    ) -> Result<Vec<stock_bucket::Model>> {
        Ok(stock_bucket::Entity::find()
            .filter(stock_bucket::Column::ProductId.is_in(product_ids.iter().copied()))
            .order_by_asc(stock_bucket::Column::CreatedAt)
            .order_by_asc(stock_bucket::Column::Id)
            .all(self.database.connection())
            .await?)
    }

    /// Lots by id (one query; missing ones are absent, lot-less buckets too).
    pub async fn find_lots(&self, ids: &[Uuid]) -> Result<Vec<stock_bucket::Model>> {
        Ok(stock_bucket::Entity::find()
            .filter(stock_bucket::Column::Id.is_in(ids.iter().copied()))
            .filter(stock_bucket::Column::LotCode.ne(""))
            .all(self.database.connection())
            .await?)
    }

    /// Lots with units on hand, not yet expired, whose last good day is at most `within` days
    /// from today, soonest first; only in `location_id` when given. At most 500.
    pub async fn expiring_lots(
        &self,
        within: DaysAhead,
        location_id: Option<Uuid>,
    ) -> Result<Vec<stock_bucket::Model>> {
        let today = self.clock.today();
        let last_day = today + chrono::Duration::days(within.get());
        let mut query = stock_bucket::Entity::find()
            .filter(stock_bucket::Column::Expired.eq(false))
            .filter(stock_bucket::Column::Stock.gt(0))
            .filter(stock_bucket::Column::ExpiresOn.gte(today))
            .filter(stock_bucket::Column::ExpiresOn.lte(last_day));
        if let Some(location_id) = location_id {
            query = query.filter(stock_bucket::Column::LocationId.eq(location_id));
        }
        Ok(query
            .order_by_asc(stock_bucket::Column::ExpiresOn)
            .order_by_asc(stock_bucket::Column::Id)
            .limit(500)
            .all(self.database.connection())
            .await?)
    }

    /// The date lots are judged by.
    pub fn today(&self) -> chrono::NaiveDate {
        self.clock.today()
    }

    /// The allocations of each of `movement_ids` (one query), in no particular order.
    pub async fn allocations_of(
        &self,
        movement_ids: &[Uuid],
    ) -> Result<Vec<stock_allocation::Model>> {
        Ok(stock_allocation::Entity::find()
            .filter(stock_allocation::Column::MovementId.is_in(movement_ids.iter().copied()))
            .all(self.database.connection())
            .await?)
    }

    /// Up to `limit` movements in listing order, newest first: forward, the ones after
    /// `cursor` (older); backward, the ones before it (newer), nearest first. With
    /// `product_id`, that product's history in exact commit order; without, the whole ledger.
    pub async fn movements(
        &self,
        filter: &MovementFilter,
        cursor: Option<MovementPosition>,
        direction: PageDirection,
        limit: u64,
    ) -> Result<Vec<stock_movement::Model>> {
        use sea_orm::Order;
        use stock_movement::Column;
        let backward = direction == PageDirection::Backward;
        let order = if backward { Order::Asc } else { Order::Desc };
        let mut query = filtered_movements(filter);
        query = match filter.product_id {
            Some(_) => {
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

    /// How many movements match `filter`.
    pub async fn count_matching(&self, filter: &MovementFilter) -> Result<u64> {
        Ok(filtered_movements(filter)
            .count(self.database.connection())
            .await?)
    }

    /// How many movements the whole ledger holds.
    pub async fn count_movements(&self) -> Result<u64> {
        Ok(stock_movement::Entity::find()
            .count(self.database.connection())
            .await?)
    }
}

/// The movements `filter` lets through, in no order yet.
fn filtered_movements(filter: &MovementFilter) -> sea_orm::Select<stock_movement::Entity> {
    let mut query = stock_movement::Entity::find();
    if let Some(product_id) = filter.product_id {
        query = query.filter(stock_movement::Column::ProductId.eq(product_id));
    }
    if filter.location_id.is_some() || filter.lot_code.is_some() {
        let mut touched = sea_orm::sea_query::Query::select()
            .column(stock_allocation::Column::MovementId)
            .from(stock_allocation::Entity)
            .to_owned();
        if let Some(location_id) = filter.location_id {
            touched.and_where(stock_allocation::Column::LocationId.eq(location_id));
        }
        if let Some(lot_code) = &filter.lot_code {
            touched.and_where(stock_allocation::Column::LotCode.eq(lot_code.as_str()));
        }
        if let Some(product_id) = filter.product_id {
            touched.and_where(stock_allocation::Column::ProductId.eq(product_id));
        }
        query = query.filter(stock_movement::Column::Id.in_subquery(touched));
    }
    query
}

fn count_outcome(operation: &'static str, result: &Result<StockChange>) {
    let outcome = result.as_ref().map_or_else(Error::code, |_| "success");
    metrics::counter!("stockroom_stock_changes_total", "operation" => operation, "outcome" => outcome)
        .increment(1);
}
