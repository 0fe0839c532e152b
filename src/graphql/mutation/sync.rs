//! Warehouse sync: many stock rows in one call.

use async_graphql::{Context, Object, Result};

use crate::graphql::context::ContextExt;
use crate::graphql::types::{SyncResult, SyncStockInput};

/// Syncing stock from warehouses and ERP systems.
#[derive(Default)]
pub struct SyncMutation;

#[Object]
impl SyncMutation {
    /// Applies many rows from one source in one transaction: each sets a bucket's on-hand
    /// (`onHand`) or changes it (`delta`). Rows whose `sourceSequence` is not newer than the
    /// last applied for their product and location are `STALE`. A bad row is reported in its
    /// result, never as an error of the call; under `REJECT_EVERYTHING` (the default) any
    /// failed row means nothing is applied. Products are locked in id order, so overlapping
    /// syncs cannot deadlock. Events (`stockChanged` per applied row, `lowStock`) follow the
    /// commit. Errors of the call: `BAD_USER_INPUT` (source, more rows than allowed, key),
    /// `IDEMPOTENCY_KEY_REUSED`.
    async fn sync_stock(
        &self,
        ctx: &Context<'_>,
        input: SyncStockInput,
    ) -> Result<Option<SyncResult>> {
        let result = ctx
            .services()?
            .sync
            .sync(input.into_request(), ctx.actor()?)
            .await
            .map_err(|error| error.under("input"))?;
        Ok(Some(SyncResult::from_service(result)?))
    }
}
