//! Reading reservations.

use async_graphql::{Context, ID, Object, Result};

use crate::graphql::context::ContextExt;
use crate::graphql::types::{Reservation, parse_id};

/// Reading reservations.
#[derive(Default)]
pub struct ReservationQuery;

#[Object]
impl ReservationQuery {
    /// A reservation by id, in any status; null when there is none.
    async fn reservation(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Reservation>> {
        let id = parse_id("id", &id)?;
        Ok(ctx
            .services()?
            .reservations
            .find(id)
            .await?
            .map(Reservation))
    }
}
