//! Reservation mutations: hold stock for a checkout, then commit or release it.

use async_graphql::{Context, ID, Object, Result};

use crate::domain::{IdempotencyKey, Quantity, Reference, ReservationTtl};
use crate::graphql::context::ContextExt;
use crate::graphql::types::{Reservation, parse_id};
use crate::service::{ReserveRequest, Resolution};

/// Holding stock for checkouts.
#[derive(Default)]
pub struct ReservationMutation;

#[Object]
impl ReservationMutation {
    /// Holds units of a product for a checkout. Only available units (not reserved, not
    /// expired) can be held, chosen as `reduceStock` would take them; held units cannot be
    /// taken by `reduceStock` or other reservations, and a commit takes exactly them. When a
    /// held lot expires, the reservation ends as `EXPIRED` (expired units are never sold).
    /// Errors: `BAD_USER_INPUT`, `NOT_FOUND`, `INSUFFICIENT_STOCK`, `IDEMPOTENCY_KEY_REUSED`.
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn reserve_stock(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        #[graphql(desc = "Units to hold: at least 1.")] quantity: i32,
        #[graphql(
            desc = "How long to hold them: 1 second to 7 days; 900 (15 minutes) when omitted."
        )]
        ttl_seconds: Option<i32>,
        #[graphql(desc = "Your order or cart reference (at most 200 characters).")]
        reference: Option<String>,
        #[graphql(desc = "Makes retries safe (see `reduceStock`).")] idempotency_key: Option<
            String,
        >,
        #[graphql(
            desc = "Hold units of this location only; of every location by priority when omitted."
        )]
        location_id: Option<ID>,
    ) -> Result<Option<Reservation>> {
        let request = ReserveRequest {
            location_id: super::stock::parse_optional_id("locationId", location_id.as_ref())?,
            product_id: parse_id("productId", &product_id)?,
            quantity: Quantity::parse(quantity.into())?,
            ttl: ReservationTtl::parse(ttl_seconds.map(i64::from))?,
            reference: Reference::parse(reference.as_deref())?,
            idempotency_key: IdempotencyKey::parse(idempotency_key.as_deref())?,
        };
        let services = ctx.services()?;
        let reservation = services.reservations.reserve(request, ctx.actor()?).await?;
        Ok(Some(Reservation(reservation)))
    }

    /// Takes the held units from stock (recording a `RESERVATION_COMMIT` movement). A
    /// reservation resolves once: committing one that is not `ACTIVE` is `RESERVATION_NOT_ACTIVE`.
    async fn commit_reservation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(desc = "Makes retries safe (see `reduceStock`).")] idempotency_key: Option<
            String,
        >,
    ) -> Result<Option<Reservation>> {
        resolve(ctx, &id, Resolution::Commit, idempotency_key).await
    }

    /// Gives the held units back. Releasing a reservation that is not `ACTIVE` is
    /// `RESERVATION_NOT_ACTIVE`.
    async fn release_reservation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(desc = "Makes retries safe (see `reduceStock`).")] idempotency_key: Option<
            String,
        >,
    ) -> Result<Option<Reservation>> {
        resolve(ctx, &id, Resolution::Release, idempotency_key).await
    }
}

async fn resolve(
    ctx: &Context<'_>,
    id: &ID,
    resolution: Resolution,
    idempotency_key: Option<String>,
) -> Result<Option<Reservation>> {
    let id = parse_id("id", id)?;
    let key = IdempotencyKey::parse(idempotency_key.as_deref())?;
    let services = ctx.services()?;
    let reservation = services
        .reservations
        .resolve(id, resolution, key, ctx.actor()?)
        .await
        // The one bad input left here is an id that names no reservation.
        .map_err(|error| error.on_field("id"))?;
    Ok(Some(Reservation(reservation)))
}
