//! Typed access to what every resolver needs from the GraphQL context.

use async_graphql::Context;
use async_graphql::dataloader::DataLoader;
use uuid::Uuid;

use super::loaders::ProductLoader;
use crate::auth::Caller;
use crate::entity::product;
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
            .map_err(|error| Error::internal(error.to_string()))?
            .ok_or_else(|| Error::internal(format!("product {id} is referenced but missing")))
    }
}
