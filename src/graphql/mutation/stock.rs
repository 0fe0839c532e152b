//! Stock mutations: the only way stock changes.

use async_graphql::{Context, ID, Object, Result};

use crate::domain::{IdempotencyKey, Quantity, Reason};
use crate::graphql::context::ContextExt;
use crate::graphql::types::{StockChange, parse_id};
use crate::service::{StockChangeRequest, StockDirection};

/// Changing stock.
#[derive(Default)]
pub struct StockMutation;

#[Object]
impl StockMutation {
    /// Adds units to a product's stock and records the movement.
    /// Errors: `BAD_USER_INPUT` (quantity <= 0), `NOT_FOUND`, `STOCK_LIMIT_EXCEEDED`.
    async fn add_stock(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(desc = "Units to add: at least 1.")] quantity: i32,
        #[graphql(desc = "Why, for the ledger (at most 500 characters).")] reason: Option<String>,
        #[graphql(
            desc = "Makes retries safe: the same key with the same arguments returns the original result and changes nothing again; with other arguments it is IDEMPOTENCY_KEY_REUSED."
        )]
        idempotency_key: Option<String>,
    ) -> Result<Option<StockChange>> {
        change_stock(
            ctx,
            StockDirection::Add,
            &id,
            quantity,
            reason,
            idempotency_key,
        )
        .await
    }

    /// Takes units from a product's stock and records the movement. Never takes stock below
    /// zero, however many reductions run at once.
    /// Errors: `BAD_USER_INPUT` (quantity <= 0), `NOT_FOUND`, `INSUFFICIENT_STOCK`.
    async fn reduce_stock(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(desc = "Units to take: at least 1.")] quantity: i32,
        #[graphql(desc = "Why, for the ledger (at most 500 characters).")] reason: Option<String>,
        #[graphql(
            desc = "Makes retries safe: the same key with the same arguments returns the original result and changes nothing again; with other arguments it is IDEMPOTENCY_KEY_REUSED."
        )]
        idempotency_key: Option<String>,
    ) -> Result<Option<StockChange>> {
        change_stock(
            ctx,
            StockDirection::Reduce,
            &id,
            quantity,
            reason,
            idempotency_key,
        )
        .await
    }
}

async fn change_stock(
    ctx: &Context<'_>,
    direction: StockDirection,
    id: &ID,
    quantity: i32,
    reason: Option<String>,
    idempotency_key: Option<String>,
) -> Result<Option<StockChange>> {
    let request = StockChangeRequest {
        product_id: parse_id("id", id)?,
        direction,
        quantity: Quantity::parse(quantity.into())?,
        reason: Reason::parse(reason.as_deref())?,
        idempotency_key: IdempotencyKey::parse(idempotency_key.as_deref())?,
    };
    let services = ctx.services()?;
    let change = services.stock.change(request, ctx.actor()?).await?;
    Ok(Some(StockChange(change)))
}
