//! Idempotency keys: a retried request returns its original result and changes nothing again.
//!
//! A key is claimed by inserting it in the same transaction as the change it guards, and the
//! change's outcome (success, or a business error) is stored with it before commit. A retry
//! finds the key and replays the outcome; on PostgreSQL a concurrent duplicate waits on the
//! key's primary key until the first transaction ends, then replays what it committed (or, if
//! it rolled back, runs itself). Keys are scoped to the caller and pruned after a retention
//! period.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, TryInsertResult,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::now;
use crate::database::Database;
use crate::domain::{Actor, IdempotencyKey};
use crate::entity::idempotency_key::{self, Column};
use crate::error::{Error, Result};
use crate::events::{EventBus, StockEvent};

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
            Error::BadUserInput(_)
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
            ("BAD_USER_INPUT", ..) => Error::BadUserInput(self.message),
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
    T: Serialize + DeserializeOwned + Send,
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
                let outcome: StoredOutcome<&T> = StoredOutcome::Done(&value);
                record(&transaction, &actor.subject, request, &outcome).await?;
            }
            events.commit(transaction, changes).await?;
            Ok(value)
        }
        Err(error) => {
            if let (Some(request), Some(stored)) = (idempotency, StoredError::from_error(&error)) {
                // Business errors are decided before anything is written, so committing keeps
                // only the key and its outcome.
                let outcome: StoredOutcome<&T> = StoredOutcome::Refused(stored);
                record(&transaction, &actor.subject, request, &outcome).await?;
                transaction.commit().await?;
            }
            Err(error)
        }
    }
}

/// Claims the key; `Some(outcome)` when it was used before for this same request.
async fn claim<T: DeserializeOwned>(
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
    let existing = idempotency_key::Entity::find()
        .filter(Column::Scope.eq(scope))
        .filter(Column::Key.eq(request.key.as_str()))
        .one(transaction)
        .await?
        .ok_or_else(|| Error::internal("an idempotency key conflicted but cannot be read"))?;
    if existing.operation != request.operation || existing.fingerprint != request.fingerprint {
        return Err(Error::IdempotencyKeyReused);
    }
    let outcome = existing
        .outcome
        .ok_or_else(|| Error::internal("an idempotency key was committed without an outcome"))?;
    let outcome: StoredOutcome<T> = serde_json::from_str(&outcome).map_err(Error::internal)?;
    Ok(Some(match outcome {
        StoredOutcome::Done(value) => Ok(value),
        StoredOutcome::Refused(error) => Err(error.into_error()),
    }))
}

async fn record<T: Serialize>(
    transaction: &DatabaseTransaction,
    scope: &str,
    request: &IdempotentRequest,
    outcome: &StoredOutcome<&T>,
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
