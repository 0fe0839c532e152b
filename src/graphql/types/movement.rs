//! `StockMovement`: an entry of the stock ledger.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use async_graphql::dataloader::DataLoader;

use super::{
    Cursor, MovementCursor, PageInfo, PageRequest, Product, StockAllocation, finish_page, to_int,
};
use crate::entity::{product, stock_movement};
use crate::error::Error;
use crate::graphql::context::ContextExt;
use crate::graphql::loaders::{BucketsOf, ProductListing, StockDetail, StockDetailLoader};
use crate::service::MovementFilter;

/// An entry of the append-only stock ledger, with its product when that is already at hand.
pub struct StockMovement {
    movement: stock_movement::Model,
    product: Option<product::Model>,
}

impl StockMovement {
    /// A movement whose product is loaded when asked for.
    pub fn new(movement: stock_movement::Model) -> Self {
        Self {
            movement,
            product: None,
        }
    }

    /// A movement together with its product as of the change (events, stock changes).
    pub fn with_product(movement: stock_movement::Model, product: product::Model) -> Self {
        Self {
            movement,
            product: Some(product),
        }
    }
}

/// One stock change, as the ledger recorded it. A product's stock is always the sum of its
/// movements' `delta`s.
#[Object]
impl StockMovement {
    /// Its id (a time-ordered UUID).
    pub(crate) async fn id(&self) -> ID {
        ID(self.movement.id.to_string())
    }

    /// The product whose stock moved.
    async fn product_id(&self) -> ID {
        ID(self.movement.product_id.to_string())
    }

    /// The product whose stock moved: as the change left it in a stock change's result or an
    /// event, else as it is now (also when it has been deleted since).
    async fn product(&self, ctx: &Context<'_>) -> Result<Product> {
        if let Some(product) = &self.product {
            return Ok(Product::from(product.clone()));
        }
        Ok(Product::from(
            ctx.load_product(self.movement.product_id).await?,
        ))
    }

    /// What caused it.
    async fn kind(&self) -> MovementKind {
        self.movement.kind.into()
    }

    /// Units moved (always positive; see `kind` or `delta` for the direction).
    async fn quantity(&self) -> Result<i32> {
        Ok(to_int(self.movement.delta.abs())?)
    }

    /// The signed change: positive for additions, negative for reductions.
    async fn delta(&self) -> Result<i32> {
        Ok(to_int(self.movement.delta)?)
    }

    /// Stock just before.
    async fn stock_before(&self) -> Result<i32> {
        Ok(to_int(self.movement.stock_before)?)
    }

    /// Stock just after.
    async fn stock_after(&self) -> Result<i32> {
        Ok(to_int(self.movement.stock_after)?)
    }

    /// Why, as the caller said.
    async fn reason(&self) -> Option<&str> {
        self.movement.reason.as_deref()
    }

    /// The idempotency key the change was made with, if any.
    async fn idempotency_key(&self) -> Option<&str> {
        self.movement.idempotency_key.as_deref()
    }

    /// Who made the change.
    async fn actor(&self) -> &str {
        &self.movement.actor
    }

    /// When it was committed.
    async fn created_at(&self) -> DateTime<Utc> {
        self.movement.created_at
    }

    /// What it did to each bucket (location and lot) it touched; the quantities add up to the
    /// movement's signed quantity (a transfer's to 0).
    async fn allocations(&self, ctx: &Context<'_>) -> Result<Vec<StockAllocation>> {
        let loader = ctx
            .data::<DataLoader<StockDetailLoader>>()
            .map_err(|_| Error::internal("the schema was built without a stock detail loader"))?;
        match loader
            .load_one(BucketsOf::Movement(self.movement.id))
            .await
            .map_err(|error| Error::clone(&error))?
        {
            Some(StockDetail::Allocations(allocations)) => {
                Ok(allocations.into_iter().map(StockAllocation).collect())
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// What caused a stock movement.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum MovementKind {
    /// The stock a product was created with.
    Initial,
    /// Units added with `addStock`.
    Add,
    /// Units taken with `reduceStock`.
    Reduce,
    /// Units taken by committing a reservation.
    ReservationCommit,
    /// Units moved between locations (the product's stock is unchanged).
    Transfer,
    /// Units written off (expired or damaged).
    WriteOff,
    /// On-hand set by a warehouse count (`syncStock` with `onHand`, a CSV import).
    Adjustment,
}

impl From<stock_movement::MovementKind> for MovementKind {
    fn from(kind: stock_movement::MovementKind) -> Self {
        match kind {
            stock_movement::MovementKind::Initial => MovementKind::Initial,
            stock_movement::MovementKind::Add => MovementKind::Add,
            stock_movement::MovementKind::Reduce => MovementKind::Reduce,
            stock_movement::MovementKind::ReservationCommit => MovementKind::ReservationCommit,
            stock_movement::MovementKind::Transfer => MovementKind::Transfer,
            stock_movement::MovementKind::WriteOff => MovementKind::WriteOff,
            stock_movement::MovementKind::Adjustment => MovementKind::Adjustment,
        }
    }
}

/// An edge of a movement connection.
#[derive(SimpleObject)]
pub struct StockMovementEdge {
    /// Pass as `after` to continue after this movement.
    pub cursor: String,
    /// The movement.
    pub node: StockMovement,
}

/// A page of movements.
pub struct StockMovementConnection {
    /// The movements on this page with their cursors.
    pub edges: Vec<StockMovementEdge>,
    /// Where this page stands.
    pub page_info: PageInfo,
    /// The product the listing is limited to, for `totalCount`.
    pub product: Option<ProductLedger>,
    /// The location or lot the listing is limited to, for `totalCount`.
    pub filter: Option<MovementFilter>,
}

/// The product a movement listing is limited to, with the products it was listed with.
pub struct ProductLedger {
    /// The product.
    pub product_id: uuid::Uuid,
    /// The products listed with it, whose counts load together.
    pub listing: Option<Arc<ProductListing>>,
}

impl StockMovementConnection {
    /// The connection for `movements`, fetched one past the page (`size + 1`) nearest the
    /// cursor first; `product_id` when the listing is one product's.
    pub fn from_page(
        movements: &mut Vec<stock_movement::Model>,
        page: &PageRequest<MovementCursor>,
        product: Option<ProductLedger>,
    ) -> Self {
        let page_info = finish_page(movements, page, |movement| MovementCursor(movement.into()));
        Self {
            edges: movements
                .drain(..)
                .map(|movement| StockMovementEdge {
                    cursor: MovementCursor((&movement).into()).encode(),
                    node: StockMovement::new(movement),
                })
                .collect(),
            page_info,
            product,
            filter: None,
        }
    }

    /// The same page, counted as a listing limited by `filter`.
    pub fn limited_to(mut self, filter: MovementFilter) -> Self {
        self.filter = Some(filter);
        self
    }
}

/// A page of stock movements, newest first (a Relay connection).
#[Object]
impl StockMovementConnection {
    /// The movements on this page with their cursors.
    async fn edges(&self) -> &[StockMovementEdge] {
        &self.edges
    }

    /// The movements on this page.
    async fn nodes(&self) -> Vec<&StockMovement> {
        self.edges.iter().map(|edge| &edge.node).collect()
    }

    /// Where this page stands.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// How many movements the listing holds in all pages (counted only when asked for; a
    /// count scans the whole listing, so an operation may ask for only a few).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        if let Some(filter) = &self.filter {
            return Ok(ctx.services()?.stock.count_matching(filter).await?);
        }
        Ok(match &self.product {
            Some(ledger) => {
                ctx.count_product_movements(ledger.listing.as_deref(), ledger.product_id)
                    .await?
            }
            None => ctx.services()?.stock.count_movements().await?,
        })
    }
}
