//! The locked product row: what every write to a product does inside its transaction. Lock the
//! row, read its buckets, give back units of reservations whose time ran out, mark lots that
//! passed their date, apply the change to the buckets, advance the version and `updatedAt`,
//! and append the movement and its allocations to the ledger.
//!
//! Stock changes, the reduction coalescer, reservations and the catalogue all build on these
//! pieces; none of them borrows from another.

use chrono::NaiveDate;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait,
    IntoActiveModel, Iterable, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::buckets::{Allocation, Buckets};
use super::statements::Writes;
use super::{next_change_time, now};
use crate::clock::Clock;
use crate::domain::{Actor, IdempotencyKey, MAX_STOCK, ProductName, Reason, Sku};
use crate::entity::reservation::{self, ReservationStatus};
use crate::entity::stock_movement::{self, MovementKind};
use crate::entity::{location, product, reservation_hold, stock_allocation, stock_bucket};
use crate::error::{Error, Result};
use crate::events::StockEvent;

/// The outcome of a successful stock change: the product after it and its movement.
#[derive(Clone, Debug)]
pub struct StockChange {
    /// The product as committed.
    pub product: product::Model,
    /// The ledger entry the change wrote.
    pub movement: stock_movement::Model,
}

/// Reads a product inside a write transaction and locks its row until commit
/// (`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite the `IMMEDIATE` transaction already holds
/// the database's write lock, and the clause is left out).
pub(super) async fn lock_product(
    transaction: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<product::Model>> {
    Ok(product::Entity::find_by_id(id)
        .lock_exclusive()
        .one(transaction)
        .await?)
}

/// [`lock_product`], for a product that must exist and not be deleted.
pub(super) async fn lock_live_product(
    transaction: &impl ConnectionTrait,
    id: Uuid,
) -> Result<product::Model> {
    product::Entity::find_by_id(id)
        .filter(product::Column::DeletedAt.is_null())
        .lock_exclusive()
        .one(transaction)
        .await?
        .ok_or(Error::NotFound)
}

/// The version after `current`'s: `version` is a GraphQL `Int`, and a product that has used
/// them all up is refused rather than wrapped around.
pub(super) fn next_version(current: i32) -> Result<i32> {
    current
        .checked_add(1)
        .ok_or_else(|| Error::internal("the product's version counter is exhausted"))
}

/// An update of `current` that advances its version and `updatedAt`, as every change must.
pub(super) fn bump(current: product::Model) -> Result<product::ActiveModel> {
    let version = next_version(current.version)?;
    let updated_at = next_change_time(current.updated_at);
    let mut row = current.into_active_model();
    row.version = Set(version);
    row.updated_at = Set(updated_at);
    Ok(row)
}

/// What a movement records, besides the buckets it touched.
pub(super) struct MovementNote<'a> {
    pub kind: MovementKind,
    pub reason: Option<Reason>,
    pub idempotency_key: Option<IdempotencyKey>,
    pub actor: &'a Actor,
}

/// Most rows per multi-row `INSERT` (a movement binds 11 values, an allocation 9): far below
/// SQLite's 32,766 bind parameters and PostgreSQL's 65,535.
pub(super) const INSERT_CHUNK: usize = 500;

/// A product locked for a write, with its buckets: every change of stock, reservations or
/// lots is made here in memory, then [`LockedProduct::save`] stores it all at once.
///
/// Locking sweeps first: reservations whose time ran out give their units back, and lots that
/// passed their date are marked expired (ending the reservations that held them, since expired
/// units are never sold) with a `lotExpired` event each.
pub(super) struct LockedProduct {
    /// The product as changed so far.
    pub product: product::Model,
    /// Its stock per location and lot.
    pub buckets: Buckets,
    /// The date lots are judged by.
    pub today: NaiveDate,
    movements: Vec<stock_movement::Model>,
    allocations: Vec<stock_allocation::Model>,
    ended_reservations: Vec<Uuid>,
    events: Vec<StockEvent>,
    changed: bool,
    /// A product made here, in memory: saving inserts its row instead of updating it.
    new_row: bool,
    /// Whether the product was low, how many units were available and whether it was
    /// deleted when it was locked (`None` for a product made here): where its events'
    /// "before" starts.
    as_locked: Option<(bool, i64, bool)>,
}

impl LockedProduct {
    /// Locks a live product (`NOT_FOUND` otherwise), reads its buckets and sweeps.
    pub(super) async fn lock_live(
        transaction: &impl ConnectionTrait,
        product_id: Uuid,
        clock: &Clock,
    ) -> Result<Self> {
        let product = lock_live_product(transaction, product_id).await?;
        Self::after_lock(transaction, product, clock).await
    }

    /// Locks a product, deleted or not, reads its buckets and sweeps; `None` if it does not
    /// exist.
    pub(super) async fn lock_any(
        transaction: &impl ConnectionTrait,
        product_id: Uuid,
        clock: &Clock,
    ) -> Result<Option<Self>> {
        match lock_product(transaction, product_id).await? {
            Some(product) => Ok(Some(Self::after_lock(transaction, product, clock).await?)),
            None => Ok(None),
        }
    }

    /// Locks the live products among `ids` in ascending id order (so two writers locking
    /// overlapping sets cannot deadlock), in chunks of [`INSERT_CHUNK`] per statement, reads
    /// their buckets and sweeps each. Products that do not exist or are deleted are left out.
    pub(super) async fn lock_many_live(
        transaction: &impl ConnectionTrait,
        ids: &[Uuid],
        clock: &Clock,
    ) -> Result<Vec<Self>> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut products = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(INSERT_CHUNK) {
            products.extend(
                product::Entity::find()
                    .filter(product::Column::Id.is_in(chunk.iter().copied()))
                    .filter(product::Column::DeletedAt.is_null())
                    .order_by_asc(product::Column::Id)
                    .lock_exclusive()
                    .all(transaction)
                    .await?,
            );
        }
        let today = clock.today();
        let found: Vec<Uuid> = products.iter().map(|product| product.id).collect();
        let mut buckets = Buckets::load_many(transaction, &found).await?;
        let mut locked = Vec::with_capacity(products.len());
        for product in products {
            let product_buckets = buckets
                .remove(&product.id)
                .ok_or_else(|| Error::internal("a locked product's buckets were not read"))?;
            locked.push(Self::swept(transaction, product, product_buckets, today).await?);
        }
        Ok(locked)
    }

    async fn after_lock(
        transaction: &impl ConnectionTrait,
        product: product::Model,
        clock: &Clock,
    ) -> Result<Self> {
        // Read once the lock is held: a request that waited past midnight judges by the new day.
        let today = clock.today();
        let buckets = Buckets::load(transaction, product.id).await?;
        Self::swept(transaction, product, buckets, today).await
    }

    /// The locked product with its buckets, after the sweeps.
    async fn swept(
        transaction: &impl ConnectionTrait,
        product: product::Model,
        buckets: Buckets,
        today: NaiveDate,
    ) -> Result<Self> {
        let as_locked = Some((
            product.is_low_stock(),
            product.available(),
            product.is_deleted(),
        ));
        let mut locked = Self {
            product,
            buckets,
            today,
            movements: Vec::new(),
            allocations: Vec::new(),
            ended_reservations: Vec::new(),
            events: Vec::new(),
            changed: false,
            new_row: false,
            as_locked,
        };
        locked.sweep_reservations(transaction).await?;
        locked.sweep_lots(transaction).await?;
        Ok(locked)
    }

    /// A new product, made in memory as `createProduct` makes one with no stock: version 1, an
    /// empty lot-less bucket in `main` and an `INITIAL` movement of 0. Nothing is stored until
    /// [`LockedProduct::save_into`]; a product never saved never existed.
    pub(super) fn create(
        sku: &Sku,
        name: &ProductName,
        reorder_level: i64,
        main: &location::Model,
        actor: &Actor,
        today: NaiveDate,
    ) -> Self {
        let created_at = now();
        let product = product::Model {
            id: Uuid::now_v7(),
            name: name.as_str().to_owned(),
            name_key: name.search_key(),
            sku: sku.as_str().to_owned(),
            sku_key: sku.key(),
            stock: 0,
            reorder_level,
            version: 1,
            created_at,
            updated_at: created_at,
            deleted_at: None,
            reserved: 0,
            expired: 0,
        };
        let (buckets, bucket_id) = Buckets::for_new_product(product.id, main, created_at);
        let movement = stock_movement::Model {
            id: Uuid::now_v7(),
            product_id: product.id,
            kind: MovementKind::Initial,
            delta: 0,
            stock_before: 0,
            stock_after: 0,
            product_version: 1,
            reason: None,
            idempotency_key: None,
            actor: actor.subject.clone(),
            created_at,
        };
        let allocation = stock_allocation::Model {
            movement_id: movement.id,
            bucket_id,
            product_id: product.id,
            location_id: main.id,
            lot_code: String::new(),
            quantity: 0,
            stock_before: 0,
            stock_after: 0,
            created_at,
        };
        let event = StockEvent::new(None, &product, Some(movement.clone()));
        Self {
            product,
            buckets,
            today,
            movements: vec![movement],
            allocations: vec![allocation],
            ended_reservations: Vec::new(),
            events: vec![event],
            changed: true,
            new_row: true,
            as_locked: None,
        }
    }

    /// Renames the product and sets its reorder level (`None` keeps a value); counts as one
    /// change when anything differs. Returns whether it did.
    pub(super) fn update_catalogue(
        &mut self,
        name: Option<&ProductName>,
        reorder_level: Option<i64>,
    ) -> Result<bool> {
        let before = self.product.clone();
        if let Some(name) = name {
            self.product.name = name.as_str().to_owned();
            self.product.name_key = name.search_key();
        }
        if let Some(level) = reorder_level {
            self.product.reorder_level = level;
        }
        if self.product.name == before.name && self.product.reorder_level == before.reorder_level {
            return Ok(false);
        }
        self.advance()?;
        // As `updateProduct` publishes them: a new reorder level that leaves the product low
        // is a `lowStock` event, any other catalogue change a quiet one.
        let event =
            if self.product.reorder_level != before.reorder_level && self.product.is_low_stock() {
                StockEvent::new(Some(&before), &self.product, None)
            } else {
                StockEvent::catalogue(&before, &self.product)
            };
        self.events.push(event);
        Ok(true)
    }

    /// How many reservations the sweeps ended.
    pub(super) fn ended_reservations(&self) -> usize {
        self.ended_reservations.len()
    }

    /// Whether the sweeps ended reservation `id`.
    pub(super) fn ended(&self, id: Uuid) -> bool {
        self.ended_reservations.contains(&id)
    }

    /// Ends the product's active reservations whose time has run out.
    async fn sweep_reservations(&mut self, transaction: &impl ConnectionTrait) -> Result<()> {
        use reservation::Column;
        // `reserved` is the sum of the product's active reservations (`stockroom verify` checks
        // it), so a product holding nothing has nothing to expire: skip the query on the hot path.
        if self.product.reserved == 0 {
            return Ok(());
        }
        let due: Vec<Uuid> = reservation::Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::ProductId.eq(self.product.id))
            .filter(Column::Status.eq(ReservationStatus::Active))
            .filter(Column::ExpiresAt.lte(now()))
            .into_tuple()
            .all(transaction)
            .await?;
        if due.is_empty() {
            return Ok(());
        }
        self.end_reservations(transaction, due).await?;
        self.advance()
    }

    /// Marks lots past their date expired; reservations holding units in them end first.
    async fn sweep_lots(&mut self, transaction: &impl ConnectionTrait) -> Result<()> {
        let past = self.buckets.newly_past_date(self.today);
        if past.is_empty() {
            return Ok(());
        }
        // The active reservations holding units of those lots (not every reservation that
        // ever held them: one query, whatever the lots' history).
        let holding: Vec<Uuid> = reservation_hold::Entity::find()
            .select_only()
            .column(reservation_hold::Column::ReservationId)
            .distinct()
            .inner_join(reservation::Entity)
            .filter(reservation_hold::Column::BucketId.is_in(past.iter().copied()))
            .filter(reservation::Column::Status.eq(ReservationStatus::Active))
            .into_tuple()
            .all(transaction)
            .await?;
        let holding: Vec<Uuid> = holding
            .into_iter()
            .filter(|id| !self.ended_reservations.contains(id))
            .collect();
        self.end_reservations(transaction, holding).await?;
        let was = self.product.clone();
        let mut lots = Vec::with_capacity(past.len());
        for bucket_id in past {
            lots.push(self.buckets.mark_expired(bucket_id)?);
        }
        self.advance()?;
        for lot in lots {
            self.events
                .push(StockEvent::lot_expired(&was, &self.product, &lot));
        }
        Ok(())
    }

    /// Ends active reservations of this product (they become `EXPIRED` on save) and gives their
    /// held units back.
    async fn end_reservations(
        &mut self,
        transaction: &impl ConnectionTrait,
        ids: Vec<Uuid>,
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let holds = reservation_hold::Entity::find()
            .filter(reservation_hold::Column::ReservationId.is_in(ids.iter().copied()))
            .all(transaction)
            .await?;
        for hold in holds {
            self.buckets.release(hold.bucket_id, hold.quantity)?;
        }
        self.ended_reservations.extend(ids);
        self.sync_totals();
        Ok(())
    }

    /// Sets the product's totals to the sums over its buckets.
    fn sync_totals(&mut self) {
        self.product.stock = self.buckets.stock();
        self.product.reserved = self.buckets.reserved();
        self.product.expired = self.buckets.expired();
    }

    /// Counts one change: the version and `updatedAt` move on.
    fn advance(&mut self) -> Result<()> {
        self.sync_totals();
        self.product.version = next_version(self.product.version)?;
        self.product.updated_at = next_change_time(self.product.updated_at);
        self.changed = true;
        Ok(())
    }

    /// `STOCK_LIMIT_EXCEEDED` unless `quantity` more units fit under the cap.
    pub(super) fn ensure_room(&self, quantity: i64) -> Result<()> {
        match self.product.stock.checked_add(quantity) {
            Some(after) if after <= MAX_STOCK => Ok(()),
            _ => Err(Error::StockLimitExceeded),
        }
    }

    /// Records a change the buckets already reflect: the product's next version and one
    /// movement with one allocation per bucket touched. Returns the change as it will commit.
    pub(super) fn record(
        &mut self,
        allocations: Vec<Allocation>,
        note: MovementNote<'_>,
    ) -> Result<StockChange> {
        let before = self.product.clone();
        self.advance()?;
        let movement = stock_movement::Model {
            id: Uuid::now_v7(),
            product_id: self.product.id,
            kind: note.kind,
            delta: self.product.stock - before.stock,
            stock_before: before.stock,
            stock_after: self.product.stock,
            product_version: self.product.version,
            reason: note.reason.map(Reason::into_string),
            idempotency_key: note.idempotency_key.map(|key| key.as_str().to_owned()),
            actor: note.actor.subject.clone(),
            created_at: self.product.updated_at,
        };
        let allocations: Vec<stock_allocation::Model> = allocations
            .into_iter()
            .map(|allocation| stock_allocation::Model {
                movement_id: movement.id,
                bucket_id: allocation.bucket_id,
                product_id: movement.product_id,
                location_id: allocation.location_id,
                lot_code: allocation.lot_code,
                quantity: allocation.quantity,
                stock_before: allocation.stock_before,
                stock_after: allocation.stock_after,
                created_at: movement.created_at,
            })
            .collect();
        self.events.push(StockEvent::new(
            Some(&before),
            &self.product,
            Some(movement.clone()),
        ));
        self.movements.push(movement.clone());
        self.allocations.extend(allocations.iter().cloned());
        Ok(StockChange {
            product: self.product.clone(),
            movement,
        })
    }

    /// Records a change without a movement (a reservation held or released): the product's
    /// next version. Returns the product as it will commit.
    pub(super) fn record_without_movement(&mut self) -> Result<product::Model> {
        let before = self.product.clone();
        self.advance()?;
        self.events
            .push(StockEvent::new(Some(&before), &self.product, None));
        Ok(self.product.clone())
    }

    /// Stores everything changed: the reservations the sweeps ended, the product row once, each
    /// changed bucket, and the movements and allocations in multi-row `INSERT`s, all sent
    /// together (see [`Writes`]). Returns the events to publish with the commit, in the order
    /// they happened.
    pub(super) async fn save(self, transaction: &impl ConnectionTrait) -> Result<Vec<StockEvent>> {
        let mut writes = Writes::default();
        let events = self.save_into(&mut writes);
        writes.execute(transaction).await?;
        Ok(events)
    }

    /// [`LockedProduct::save`]'s writes, added to `writes` (so the writes of many products go
    /// together); returns the events.
    pub(super) fn save_into(mut self, writes: &mut Writes) -> Vec<StockEvent> {
        if !self.changed {
            return self.events;
        }
        // Every saved version reaches the product caches: when the last event does not show
        // the product as saved (a sweep changed it after, or alone), a quiet event does.
        if self
            .events
            .last()
            .is_none_or(|event| event.product.version != self.product.version)
        {
            let before = self.product.clone();
            self.events
                .push(StockEvent::catalogue(&before, &self.product));
        }
        // Each event's "before" is where the previous one left the product (the state as
        // locked for the first), so a sweep's change is never lost between two events and a
        // threshold crossing shows on exactly one of them.
        let mut before = self.as_locked;
        for event in &mut self.events {
            event.was_low = before.map(|(low, ..)| low);
            event.was_available = before.map(|(_, available, _)| available);
            event.was_deleted = before.map(|(.., deleted)| deleted);
            event.deleted = self.product.is_deleted();
            before = Some((event.is_low(), event.available(), event.deleted));
        }
        if !self.ended_reservations.is_empty() {
            use reservation::Column;
            writes.push(
                reservation::Entity::update_many()
                    .col_expr(
                        Column::Status,
                        Expr::value(ReservationStatus::Expired.to_value()),
                    )
                    .col_expr(Column::ResolvedAt, now().into())
                    .filter(Column::Id.is_in(self.ended_reservations.iter().copied()))
                    .filter(Column::Status.eq(ReservationStatus::Active))
                    .into_query(),
                self.ended_reservations.len() + 3,
            );
        }
        if self.new_row {
            writes.push(
                product::Entity::insert(self.product.clone().into_active_model().reset_all())
                    .into_query(),
                columns::<product::Entity>(),
            );
        } else {
            use product::Column;
            writes.push(
                product::Entity::update_many()
                    .col_expr(Column::Name, self.product.name.clone().into())
                    .col_expr(Column::NameKey, self.product.name_key.clone().into())
                    .col_expr(Column::ReorderLevel, self.product.reorder_level.into())
                    .col_expr(Column::Stock, self.product.stock.into())
                    .col_expr(Column::Reserved, self.product.reserved.into())
                    .col_expr(Column::Expired, self.product.expired.into())
                    .col_expr(Column::Version, self.product.version.into())
                    .col_expr(Column::UpdatedAt, self.product.updated_at.into())
                    .filter(Column::Id.eq(self.product.id))
                    .into_query(),
                9,
            );
        }
        self.new_row = false;
        for (bucket, is_new) in self.buckets.changed() {
            if is_new {
                writes.push(
                    stock_bucket::Entity::insert(bucket.clone().into_active_model().reset_all())
                        .into_query(),
                    columns::<stock_bucket::Entity>(),
                );
            } else {
                use stock_bucket::Column;
                writes.push(
                    stock_bucket::Entity::update_many()
                        .col_expr(Column::Stock, bucket.stock.into())
                        .col_expr(Column::Reserved, bucket.reserved.into())
                        .col_expr(Column::Expired, bucket.expired.into())
                        .filter(Column::Id.eq(bucket.id))
                        .into_query(),
                    4,
                );
            }
        }
        self.buckets.mark_stored();
        push_inserts::<stock_movement::Entity, _>(
            writes,
            std::mem::take(&mut self.movements)
                .into_iter()
                .map(|movement| movement.into_active_model().reset_all()),
        );
        push_inserts::<stock_allocation::Entity, _>(
            writes,
            std::mem::take(&mut self.allocations)
                .into_iter()
                .map(|allocation| allocation.into_active_model().reset_all()),
        );
        self.events
    }
}

/// How many columns a row of `E` binds.
pub(super) fn columns<E: EntityTrait>() -> usize {
    E::Column::iter().count()
}

/// Adds `rows` to `writes` as multi-row `INSERT`s of at most [`INSERT_CHUNK`] rows.
pub(super) fn push_inserts<E, A>(writes: &mut Writes, rows: impl Iterator<Item = A>)
where
    E: EntityTrait,
    A: ActiveModelTrait<Entity = E>,
{
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(INSERT_CHUNK).collect();
        let binds = chunk.len() * columns::<E>();
        writes.push(E::insert_many(chunk).into_query(), binds);
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_never_wraps() {
        assert_eq!(next_version(1).unwrap(), 2);
        assert_eq!(next_version(i32::MAX).unwrap_err().code(), "INTERNAL");
    }
}
