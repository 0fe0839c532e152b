//! Warehouse sync: the input of `syncStock` and its per-row result.

use async_graphql::{Enum, ID, InputObject, Result, SimpleObject};

use super::location::LotInput;
use crate::graphql::types::to_int;
use crate::service::{
    SyncErrorPolicy as ServicePolicy, SyncLot, SyncRequest, SyncResult as ServiceResult, SyncRow,
    SyncRowResult as ServiceRowResult, SyncRowStatus as ServiceRowStatus,
};

/// What happens to the good rows when some fail.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SyncErrorPolicy {
    /// Any failed row: nothing is applied (the default).
    RejectEverything,
    /// Good rows are applied, failed ones reported.
    RejectFailedRows,
}

impl From<SyncErrorPolicy> for ServicePolicy {
    fn from(policy: SyncErrorPolicy) -> Self {
        match policy {
            SyncErrorPolicy::RejectEverything => ServicePolicy::RejectEverything,
            SyncErrorPolicy::RejectFailedRows => ServicePolicy::RejectFailedRows,
        }
    }
}

/// One row of a sync: a count (`onHand`) or a change (`delta`) of one bucket, the stock of one
/// lot (or the lot-less stock) of one location.
#[derive(InputObject)]
pub struct SyncRowInput {
    /// The product's SKU, in any case.
    pub sku: String,
    /// The location's code, in any case.
    #[graphql(default_with = "Some(\"MAIN\".to_owned())")]
    pub location_code: Option<String>,
    /// Set the bucket's on-hand to this count (0 or more); the difference is recorded as an
    /// `ADJUSTMENT`. Give exactly one of `onHand` and `delta`.
    pub on_hand: Option<i32>,
    /// Change the bucket's on-hand by this (an `ADD` or `REDUCE`); a reduction takes only
    /// available units of that bucket.
    pub delta: Option<i32>,
    /// The lot; the location's lot-less stock when omitted.
    pub lot: Option<LotInput>,
    /// The source's sequence for this row: a row whose sequence is not greater than the last
    /// applied for its product and location from this source is `STALE`. Rows without one are
    /// never stale.
    pub source_sequence: Option<i32>,
    /// Why, for the ledger (the movement's reason is `source: reason`).
    pub reason: Option<String>,
}

/// A sync call: many rows from one source in one transaction.
#[derive(InputObject)]
pub struct SyncStockInput {
    /// Who sends the rows (`WH-2`, `erp`): 1 to 64 characters. Sequences are kept per source.
    pub source: String,
    /// The rows, applied in this order (at most the server's `--max-sync-rows`).
    pub rows: Vec<SyncRowInput>,
    /// What happens to the good rows when some fail.
    #[graphql(default_with = "SyncErrorPolicy::RejectEverything")]
    pub error_policy: SyncErrorPolicy,
    /// Evaluate everything, then roll back: the result is what the real call would return on
    /// the same state; nothing is written and no event is sent.
    #[graphql(default = false)]
    pub dry_run: bool,
    /// Makes a retried call safe: the same key with the same input returns the original result
    /// and changes nothing again.
    pub idempotency_key: Option<String>,
}

impl SyncStockInput {
    /// The call as the service takes it (rows are checked there, one by one).
    pub fn into_request(self) -> SyncRequest {
        SyncRequest {
            source: self.source,
            rows: self
                .rows
                .into_iter()
                .map(|row| SyncRow {
                    sku: row.sku,
                    location_code: row.location_code,
                    on_hand: row.on_hand.map(i64::from),
                    delta: row.delta.map(i64::from),
                    lot: row.lot.map(|lot| SyncLot {
                        code: lot.code,
                        expires_on: lot.expires_on.map(|date| date.0),
                    }),
                    source_sequence: row.source_sequence.map(i64::from),
                    reason: row.reason,
                })
                .collect(),
            error_policy: self.error_policy.into(),
            dry_run: self.dry_run,
            idempotency_key: self.idempotency_key,
        }
    }
}

/// What became of a sync row.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SyncRowStatus {
    /// The row changed the bucket (one movement).
    Applied,
    /// The bucket already held what the row asked for.
    Unchanged,
    /// The row's sequence is not newer than the last one applied: nothing changed.
    Stale,
    /// The row was refused: see `code` and `message`.
    Failed,
}

impl From<ServiceRowStatus> for SyncRowStatus {
    fn from(status: ServiceRowStatus) -> Self {
        match status {
            ServiceRowStatus::Applied => SyncRowStatus::Applied,
            ServiceRowStatus::Unchanged => SyncRowStatus::Unchanged,
            ServiceRowStatus::Stale => SyncRowStatus::Stale,
            ServiceRowStatus::Failed => SyncRowStatus::Failed,
        }
    }
}

/// One row's result.
#[derive(SimpleObject)]
pub struct SyncRowResult {
    /// The row result's id: its call's id and its index (so client caches keep each call's
    /// rows apart).
    pub id: ID,
    /// The row's position in the input, from 0.
    pub index: i32,
    /// The SKU as sent.
    pub sku: String,
    /// The location code as sent.
    pub location_code: String,
    /// What became of the row.
    pub status: SyncRowStatus,
    /// A failed row's error code (`BAD_USER_INPUT`, `NOT_FOUND`, `INSUFFICIENT_STOCK`,
    /// `STOCK_LIMIT_EXCEEDED`).
    pub code: Option<String>,
    /// Why the row failed or was stale.
    pub message: Option<String>,
    /// The bucket's on-hand before the row (when its product and location are known).
    pub stock_before: Option<i32>,
    /// The bucket's on-hand after the row.
    pub stock_after: Option<i32>,
    /// Whether the row took the product from `IN_STOCK` to `LOW_STOCK`.
    pub crossed_threshold: bool,
}

/// A sync call's result. Under `REJECT_EVERYTHING` with a failed row, `committed` is false
/// and the other rows' statuses say what they would have done.
#[derive(SimpleObject)]
pub struct SyncResult {
    /// This result's id: each call and each dry run gets its own; a replay with the
    /// idempotency key answers the original's.
    pub id: ID,
    /// Whether the changes were committed (on a dry run: whether they would be).
    pub committed: bool,
    /// Whether this was a dry run: then nothing was written.
    pub dry_run: bool,
    /// Rows that changed stock.
    pub applied: i32,
    /// Rows that found their bucket as asked.
    pub unchanged: i32,
    /// Rows older than what was applied already.
    pub stale: i32,
    /// Rows refused.
    pub failed: i32,
    /// Every row's result, in input order.
    pub rows: Vec<SyncRowResult>,
}

impl SyncResult {
    /// The service's result, for GraphQL.
    pub fn from_service(result: ServiceResult) -> Result<Self> {
        let id = result.id;
        Ok(Self {
            id: ID(id.to_string()),
            committed: result.committed,
            dry_run: result.dry_run,
            applied: count(result.applied)?,
            unchanged: count(result.unchanged)?,
            stale: count(result.stale)?,
            failed: count(result.failed)?,
            rows: result
                .rows
                .into_iter()
                .map(|row| row_result(id, row))
                .collect::<Result<_>>()?,
        })
    }
}

fn row_result(call: uuid::Uuid, row: ServiceRowResult) -> Result<SyncRowResult> {
    Ok(SyncRowResult {
        id: ID(format!("{call}.{}", row.index)),
        index: count(row.index)?,
        sku: row.sku,
        location_code: row.location_code,
        status: row.status.into(),
        code: row.code,
        message: row.message,
        stock_before: row.stock_before.map(to_int).transpose()?,
        stock_after: row.stock_after.map(to_int).transpose()?,
        crossed_threshold: row.crossed_threshold,
    })
}

fn count(value: usize) -> Result<i32> {
    Ok(to_int(i64::try_from(value).unwrap_or(i64::MAX))?)
}
