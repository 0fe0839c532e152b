//! Stock mutations: the only way stock changes.

use async_graphql::{Context, ID, Object, Result};

use crate::domain::{Quantity, Reason};
use crate::graphql::context::ContextExt;
use crate::graphql::guard::Requires;
use crate::graphql::types::{StockChange, parse_id};
use crate::service::StockDirection;

/// Changing stock.
#[derive(Default)]
pub struct StockMutation;

#[Object]
impl StockMutation {
    /// Adds units to a product's stock and records the movement.
    /// Errors: `BAD_USER_INPUT` (quantity <= 0), `NOT_FOUND`, `STOCK_LIMIT_EXCEEDED`.
    #[graphql(guard = "Requires(\"addStock\")")]
    async fn add_stock(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(desc = "Units to add: at least 1.")] quantity: i32,
        #[graphql(desc = "Why, for the ledger (at most 500 characters).")] reason: Option<String>,
    ) -> Result<StockChange> {
        change_stock(ctx, StockDirection::Add, &id, quantity, reason).await
    }

    /// Takes units from a product's stock and records the movement. Never takes stock below
    /// zero, however many reductions run at once.
    /// Errors: `BAD_USER_INPUT` (quantity <= 0), `NOT_FOUND`, `INSUFFICIENT_STOCK`.
    #[graphql(guard = "Requires(\"reduceStock\")")]
    async fn reduce_stock(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(desc = "Units to take: at least 1.")] quantity: i32,
        #[graphql(desc = "Why, for the ledger (at most 500 characters).")] reason: Option<String>,
    ) -> Result<StockChange> {
        change_stock(ctx, StockDirection::Reduce, &id, quantity, reason).await
    }
}

async fn change_stock(
    ctx: &Context<'_>,
    direction: StockDirection,
    id: &ID,
    quantity: i32,
    reason: Option<String>,
) -> Result<StockChange> {
    let id = parse_id(id)?;
    let quantity = Quantity::parse(quantity.into())?;
    let reason = Reason::parse(reason.as_deref())?;
    let services = ctx.services()?;
    let change = services
        .stock
        .change(id, direction, quantity, reason, ctx.actor()?)
        .await?;
    Ok(StockChange(change))
}
