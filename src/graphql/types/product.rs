//! `Product` and the types around it.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use async_graphql::dataloader::DataLoader;

use super::ProductLedger;
use super::{LocationStock, Lot};
use super::{
    MovementCursor, PageArguments, PageInfo, PageRequest, StockMovementConnection, page_cost,
    to_int,
};
use crate::domain::{ProductName, Sku, StockLevel};
use crate::entity::product;
use crate::error::Error;
use crate::graphql::context::ContextExt;
use crate::graphql::loaders::{
    BucketsOf, MovementPageKey, ProductListing, StockDetail, StockDetailLoader,
};
use crate::service::{self, NewProduct, ProductChanges, ProductFilter};

/// A product in the catalogue, with the products it was listed with (if any) for batched
/// nested fields.
#[derive(Clone)]
pub struct Product(pub product::Model, Option<Arc<ProductListing>>);

impl From<product::Model> for Product {
    fn from(product: product::Model) -> Self {
        Self(product, None)
    }
}

impl Product {
    /// Products returned together: their nested connections load for all of them at once.
    pub fn listed(products: Vec<product::Model>) -> Vec<Product> {
        let listing = Arc::new(ProductListing::new(
            products.iter().map(|product| product.id).collect(),
        ));
        products
            .into_iter()
            .map(|product| Self(product, Some(Arc::clone(&listing))))
            .collect()
    }
}

/// A product in the catalogue, with its stock on hand.
#[Object]
impl Product {
    /// Its id (a time-ordered UUID).
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Its name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Its stock-keeping unit, as given; unique among live products regardless of case.
    async fn sku(&self) -> &str {
        &self.0.sku
    }

    /// Units on hand. Never negative.
    async fn stock(&self) -> Result<i32> {
        Ok(to_int(self.0.stock)?)
    }

    /// Units held by active reservations.
    async fn reserved(&self) -> Result<i32> {
        Ok(to_int(self.0.reserved)?)
    }

    /// Units that reductions and new reservations may take: `stock - reserved - expired`.
    async fn available(&self) -> Result<i32> {
        Ok(to_int(self.0.available())?)
    }

    /// Units on hand in lots past their date: never available, until written off.
    async fn expired(&self) -> Result<i32> {
        Ok(to_int(self.0.expired)?)
    }

    /// Its stock in each location that has (or had) some, in the order stock first arrived.
    async fn stock_by_location(&self, ctx: &Context<'_>) -> Result<Vec<LocationStock>> {
        Ok(LocationStock::of(&load_buckets(ctx, self.0.id).await?))
    }

    /// Its lots in every location, oldest first; empty ones only when asked.
    async fn lots(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Also lots with no units left (false when omitted).")]
        include_empty: Option<bool>,
    ) -> Result<Vec<Lot>> {
        let include_empty = include_empty.unwrap_or(false);
        Ok(load_buckets(ctx, self.0.id)
            .await?
            .into_iter()
            .filter(|bucket| bucket.is_lot() && (include_empty || bucket.stock > 0))
            .map(Lot)
            .collect())
    }

    /// At or below this many available units, the product is `LOW_STOCK`.
    async fn reorder_level(&self) -> Result<i32> {
        Ok(to_int(self.0.reorder_level)?)
    }

    /// `LOW_STOCK` when the available units are at or below the reorder level, else `IN_STOCK`.
    async fn status(&self) -> StockStatus {
        service::StockStatus::of(&self.0).into()
    }

    /// Starts at 1 and grows by 1 on every change; pass it as `expectedVersion` to make an
    /// update or delete fail if someone else changed the product first.
    async fn version(&self) -> i32 {
        self.0.version
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it last changed; every stock change moves it forward.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// When it was soft-deleted; null while it is live.
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }

    /// Its stock ledger, newest first (a Relay connection; the same entries as
    /// `stockMovements(productId:)`). The pages of every product in a response are loaded
    /// together, so a list of products with their last few movements costs a fixed number of
    /// queries.
    #[graphql(complexity = "page_cost(first.or(last), child_complexity)")]
    async fn movements(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size: 20 when omitted, at most 100.")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor (a previous page's `endCursor`).")]
        after: Option<String>,
        #[graphql(desc = "Page backward: this many items, 20 when omitted, at most 100.")]
        last: Option<i32>,
        #[graphql(desc = "Page backward: the items before this cursor (a page's `startCursor`).")]
        before: Option<String>,
    ) -> Result<StockMovementConnection> {
        let page = PageRequest::<MovementCursor>::parse(PageArguments {
            first,
            after: after.as_deref(),
            last,
            before: before.as_deref(),
        })?;
        let mut movements = ctx
            .load_movement_page(
                self.1.as_deref(),
                MovementPageKey {
                    product_id: self.0.id,
                    cursor_version: page.cursor.as_ref().map(|cursor| cursor.0.product_version),
                    direction: page.direction,
                    limit: page.size + 1,
                },
            )
            .await?;
        Ok(StockMovementConnection::from_page(
            &mut movements,
            &page,
            Some(ProductLedger {
                product_id: self.0.id,
                listing: self.1.clone(),
            }),
        ))
    }
}

/// A product's buckets, batched over every product of the response.
async fn load_buckets(
    ctx: &Context<'_>,
    product_id: uuid::Uuid,
) -> Result<Vec<crate::entity::stock_bucket::Model>> {
    let loader = ctx
        .data::<DataLoader<StockDetailLoader>>()
        .map_err(|_| Error::internal("the schema was built without a stock detail loader"))?;
    match loader
        .load_one(BucketsOf::Product(product_id))
        .await
        .map_err(|error| Error::clone(&error))?
    {
        Some(StockDetail::Buckets(buckets)) => Ok(buckets),
        _ => Ok(Vec::new()),
    }
}

/// Whether a product needs reordering.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum StockStatus {
    /// Stock is above the reorder level.
    InStock,
    /// Stock is at or below the reorder level.
    LowStock,
}

impl From<service::StockStatus> for StockStatus {
    fn from(status: service::StockStatus) -> Self {
        match status {
            service::StockStatus::InStock => StockStatus::InStock,
            service::StockStatus::LowStock => StockStatus::LowStock,
        }
    }
}

impl From<StockStatus> for service::StockStatus {
    fn from(status: StockStatus) -> Self {
        match status {
            StockStatus::InStock => service::StockStatus::InStock,
            StockStatus::LowStock => service::StockStatus::LowStock,
        }
    }
}

/// A product's stock at a glance.
#[derive(SimpleObject)]
pub struct ProductStatus {
    /// The product's id, so that a normalized client cache can store the status with it.
    pub id: ID,
    /// Its SKU.
    pub sku: String,
    /// Units on hand.
    pub stock: i32,
    /// Its reorder level.
    pub reorder_level: i32,
    /// `LOW_STOCK` or `IN_STOCK`.
    pub status: StockStatus,
}

impl ProductStatus {
    /// The status of a stored product.
    pub fn of(product: &product::Model) -> crate::error::Result<Self> {
        Ok(Self {
            id: ID(product.id.to_string()),
            sku: product.sku.clone(),
            stock: to_int(product.stock)?,
            reorder_level: to_int(product.reorder_level)?,
            status: service::StockStatus::of(product).into(),
        })
    }
}

/// A new product.
#[derive(InputObject)]
pub struct CreateProductInput {
    /// 1 to 200 characters; surrounding spaces are trimmed.
    pub name: String,
    /// 1 to 64 characters; must not be in use by a live product in any letter case.
    pub sku: String,
    /// Units on hand to start with (recorded as the product's first movement).
    #[graphql(default)]
    pub stock: i32,
    /// At or below this stock, the product is `LOW_STOCK`.
    #[graphql(default)]
    pub reorder_level: i32,
}

impl CreateProductInput {
    /// Validates every field.
    pub fn parse(self) -> crate::error::Result<NewProduct> {
        NewProduct::parse(
            &self.name,
            &self.sku,
            self.stock.into(),
            self.reorder_level.into(),
        )
        .map_err(|error| error.under("input"))
    }
}

/// Changes to a product; omitted or null fields stay as they are. Stock changes only through
/// `addStock` and `reduceStock`.
#[derive(InputObject)]
pub struct UpdateProductInput {
    /// A new name.
    pub name: Option<String>,
    /// A new SKU.
    pub sku: Option<String>,
    /// A new reorder level.
    pub reorder_level: Option<i32>,
}

impl UpdateProductInput {
    /// Validates the fields that are present.
    pub fn parse(self) -> crate::error::Result<ProductChanges> {
        Ok(ProductChanges {
            name: self
                .name
                .as_deref()
                .map(ProductName::parse)
                .transpose()
                .map_err(|error| error.under("input"))?,
            sku: self
                .sku
                .as_deref()
                .map(Sku::parse)
                .transpose()
                .map_err(|error| error.under("input"))?,
            reorder_level: self
                .reorder_level
                .map(|level| StockLevel::parse("reorderLevel", level.into()))
                .transpose()
                .map_err(|error| error.under("input"))?,
        })
    }
}

/// An edge of a product connection.
#[derive(SimpleObject)]
pub struct ProductEdge {
    /// Pass as `after` to continue after this product.
    pub cursor: String,
    /// The product.
    pub node: Product,
}

/// A page of products.
pub struct ProductConnection {
    /// The products on this page with their cursors.
    pub edges: Vec<ProductEdge>,
    /// Where this page stands.
    pub page_info: PageInfo,
    /// The filter, for `totalCount`.
    pub filter: ProductFilter,
}

/// A page of products (a Relay connection).
#[Object]
impl ProductConnection {
    /// The products on this page with their cursors.
    async fn edges(&self) -> &[ProductEdge] {
        &self.edges
    }

    /// The products on this page.
    async fn nodes(&self) -> Vec<&Product> {
        self.edges.iter().map(|edge| &edge.node).collect()
    }

    /// Where this page stands.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// How many products match the filter in all pages (counted only when asked for; a
    /// count scans the whole listing, so an operation may ask for only a few).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        Ok(ctx.services()?.products.count(&self.filter).await?)
    }
}
