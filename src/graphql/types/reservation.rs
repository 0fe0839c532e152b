//! `Reservation`: units held for a checkout.

use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};

use super::{Product, to_int};
use crate::entity::reservation::{self, ReservationStatus as StoredStatus};
use crate::graphql::context::ContextExt;

/// Units held for a checkout.
pub struct Reservation(pub reservation::Model);

/// Units held for a checkout until committed (taken from stock), released, or expired.
#[Object]
impl Reservation {
    /// Its id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The product whose units are held.
    async fn product_id(&self) -> ID {
        ID(self.0.product_id.to_string())
    }

    /// The product as it is now.
    async fn product(&self, ctx: &Context<'_>) -> Result<Product> {
        Ok(Product::from(ctx.load_product(self.0.product_id).await?))
    }

    /// Units held.
    async fn quantity(&self) -> Result<i32> {
        Ok(to_int(self.0.quantity)?)
    }

    /// Where it stands.
    async fn status(&self) -> ReservationStatus {
        self.0.status.into()
    }

    /// The caller's order or cart reference.
    async fn reference(&self) -> Option<&str> {
        self.0.reference.as_deref()
    }

    /// When an active reservation gives its units back by itself.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }

    /// When it was made.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it was committed, released or expired.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
}

/// Where a reservation stands. Only `ACTIVE` ones hold units.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Holding units.
    Active,
    /// Turned into a reduction of stock.
    Committed,
    /// Given back by the caller.
    Released,
    /// Given back because its time ran out.
    Expired,
}

impl From<StoredStatus> for ReservationStatus {
    fn from(status: StoredStatus) -> Self {
        match status {
            StoredStatus::Active => ReservationStatus::Active,
            StoredStatus::Committed => ReservationStatus::Committed,
            StoredStatus::Released => ReservationStatus::Released,
            StoredStatus::Expired => ReservationStatus::Expired,
        }
    }
}
