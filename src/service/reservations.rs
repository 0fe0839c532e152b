//! Reservations: units held for a checkout while the customer pays, then committed (a
//! reduction with its movement), released, or expired when their time runs out.
//!
//! A reservation changes only `products.reserved`, never `stock`, so the ledger stays the sum
//! of stock movements; `reserved` always equals the quantities of the product's `ACTIVE`
//! reservations (`stockroom verify` checks both). Every transition locks the product row
//! first, so a racing commit and release of one reservation serialize and exactly one wins.

use chrono::Duration;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::idempotency::{IdempotentRequest, run_write};
use super::locked::{
    MovementRecord, bump, expire_for_product, lock_live_product, lock_product, record_movement,
    sweep_expired,
};
use super::now;
use crate::database::Database;
use crate::domain::{Actor, IdempotencyKey, Quantity, Reference, ReservationTtl};
use crate::entity::reservation::{self, Column, ReservationStatus};
use crate::entity::stock_movement::MovementKind;
use crate::error::{Error, Result};
use crate::events::{EventBus, StockEvent};

/// A reservation as a transport asks for it, validated.
#[derive(Clone, Debug)]
pub struct ReserveRequest {
    /// The product.
    pub product_id: Uuid,
    /// Units to hold.
    pub quantity: Quantity,
    /// How long to hold them.
    pub ttl: ReservationTtl,
    /// The caller's order or cart reference.
    pub reference: Option<Reference>,
    /// Makes retries safe.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// How a reservation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Take the units: stock goes down by the reservation's quantity.
    Commit,
    /// Give the units back.
    Release,
}

/// Holds, commits, releases and expires reservations.
#[derive(Clone, Debug)]
pub struct ReservationService {
    database: Database,
    events: EventBus,
}

impl ReservationService {
    pub(super) fn new(database: Database, events: EventBus) -> Self {
        Self { database, events }
    }

    /// A reservation by id.
    pub async fn find(&self, id: Uuid) -> Result<Option<reservation::Model>> {
        Ok(reservation::Entity::find_by_id(id)
            .one(self.database.connection())
            .await?)
    }

    /// Reservations by id, in one query (missing ones are simply absent).
    pub async fn find_many(&self, ids: &[Uuid]) -> Result<Vec<reservation::Model>> {
        Ok(reservation::Entity::find()
            .filter(Column::Id.is_in(ids.iter().copied()))
            .all(self.database.connection())
            .await?)
    }

    /// Holds units of a product. Only available units (stock less what is already reserved)
    /// can be held: `INSUFFICIENT_STOCK` otherwise.
    pub async fn reserve(
        &self,
        request: ReserveRequest,
        actor: &Actor,
    ) -> Result<reservation::Model> {
        let idempotency = request
            .idempotency_key
            .clone()
            .map(|key| IdempotentRequest {
                key,
                operation: "reserveStock",
                fingerprint: format!(
                    "{}|{}|{}|{}",
                    request.product_id,
                    request.quantity.get(),
                    request.ttl.seconds(),
                    request.reference.as_ref().map_or("", Reference::as_str)
                ),
            });
        let subject = actor.subject.clone();
        run_write(
            &self.database,
            &self.events,
            actor,
            idempotency.as_ref(),
            move |transaction| {
                Box::pin(async move {
                    let locked = lock_live_product(transaction, request.product_id).await?;
                    let before = sweep_expired(transaction, locked).await?;
                    let wanted = request.quantity.get();
                    if before.available() < wanted {
                        return Err(Error::InsufficientStock {
                            available: before.available(),
                            requested: wanted,
                        });
                    }
                    let created_at = now();
                    let reservation = reservation::Model {
                        id: Uuid::now_v7(),
                        product_id: before.id,
                        quantity: wanted,
                        status: ReservationStatus::Active,
                        reference: request
                            .reference
                            .map(|reference| reference.as_str().to_owned()),
                        actor: subject,
                        expires_at: created_at + Duration::seconds(request.ttl.seconds()),
                        created_at,
                        resolved_at: None,
                    }
                    .into_active_model()
                    .reset_all()
                    .insert(transaction)
                    .await?;
                    let mut row = bump(before.clone())?;
                    row.reserved = Set(before.reserved + wanted);
                    let product = row.update(transaction).await?;
                    Ok((
                        reservation,
                        vec![StockEvent::new(Some(&before), &product, None)],
                    ))
                })
            },
        )
        .await
    }

    /// Commits (the units leave stock, with a `RESERVATION_COMMIT` movement) or releases (the
    /// units become available again) an active reservation. A reservation resolves once:
    /// resolving it again, or after it expired, is `RESERVATION_NOT_ACTIVE`.
    pub async fn resolve(
        &self,
        id: Uuid,
        resolution: Resolution,
        idempotency_key: Option<IdempotencyKey>,
        actor: &Actor,
    ) -> Result<reservation::Model> {
        let operation = match resolution {
            Resolution::Commit => "commitReservation",
            Resolution::Release => "releaseReservation",
        };
        let idempotency = idempotency_key.map(|key| IdempotentRequest {
            key,
            operation,
            fingerprint: id.to_string(),
        });
        let movement_actor = actor.clone();
        run_write(
            &self.database,
            &self.events,
            actor,
            idempotency.as_ref(),
            move |transaction| {
                Box::pin(async move {
                    let product_id = reservation::Entity::find_by_id(id)
                        .one(transaction)
                        .await?
                        .ok_or_else(|| {
                            Error::bad_input(format!("no reservation has the id '{id}'"))
                        })?
                        .product_id;
                    // Lock the product first: every transition of its reservations queues here.
                    let locked = lock_live_product(transaction, product_id).await?;
                    let before = sweep_expired(transaction, locked).await?;
                    let current = reservation::Entity::find_by_id(id)
                        .one(transaction)
                        .await?
                        .ok_or_else(|| Error::internal("a locked reservation vanished"))?;
                    if current.status != ReservationStatus::Active {
                        return Err(Error::ReservationNotActive(format!(
                            "the reservation is {}, not ACTIVE: it cannot be {}",
                            status_name(current.status),
                            match resolution {
                                Resolution::Commit => "committed",
                                Resolution::Release => "released",
                            }
                        )));
                    }
                    let resolved_at = now();
                    let mut reservation_row = current.clone().into_active_model();
                    reservation_row.status = Set(match resolution {
                        Resolution::Commit => ReservationStatus::Committed,
                        Resolution::Release => ReservationStatus::Released,
                    });
                    reservation_row.resolved_at = Set(Some(resolved_at));
                    let resolved = reservation_row.update(transaction).await?;

                    let mut row = bump(before.clone())?;
                    row.reserved = Set(before.reserved - current.quantity);
                    if resolution == Resolution::Commit {
                        row.stock = Set(before.stock - current.quantity);
                    }
                    let product = row.update(transaction).await?;
                    let movement = match resolution {
                        Resolution::Commit => Some(
                            record_movement(
                                transaction,
                                MovementRecord {
                                    product: &product,
                                    kind: MovementKind::ReservationCommit,
                                    stock_before: before.stock,
                                    reason: None,
                                    idempotency_key: None,
                                    actor: &movement_actor,
                                },
                            )
                            .await?,
                        ),
                        Resolution::Release => None,
                    };
                    Ok((
                        resolved,
                        vec![StockEvent::new(Some(&before), &product, movement)],
                    ))
                })
            },
        )
        .await
    }

    /// Expires every active reservation whose time has run out, product by product; returns
    /// how many. The background sweeper calls this; changes also sweep their own product.
    pub async fn expire_due(&self) -> Result<u64> {
        let due_products: Vec<Uuid> = reservation::Entity::find()
            .select_only()
            .column(Column::ProductId)
            .filter(Column::Status.eq(ReservationStatus::Active))
            .filter(Column::ExpiresAt.lte(now()))
            .distinct()
            .order_by_asc(Column::ProductId)
            .limit(500)
            .into_tuple()
            .all(self.database.connection())
            .await?;
        let mut expired = 0;
        for product_id in due_products {
            let transaction = self.database.begin_write().await?;
            let Some(locked) = lock_product(&*transaction, product_id).await? else {
                continue;
            };
            let (_, count) = expire_for_product(&*transaction, locked).await?;
            transaction.commit().await?;
            expired += count;
        }
        Ok(expired)
    }
}

fn status_name(status: ReservationStatus) -> &'static str {
    match status {
        ReservationStatus::Active => "ACTIVE",
        ReservationStatus::Committed => "COMMITTED",
        ReservationStatus::Released => "RELEASED",
        ReservationStatus::Expired => "EXPIRED",
    }
}
