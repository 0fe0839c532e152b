//! The locked product row: what every write to a product does inside its transaction. Lock the
//! row, give back units of reservations whose time ran out, check a stock change against the
//! rules, advance the version and `updatedAt`, and append the movement to the ledger.
//!
//! Stock changes, the reduction coalescer, reservations and the catalogue all build on these
//! pieces; none of them borrows from another.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait,
    IntoActiveModel, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use super::{next_change_time, now};
use crate::domain::{Actor, IdempotencyKey, MAX_STOCK, Reason};
use crate::entity::product;
use crate::entity::reservation::{self, ReservationStatus};
use crate::entity::stock_movement::{self, MovementKind};
use crate::error::{Error, Result};

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

/// Stock after applying `delta` to `product`, or why it cannot be: a reduction may take only
/// the units not held by reservations, and stock never passes the cap.
pub(super) fn checked_stock(product: &product::Model, delta: i64) -> Result<i64> {
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

/// Inside a transaction holding the product's lock: marks its reservations whose time has run
/// out as `EXPIRED` and gives their units back. Returns the product as it is afterwards.
pub(super) async fn sweep_expired(
    transaction: &impl ConnectionTrait,
    product: product::Model,
) -> Result<product::Model> {
    Ok(expire_for_product(transaction, product).await?.0)
}

/// [`sweep_expired`], also saying how many reservations expired.
pub(super) async fn expire_for_product(
    transaction: &impl ConnectionTrait,
    product: product::Model,
) -> Result<(product::Model, u64)> {
    use reservation::Column;
    // `reserved` is the sum of the product's active reservations (`stockroom verify` checks
    // it), so a product holding nothing has nothing to expire: skip the query on the hot path.
    if product.reserved == 0 {
        return Ok((product, 0));
    }
    let sweep_time = now();
    let due = reservation::Entity::find()
        .filter(Column::ProductId.eq(product.id))
        .filter(Column::Status.eq(ReservationStatus::Active))
        .filter(Column::ExpiresAt.lte(sweep_time))
        .all(transaction)
        .await?;
    if due.is_empty() {
        return Ok((product, 0));
    }
    let released: i64 = due.iter().map(|reservation| reservation.quantity).sum();
    reservation::Entity::update_many()
        .col_expr(
            Column::Status,
            Expr::value(ReservationStatus::Expired.to_value()),
        )
        .col_expr(Column::ResolvedAt, sweep_time.into())
        .filter(Column::Id.is_in(due.iter().map(|reservation| reservation.id)))
        .exec(transaction)
        .await?;
    let reserved = product.reserved - released;
    let mut row = bump(product)?;
    row.reserved = Set(reserved);
    Ok((row.update(transaction).await?, due.len() as u64))
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

    #[test]
    fn the_version_never_wraps() {
        assert_eq!(next_version(1).unwrap(), 2);
        assert_eq!(next_version(i32::MAX).unwrap_err().code(), "INTERNAL");
        let mut exhausted = product(1, 0);
        exhausted.version = i32::MAX;
        assert!(bump(exhausted).is_err());
    }
}
