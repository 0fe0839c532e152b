//! Typed access to what every resolver needs from the GraphQL context.

use async_graphql::Context;
use async_graphql::dataloader::DataLoader;
use uuid::Uuid;

use super::loaders::{
    MovementCountLoader, MovementPageKey, MovementPageLoader, ProductListing, ProductLoader,
};
use crate::auth::Caller;
use crate::entity::{product, stock_movement};
use crate::error::{Error, Result};
use crate::service::{Actor, Services};

/// Accessors for the schema-wide and per-request data, so resolvers never unwrap context data.
pub(crate) trait ContextExt {
    /// The services, put into the schema when it was built.
    fn services(&self) -> Result<&Services>;
    /// The caller of this request, authenticated or not.
    fn caller(&self) -> Result<&Caller>;
    /// The authenticated caller of this request (`UNAUTHENTICATED` without one).
    fn actor(&self) -> Result<&Actor>;
    /// A product by id (deleted ones too), batched with the other look-ups of this response.
    async fn load_product(&self, id: Uuid) -> Result<product::Model>;
    /// One product's page of movements: loaded with the products of its `listing` in one
    /// statement, or else batched with the other products of this response by a DataLoader.
    async fn load_movement_page(
        &self,
        listing: Option<&ProductListing>,
        key: MovementPageKey,
    ) -> Result<Vec<stock_movement::Model>>;
    /// How many movements a product has, counted with the products of its `listing` (otherwise
    /// batched through a DataLoader).
    async fn count_product_movements(
        &self,
        listing: Option<&ProductListing>,
        product_id: Uuid,
    ) -> Result<u64>;
}

impl ContextExt for Context<'_> {
    fn services(&self) -> Result<&Services> {
        self.data::<Services>()
            .map_err(|_| Error::internal("the schema was built without services"))
    }

    fn caller(&self) -> Result<&Caller> {
        self.data::<Caller>()
            .map_err(|_| Error::internal("the request carries no caller"))
    }

    fn actor(&self) -> Result<&Actor> {
        self.caller()?.actor()
    }

    async fn load_product(&self, id: Uuid) -> Result<product::Model> {
        let loader = self
            .data::<DataLoader<ProductLoader>>()
            .map_err(|_| Error::internal("the schema was built without a product loader"))?;
        loader
            .load_one(id)
            .await
            .map_err(|error| Error::clone(&error))?
            .ok_or_else(|| Error::internal(format!("product {id} is referenced but missing")))
    }

    async fn load_movement_page(
        &self,
        listing: Option<&ProductListing>,
        key: MovementPageKey,
    ) -> Result<Vec<stock_movement::Model>> {
        if let Some(listing) = listing {
            return listing.movement_page(&self.services()?.stock, key).await;
        }
        let loader = self
            .data::<DataLoader<MovementPageLoader>>()
            .map_err(|_| Error::internal("the schema was built without a movement loader"))?;
        Ok(loader
            .load_one(key)
            .await
            .map_err(|error| Error::clone(&error))?
            .unwrap_or_default())
    }

    async fn count_product_movements(
        &self,
        listing: Option<&ProductListing>,
        product_id: Uuid,
    ) -> Result<u64> {
        if let Some(listing) = listing {
            return listing
                .movement_count(&self.services()?.stock, product_id)
                .await;
        }
        let loader = self
            .data::<DataLoader<MovementCountLoader>>()
            .map_err(|_| Error::internal("the schema was built without a count loader"))?;
        Ok(loader
            .load_one(product_id)
            .await
            .map_err(|error| Error::clone(&error))?
            .unwrap_or(0))
    }
}
