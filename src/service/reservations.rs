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

use super::buckets::Source;
use super::idempotency::{IdempotentRequest, run_write};
use super::locations::existing_location;
use super::locked::{LockedProduct, MovementNote};
use super::now;
use crate::clock::Clock;
use crate::database::Database;
use crate::domain::{Actor, IdempotencyKey, Quantity, Reference, ReservationTtl};
use crate::entity::reservation::{self, Column, ReservationStatus};
use crate::entity::reservation_hold;
use crate::entity::stock_movement::MovementKind;
use crate::error::{Error, Result};
use crate::events::EventBus;

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
    /// Hold units of this location only (of every location, by priority, when `None`).
    pub location_id: Option<Uuid>,
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
    clock: Clock,
}

impl ReservationService {
    pub(super) fn new(database: Database, events: EventBus, clock: Clock) -> Self {
        Self {
            database,
            events,
            clock,
        }
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

    /// Holds units of a product. Only available units (not reserved, not expired) can be held:
    /// `INSUFFICIENT_STOCK` otherwise. The units are chosen as a reduction would take them, and
    /// the reservation holds exactly those buckets until it ends.
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
                fingerprint: match request.location_id {
                    None => format!(
                        "{}|{}|{}|{}",
                        request.product_id,
                        request.quantity.get(),
                        request.ttl.seconds(),
                        request.reference.as_ref().map_or("", Reference::as_str)
                    ),
                    // With a location, a JSON array, which no reference text can imitate.
                    Some(location_id) => serde_json::json!([
                        request.product_id,
                        request.quantity.get(),
                        request.ttl.seconds(),
                        request.reference.as_ref().map(Reference::as_str),
                        location_id,
                    ])
                    .to_string(),
                },
            });
        let clock = self.clock.clone();
        let subject = actor.subject.clone();
        run_write(
            &self.database,
            &self.events,
            actor,
            idempotency.as_ref(),
            move |transaction| {
                Box::pin(async move {
                    let source = match request.location_id {
                        Some(location_id) => {
                            existing_location(transaction, location_id, "locationId").await?;
                            Source::Location(location_id)
                        }
                        None => Source::Anywhere,
                    };
                    let mut locked =
                        LockedProduct::lock_live(transaction, request.product_id, &clock).await?;
                    let wanted = request.quantity.get();
                    let created_at = now();
                    let expires_at = created_at + Duration::seconds(request.ttl.seconds());
                    // The day the hold runs out, on the calendar lots are judged by.
                    let good_through =
                        locked.today + (expires_at.date_naive() - created_at.date_naive());
                    let holds = locked.buckets.hold(source, wanted, good_through)?;
                    let reservation = reservation::Model {
                        id: Uuid::now_v7(),
                        product_id: request.product_id,
                        quantity: wanted,
                        status: ReservationStatus::Active,
                        reference: request
                            .reference
                            .map(|reference| reference.as_str().to_owned()),
                        actor: subject,
                        expires_at,
                        created_at,
                        resolved_at: None,
                    };
                    locked.record_without_movement()?;
                    let events = locked.save(transaction).await?;
                    let reservation = reservation
                        .into_active_model()
                        .reset_all()
                        .insert(transaction)
                        .await?;
                    reservation_hold::Entity::insert_many(holds.into_iter().map(
                        |(bucket_id, quantity)| reservation_hold::ActiveModel {
                            reservation_id: Set(reservation.id),
                            bucket_id: Set(bucket_id),
                            quantity: Set(quantity),
                        },
                    ))
                    .exec_without_returning(transaction)
                    .await?;
                    Ok((reservation, events))
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
        let clock = self.clock.clone();
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
                    let mut locked =
                        LockedProduct::lock_live(transaction, product_id, &clock).await?;
                    let current = reservation::Entity::find_by_id(id)
                        .one(transaction)
                        .await?
                        .ok_or_else(|| Error::internal("a locked reservation vanished"))?;
                    // The sweeps on locking may just have ended it (its time or its lot ran out).
                    let status = if locked.ended(id) {
                        ReservationStatus::Expired
                    } else {
                        current.status
                    };
                    if status != ReservationStatus::Active {
                        return Err(Error::ReservationNotActive(format!(
                            "the reservation is {}, not ACTIVE: it cannot be {}",
                            status_name(status),
                            match resolution {
                                Resolution::Commit => "committed",
                                Resolution::Release => "released",
                            }
                        )));
                    }
                    let holds = reservation_hold::Entity::find()
                        .filter(reservation_hold::Column::ReservationId.eq(id))
                        .all(transaction)
                        .await?;
                    match resolution {
                        Resolution::Commit => {
                            let mut allocations = Vec::with_capacity(holds.len());
                            for hold in &holds {
                                allocations
                                    .push(locked.buckets.take_held(hold.bucket_id, hold.quantity)?);
                            }
                            locked.record(
                                allocations,
                                MovementNote {
                                    kind: MovementKind::ReservationCommit,
                                    reason: None,
                                    idempotency_key: None,
                                    actor: &movement_actor,
                                },
                            )?;
                        }
                        Resolution::Release => {
                            for hold in &holds {
                                locked.buckets.release(hold.bucket_id, hold.quantity)?;
                            }
                            locked.record_without_movement()?;
                        }
                    }
                    let events = locked.save(transaction).await?;
                    let mut reservation_row = current.into_active_model();
                    reservation_row.status = Set(match resolution {
                        Resolution::Commit => ReservationStatus::Committed,
                        Resolution::Release => ReservationStatus::Released,
                    });
                    reservation_row.resolved_at = Set(Some(now()));
                    let resolved = reservation_row.update(transaction).await?;
                    Ok((resolved, events))
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
            let Some(locked) =
                LockedProduct::lock_any(&*transaction, product_id, &self.clock).await?
            else {
                continue;
            };
            let count = locked.ended_reservations() as u64;
            let events = locked.save(&*transaction).await?;
            self.events.commit(transaction, events).await?;
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
