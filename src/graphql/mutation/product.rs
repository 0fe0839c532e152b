//! Product mutations.

use async_graphql::{Context, ID, Object, Result};

use crate::graphql::context::ContextExt;
use crate::graphql::types::{CreateProductInput, Product, UpdateProductInput, parse_id};

/// Changing the catalogue.
#[derive(Default)]
pub struct ProductMutation;

#[Object]
impl ProductMutation {
    /// Creates a product. Its initial stock is recorded as its first movement.
    /// Errors: `BAD_USER_INPUT`, `SKU_CONFLICT`, `STOCK_LIMIT_EXCEEDED`.
    async fn create_product(
        &self,
        ctx: &Context<'_>,
        input: CreateProductInput,
    ) -> Result<Option<Product>> {
        let new = input.parse()?;
        let services = ctx.services()?;
        Ok(Some(Product::from(
            services.products.create(new, ctx.actor()?).await?,
        )))
    }

    /// Changes a product's name, SKU or reorder level.
    /// Errors: `BAD_USER_INPUT`, `NOT_FOUND`, `SKU_CONFLICT`, `VERSION_CONFLICT`.
    async fn update_product(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateProductInput,
        #[graphql(
            desc = "Fail with VERSION_CONFLICT unless this is the product's current version."
        )]
        expected_version: Option<i32>,
    ) -> Result<Option<Product>> {
        let id = parse_id("id", &id)?;
        let changes = input.parse()?;
        let services = ctx.services()?;
        Ok(Some(Product::from(
            services
                .products
                .update(id, changes, expected_version)
                .await
                // The one bad input left here is an input that changes nothing.
                .map_err(|error| error.on_field("input"))?,
        )))
    }

    /// Soft-deletes a product: it reads as null and its SKU is free again; its ledger stays.
    /// Errors: `BAD_USER_INPUT`, `NOT_FOUND`, `VERSION_CONFLICT`.
    async fn delete_product(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(
            desc = "Fail with VERSION_CONFLICT unless this is the product's current version."
        )]
        expected_version: Option<i32>,
    ) -> Result<Option<Product>> {
        let id = parse_id("id", &id)?;
        Ok(Some(Product::from(
            ctx.services()?
                .products
                .delete(id, expected_version)
                .await?,
        )))
    }

    /// Brings back a soft-deleted product (a live product is returned unchanged).
    /// Errors: `BAD_USER_INPUT`, `NOT_FOUND`, `SKU_CONFLICT` when its SKU was taken meanwhile.
    async fn restore_product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Product>> {
        let id = parse_id("id", &id)?;
        Ok(Some(Product::from(
            ctx.services()?.products.restore(id).await?,
        )))
    }
}
