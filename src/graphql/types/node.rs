//! `Node`: Relay object identification. Every object a client cache stores by id can be fetched
//! again by that id alone, whatever its type.

use async_graphql::{ID, Interface};

use super::{Location, Lot, Product, Reservation, StockMovement};

/// An object with an id that is unique across every type (a UUID, the same the REST facade
/// uses), so that `node(id:)` can fetch it again.
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "The object's id, unique across every type."
))]
pub enum Node {
    /// A product.
    Product(Product),
    /// A stock movement.
    StockMovement(StockMovement),
    /// A reservation.
    Reservation(Reservation),
    /// A location.
    Location(Location),
    /// A lot in one location.
    Lot(Lot),
}
