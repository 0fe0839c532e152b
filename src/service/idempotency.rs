//! Idempotency keys: a retried request returns its original result and changes nothing again.
//!
//! A key is claimed by inserting it in the same transaction as the change it guards, and the
//! change's outcome (success, or a business error) is stored with it before commit. A retry
//! finds the key and replays the outcome; on PostgreSQL a concurrent duplicate waits on the
//! key's primary key until the first transaction ends, then replays what it committed (or, if
//! it rolled back, runs itself). Keys are scoped to the caller and pruned after a retention
//! period.
//!
//! Outcomes are stored as their own types ([`Replayable::Stored`]), never as the entities: a
//! column added to a table must not make the outcomes stored by an earlier version unreadable.
//! Readers ignore fields they do not know and default the ones they miss.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, TryInsertResult,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::locked::StockChange;
use super::now;
use crate::database::Database;
use crate::domain::{Actor, IdempotencyKey};
use crate::entity::idempotency_key::{self, Column};
use crate::entity::reservation::{self, ReservationStatus};
use crate::error::{Error, Result};
use crate::events::{EventBus, MovementSnapshot, ProductSnapshot, StockEvent};

/// A result that can be stored with its idempotency key and replayed from there.
pub(super) trait Replayable: Sized {
    /// How the result is stored.
    type Stored: Serialize + DeserializeOwned;
    /// The result as stored.
    fn to_stored(&self) -> Self::Stored;
    /// The result read back.
    fn from_stored(stored: Self::Stored) -> Self;
}

/// A stock change as stored: the product after it and its movement.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredStockChange {
    product: ProductSnapshot,
    movement: MovementSnapshot,
}

impl Replayable for StockChange {
    type Stored = StoredStockChange;

    fn to_stored(&self) -> StoredStockChange {
        StoredStockChange {
            product: ProductSnapshot::from(&self.product),
            movement: MovementSnapshot::from(&self.movement),
        }
    }

    fn from_stored(stored: StoredStockChange) -> Self {
        Self {
            product: stored.product.to_model(),
            movement: stored.movement.into_model(),
        }
    }
}

/// A reservation as stored.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredReservation {
    id: uuid::Uuid,
    product_id: uuid::Uuid,
    quantity: i64,
    status: ReservationStatus,
    #[serde(default)]
    reference: Option<String>,
    actor: String,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    #[serde(default)]
    resolved_at: Option<DateTime<Utc>>,
}

impl Replayable for reservation::Model {
    type Stored = StoredReservation;

    fn to_stored(&self) -> StoredReservation {
        StoredReservation {
            id: self.id,
            product_id: self.product_id,
            quantity: self.quantity,
            status: self.status,
            reference: self.reference.clone(),
            actor: self.actor.clone(),
            expires_at: self.expires_at,
            created_at: self.created_at,
            resolved_at: self.resolved_at,
        }
    }

    fn from_stored(stored: StoredReservation) -> Self {
        Self {
            id: stored.id,
            product_id: stored.product_id,
            quantity: stored.quantity,
            status: stored.status,
            reference: stored.reference,
            actor: stored.actor,
            expires_at: stored.expires_at,
            created_at: stored.created_at,
            resolved_at: stored.resolved_at,
        }
    }
}

/// What a request guarded by a key was: replaying needs the same operation and arguments.
#[derive(Clone, Debug)]
pub struct IdempotentRequest {
    /// The caller's key.
    pub key: IdempotencyKey,
    /// Which operation (`reduceStock`, ...).
    pub operation: &'static str,
    /// The operation's arguments, canonically written.
    pub fingerprint: String,
}

/// A stored outcome: the result, or the business error it ended with.
#[derive(Serialize, Deserialize)]
enum StoredOutcome<T> {
    Done(T),
    Refused(StoredError),
}

#[derive(Serialize, Deserialize)]
struct StoredError {
    code: String,
    message: String,
    available: Option<i64>,
    requested: Option<i64>,
}

impl StoredError {
    /// Errors that are answers to the request itself, and so are replayed. Failures of the
    /// system (timeouts, internal errors) roll back and leave the key unclaimed.
    fn from_error(error: &Error) -> Option<Self> {
        let (available, requested) = match error {
            Error::InsufficientStock {
                available,
                requested,
            } => (Some(*available), Some(*requested)),
            Error::BadUserInput { .. }
            | Error::NotFound
            | Error::StockLimitExceeded
            | Error::ReservationNotActive(_) => (None, None),
            _ => return None,
        };
        Some(Self {
            code: error.code().to_owned(),
            message: error.to_string(),
            available,
            requested,
        })
    }

    fn into_error(self) -> Error {
        match (self.code.as_str(), self.available, self.requested) {
            ("INSUFFICIENT_STOCK", Some(available), Some(requested)) => Error::InsufficientStock {
                available,
                requested,
            },
            ("NOT_FOUND", ..) => Error::NotFound,
            ("STOCK_LIMIT_EXCEEDED", ..) => Error::StockLimitExceeded,
            ("BAD_USER_INPUT", ..) => Error::bad_input(self.message),
            ("RESERVATION_NOT_ACTIVE", ..) => Error::ReservationNotActive(self.message),
            _ => Error::internal(format!("unreadable stored outcome '{}'", self.code)),
        }
    }
}

/// Runs one write: begins the transaction, claims the key (replaying a stored outcome if the
/// request was seen before), runs `work`, stores its outcome with the key, and commits together
/// with the events `work` returned. Without a key it is just the transaction and the events.
pub(super) async fn run_write<T, F>(
    database: &Database,
    events: &EventBus,
    actor: &Actor,
    idempotency: Option<&IdempotentRequest>,
    work: F,
) -> Result<T>
where
    T: Replayable + Send,
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<(T, Vec<StockEvent>)>>,
{
    let transaction = database.begin_write().await?;
    if let Some(request) = idempotency
        && let Some(outcome) = claim::<T>(&transaction, &actor.subject, request).await?
    {
        // Nothing was written: dropping the transaction rolls it back.
        return outcome;
    }
    match work(&transaction).await {
        Ok((value, changes)) => {
            if let Some(request) = idempotency {
                let outcome: StoredOutcome<T::Stored> = StoredOutcome::Done(value.to_stored());
                record(&transaction, &actor.subject, request, &outcome).await?;
            }
            events.commit(transaction, changes).await?;
            Ok(value)
        }
        Err(error) => {
            if let (Some(request), Some(stored)) = (idempotency, StoredError::from_error(&error)) {
                // Business errors are decided before anything is written, so committing keeps
                // only the key and its outcome.
                let outcome: StoredOutcome<T::Stored> = StoredOutcome::Refused(stored);
                record(&transaction, &actor.subject, request, &outcome).await?;
                transaction.commit().await?;
            }
            Err(error)
        }
    }
}

/// Claims the key; `Some(outcome)` when it was used before for this same request.
async fn claim<T: Replayable>(
    transaction: &DatabaseTransaction,
    scope: &str,
    request: &IdempotentRequest,
) -> Result<Option<Result<T>>> {
    let row = idempotency_key::ActiveModel {
        scope: Set(scope.to_owned()),
        key: Set(request.key.as_str().to_owned()),
        operation: Set(request.operation.to_owned()),
        fingerprint: Set(request.fingerprint.clone()),
        outcome: Set(None),
        created_at: Set(now()),
    };
    let inserted = idempotency_key::Entity::insert(row)
        .on_conflict_do_nothing()
        .exec_without_returning(transaction)
        .await?;
    if matches!(inserted, TryInsertResult::Inserted(rows) if rows > 0) {
        return Ok(None);
    }
    stored_outcome(transaction, scope, request)
        .await?
        .ok_or_else(|| Error::internal("an idempotency key conflicted but cannot be read"))
        .map(Some)
}

/// What a request with this key would get now, without claiming the key (a dry run): the
/// stored outcome when the key was used for this same request, `IDEMPOTENCY_KEY_REUSED` when
/// for another, `None` when it is unused (or claimed by a request still running).
pub(super) async fn peek<T: Replayable>(
    transaction: &DatabaseTransaction,
    scope: &str,
    request: &IdempotentRequest,
) -> Result<Option<Result<T>>> {
    stored_outcome(transaction, scope, request).await
}

/// The outcome stored with the key, if it was committed.
async fn stored_outcome<T: Replayable>(
    transaction: &DatabaseTransaction,
    scope: &str,
    request: &IdempotentRequest,
) -> Result<Option<Result<T>>> {
    let Some(existing) = idempotency_key::Entity::find()
        .filter(Column::Scope.eq(scope))
        .filter(Column::Key.eq(request.key.as_str()))
        .one(transaction)
        .await?
    else {
        return Ok(None);
    };
    if existing.operation != request.operation || existing.fingerprint != request.fingerprint {
        return Err(Error::IdempotencyKeyReused);
    }
    let outcome = existing
        .outcome
        .ok_or_else(|| Error::internal("an idempotency key was committed without an outcome"))?;
    let outcome: StoredOutcome<T::Stored> =
        serde_json::from_str(&outcome).map_err(Error::internal)?;
    Ok(Some(match outcome {
        StoredOutcome::Done(value) => Ok(T::from_stored(value)),
        StoredOutcome::Refused(error) => Err(error.into_error()),
    }))
}

async fn record<T: Serialize>(
    transaction: &DatabaseTransaction,
    scope: &str,
    request: &IdempotentRequest,
    outcome: &StoredOutcome<T>,
) -> Result<()> {
    let outcome = serde_json::to_string(outcome).map_err(Error::internal)?;
    idempotency_key::Entity::update_many()
        .col_expr(Column::Outcome, outcome.into())
        .filter(Column::Scope.eq(scope))
        .filter(Column::Key.eq(request.key.as_str()))
        .exec(transaction)
        .await?;
    Ok(())
}

/// Forgets keys claimed before `cutoff`; returns how many.
pub async fn prune(database: &Database, cutoff: DateTime<Utc>) -> Result<u64> {
    Ok(idempotency_key::Entity::delete_many()
        .filter(Column::CreatedAt.lt(cutoff))
        .exec(database.connection())
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stock_change_stored_by_the_first_version_still_replays() {
        // As the first version stored it: the entities themselves, every column included.
        let stored = r#"{"Done":{"product":{"id":"019a0000-0000-7000-8000-000000000001",
            "name":"Widget","name_key":"widget","sku":"W-1","sku_key":"w-1","stock":7,
            "reorder_level":2,"version":4,"created_at":"2026-11-22T10:00:00Z",
            "updated_at":"2026-11-22T10:05:00Z","deleted_at":null,"reserved":1},
            "movement":{"id":"019a0000-0000-7000-8000-000000000002",
            "product_id":"019a0000-0000-7000-8000-000000000001","kind":"Reduce","delta":-3,
            "stock_before":10,"stock_after":7,"product_version":4,"reason":"sale",
            "idempotency_key":"order-1","actor":"alice","created_at":"2026-11-22T10:05:00Z"}}}"#;

        let outcome: StoredOutcome<StoredStockChange> = serde_json::from_str(stored).unwrap();
        let StoredOutcome::Done(change) = outcome else {
            panic!("a success was stored");
        };
        let change = StockChange::from_stored(change);

        assert_eq!(change.product.stock, 7);
        assert_eq!(change.product.reserved, 1);
        assert_eq!(change.product.sku_key, "w-1");
        assert_eq!(change.movement.delta, -3);
        assert_eq!(change.movement.idempotency_key.as_deref(), Some("order-1"));
    }

    #[test]
    fn a_reservation_stored_by_the_first_version_still_replays() {
        let stored = r#"{"Done":{"id":"019a0000-0000-7000-8000-000000000003",
            "product_id":"019a0000-0000-7000-8000-000000000001","quantity":2,
            "status":"Active","reference":"cart-9","actor":"bob",
            "expires_at":"2026-11-22T10:15:00Z","created_at":"2026-11-22T10:05:00Z",
            "resolved_at":null}}"#;

        let outcome: StoredOutcome<StoredReservation> = serde_json::from_str(stored).unwrap();
        let StoredOutcome::Done(reservation) = outcome else {
            panic!("a success was stored");
        };
        let reservation = reservation::Model::from_stored(reservation);

        assert_eq!(reservation.status, ReservationStatus::Active);
        assert_eq!(reservation.reference.as_deref(), Some("cart-9"));
    }
}
