//! Stock mutations: the only way stock changes.

use async_graphql::{Context, ID, Object, Result};

use uuid::Uuid;

use crate::domain::{IdempotencyKey, LotCode, Quantity, Reason};
use crate::error::Error;
use crate::graphql::context::ContextExt;
use crate::graphql::types::{LotInput, StockChange, parse_id};
use crate::service::{StockChangeRequest, StockDirection, TransferRequest, WriteOffRequest};

/// Changing stock.
#[derive(Default)]
pub struct StockMutation;

#[Object]
impl StockMutation {
    /// Adds units to a product's stock in one location and lot, and records the movement.
    /// Errors: `BAD_USER_INPUT` (quantity <= 0, unknown or archived location, a lot code that
    /// has another date), `NOT_FOUND`, `STOCK_LIMIT_EXCEEDED`.
    #[allow(clippy::too_many_arguments)]
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
        #[graphql(desc = "The location the units arrive in: MAIN when omitted.")]
        location_id: Option<ID>,
        #[graphql(desc = "The lot they belong to (created on first use); none when omitted.")]
        lot: Option<LotInput>,
    ) -> Result<Option<StockChange>> {
        let request = StockChangeRequest {
            product_id: parse_id("id", &id)?,
            direction: StockDirection::Add,
            quantity: Quantity::parse(quantity.into())?,
            reason: Reason::parse(reason.as_deref())?,
            idempotency_key: IdempotencyKey::parse(idempotency_key.as_deref())?,
            location_id: parse_optional_id("locationId", location_id.as_ref())?,
            lot: lot.map(LotInput::parse).transpose()?,
        };
        change_stock(ctx, request).await
    }

    /// Takes available units and records the movement: from one location, or from every
    /// location in priority order; within a location first-expiring lots first; never expired
    /// or reserved units. Never takes stock below zero, however many reductions run at once.
    /// Errors: `BAD_USER_INPUT` (quantity <= 0, unknown or archived location), `NOT_FOUND`,
    /// `INSUFFICIENT_STOCK`.
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
        #[graphql(
            desc = "Take only from this location; from every location by priority when omitted."
        )]
        location_id: Option<ID>,
    ) -> Result<Option<StockChange>> {
        let request = StockChangeRequest {
            product_id: parse_id("id", &id)?,
            direction: StockDirection::Reduce,
            quantity: Quantity::parse(quantity.into())?,
            reason: Reason::parse(reason.as_deref())?,
            idempotency_key: IdempotencyKey::parse(idempotency_key.as_deref())?,
            location_id: parse_optional_id("locationId", location_id.as_ref())?,
            lot: None,
        };
        change_stock(ctx, request).await
    }

    /// Moves units of a product from one location to another, atomically (movement kind
    /// `TRANSFER`; the product's stock is unchanged). Takes available units: of the named lot,
    /// or first-expiring lots first; lots keep their code and date where they arrive.
    /// Errors: `BAD_USER_INPUT` (quantity <= 0, the same location twice, unknown or archived
    /// location), `NOT_FOUND`, `INSUFFICIENT_STOCK`.
    #[allow(clippy::too_many_arguments)]
    async fn transfer_stock(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        from_location_id: ID,
        to_location_id: ID,
        #[graphql(desc = "Units to move: at least 1.")] quantity: i32,
        #[graphql(desc = "Move only units of this lot.")] lot_code: Option<String>,
        #[graphql(desc = "Why, for the ledger (at most 500 characters).")] reason: Option<String>,
        #[graphql(desc = "Makes retries safe (see `reduceStock`).")] idempotency_key: Option<
            String,
        >,
    ) -> Result<Option<StockChange>> {
        let request = TransferRequest {
            product_id: parse_id("productId", &product_id)?,
            from_location_id: parse_id("fromLocationId", &from_location_id)?,
            to_location_id: parse_id("toLocationId", &to_location_id)?,
            quantity: Quantity::parse(quantity.into())?,
            lot_code: parse_lot_code(lot_code.as_deref())?,
            reason: Reason::parse(reason.as_deref())?,
            idempotency_key: IdempotencyKey::parse(idempotency_key.as_deref())?,
        };
        let change = ctx
            .services()?
            .stock
            .transfer(request, ctx.actor()?)
            .await?;
        Ok(Some(StockChange(change)))
    }

    /// Removes units from one lot (or the lot-less stock) of a location without a sale:
    /// expired or damaged goods (movement kind `WRITE_OFF`). Expired units can be written off;
    /// units held by reservations cannot.
    /// Errors: `BAD_USER_INPUT` (quantity <= 0, no reason, unknown location or lot),
    /// `NOT_FOUND`, `INSUFFICIENT_STOCK` (more than the lot holds unreserved).
    #[allow(clippy::too_many_arguments)]
    async fn write_off_stock(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        location_id: ID,
        #[graphql(desc = "The lot; the location's lot-less stock when omitted.")] lot_code: Option<
            String,
        >,
        #[graphql(desc = "Units to remove: at least 1.")] quantity: i32,
        #[graphql(desc = "Why (required, at most 500 characters).")] reason: String,
        #[graphql(desc = "Makes retries safe (see `reduceStock`).")] idempotency_key: Option<
            String,
        >,
    ) -> Result<Option<StockChange>> {
        let request = WriteOffRequest {
            product_id: parse_id("productId", &product_id)?,
            location_id: parse_id("locationId", &location_id)?,
            lot_code: parse_lot_code(lot_code.as_deref())?,
            quantity: Quantity::parse(quantity.into())?,
            reason: Reason::parse(Some(&reason))?
                .ok_or_else(|| Error::bad_field("reason", "a write-off needs a reason"))?,
            idempotency_key: IdempotencyKey::parse(idempotency_key.as_deref())?,
        };
        let change = ctx
            .services()?
            .stock
            .write_off(request, ctx.actor()?)
            .await?;
        Ok(Some(StockChange(change)))
    }
}

/// An optional id argument, parsed.
pub fn parse_optional_id(argument: &str, id: Option<&ID>) -> crate::error::Result<Option<Uuid>> {
    id.map(|id| parse_id(argument, id)).transpose()
}

fn parse_lot_code(raw: Option<&str>) -> crate::error::Result<Option<LotCode>> {
    raw.map(|code| {
        LotCode::parse(code).map_err(|error| match error {
            Error::BadUserInput { message, .. } => Error::bad_field("lotCode", message),
            other => other,
        })
    })
    .transpose()
}

async fn change_stock(
    ctx: &Context<'_>,
    request: StockChangeRequest,
) -> Result<Option<StockChange>> {
    let services = ctx.services()?;
    let change = services.stock.change(request, ctx.actor()?).await?;
    Ok(Some(StockChange(change)))
}
