//! The GraphQL object, input and enum types, each wrapping a service value.

mod event;
mod location;
mod movement;
mod node;
mod pagination;
mod product;
mod reservation;
mod stock_change;
mod sync;
mod webhook;

pub use event::LowStockEvent;
pub use location::{
    CreateLocationInput, Date, Location, LocationStock, Lot, LotInput, StockAllocation,
    UpdateLocationInput,
};
pub use movement::{
    MovementKind, ProductLedger, StockMovement, StockMovementConnection, StockMovementEdge,
};
pub use node::Node;
pub use pagination::{
    Cursor, MovementCursor, PageArguments, PageInfo, PageRequest, ProductCursor, finish_page,
    page_cost,
};
pub use product::{
    CreateProductInput, Product, ProductConnection, ProductEdge, ProductStatus, StockStatus,
    UpdateProductInput,
};
pub use reservation::{Reservation, ReservationStatus};
pub use stock_change::StockChange;
pub use sync::{
    SyncErrorPolicy, SyncResult, SyncRowInput, SyncRowResult, SyncRowStatus, SyncStockInput,
};

pub use webhook::{
    CreateWebhookInput, UpdateWebhookInput, Webhook, WebhookDelivery, WebhookDeliveryConnection,
    WebhookDeliveryEdge, WebhookDeliveryStatus, WebhookWithSecret,
};

use async_graphql::ID;
use uuid::Uuid;

use crate::error::{Error, Result};

/// Parses the GraphQL `ID` given as `argument` as the UUID it must be.
pub fn parse_id(argument: &str, id: &ID) -> Result<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| {
        Error::bad_field(
            argument,
            format!("'{}' is not a valid id (expected a UUID)", id.as_str()),
        )
    })
}

/// Converts a stored count to GraphQL `Int`. Stored stock is capped at `Int`'s maximum, so a
/// failure here is a broken invariant, not bad input.
pub(crate) fn to_int(value: i64) -> Result<i32> {
    i32::try_from(value).map_err(|_| Error::internal(format!("{value} does not fit a GraphQL Int")))
}
