//! Typed access to what every resolver needs from the GraphQL context.

use async_graphql::Context;

use crate::error::{Error, Result};
use crate::service::{Actor, Services};

/// Accessors for the schema-wide and per-request data, so resolvers never unwrap context data.
pub trait ContextExt {
    /// The services, put into the schema when it was built.
    fn services(&self) -> Result<&Services>;
    /// The caller of this request.
    fn actor(&self) -> Result<&Actor>;
}

impl ContextExt for Context<'_> {
    fn services(&self) -> Result<&Services> {
        self.data::<Services>()
            .map_err(|_| Error::internal("the schema was built without services"))
    }

    fn actor(&self) -> Result<&Actor> {
        self.data::<Actor>()
            .map_err(|_| Error::internal("the request carries no actor"))
    }
}
