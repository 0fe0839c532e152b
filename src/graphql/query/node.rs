//! Relay object identification: any object by its id, whatever its type.

use std::collections::HashMap;

use async_graphql::{Context, ID, Object, Result};
use uuid::Uuid;

use crate::entity::{location, reservation, stock_bucket, stock_movement};
use crate::error::Error;
use crate::graphql::context::ContextExt;
use crate::graphql::types::{Location, Lot, Node, Product, Reservation, StockMovement, parse_id};

/// Most ids one `nodes` call may ask for.
const MAX_NODES: usize = 100;

/// Objects by id.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// The object with this id, whatever its type (`Product`, `StockMovement`, `Reservation`, `Location`, `Lot`);
    /// null when nothing (or a deleted product) has it.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        Ok(find_nodes(ctx, "id", &[id]).await?.pop().flatten())
    }

    /// The objects with these ids (at most 100), in the same order; null for each id that names
    /// nothing. At most one query per type, however many ids.
    #[graphql(complexity = "1 + ids.len().max(1) * child_complexity")]
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(Error::bad_field(
                "ids",
                format!("nodes takes at most {MAX_NODES} ids (got {})", ids.len()),
            )
            .into());
        }
        find_nodes(ctx, "ids", &ids).await
    }
}

/// A found object, before it becomes a `Node` (models are cheap to clone for an id asked twice).
#[derive(Clone)]
enum Found {
    Product(Product),
    Movement(stock_movement::Model),
    Reservation(reservation::Model),
    Location(location::Model),
    Lot(stock_bucket::Model),
}

impl From<Found> for Node {
    fn from(found: Found) -> Self {
        match found {
            Found::Product(product) => Node::Product(product),
            Found::Movement(movement) => Node::StockMovement(StockMovement::new(movement)),
            Found::Reservation(reservation) => Node::Reservation(Reservation(reservation)),
            Found::Location(location) => Node::Location(Location(location)),
            Found::Lot(lot) => Node::Lot(Lot(lot)),
        }
    }
}

/// Looks the ids up type by type, asking each next type only for the ids not found yet.
async fn find_nodes(ctx: &Context<'_>, argument: &str, ids: &[ID]) -> Result<Vec<Option<Node>>> {
    let wanted: Vec<Uuid> = ids
        .iter()
        .map(|id| parse_id(argument, id))
        .collect::<Result<_, _>>()?;
    let services = ctx.services()?;
    let mut found: HashMap<Uuid, Found> = HashMap::new();
    let missing = |found: &HashMap<Uuid, Found>| -> Vec<Uuid> {
        wanted
            .iter()
            .filter(|id| !found.contains_key(id))
            .copied()
            .collect()
    };
    // Listed together: their nested connections load for all of them at once.
    for product in Product::listed(services.products.find_many(&wanted).await?) {
        found.insert(product.0.id, Found::Product(product));
    }
    let rest = missing(&found);
    if !rest.is_empty() {
        for movement in services.stock.find_movements(&rest).await? {
            found.insert(movement.id, Found::Movement(movement));
        }
    }
    let rest = missing(&found);
    if !rest.is_empty() {
        for reservation in services.reservations.find_many(&rest).await? {
            found.insert(reservation.id, Found::Reservation(reservation));
        }
    }
    let rest = missing(&found);
    if !rest.is_empty() {
        for location in services.locations.find_many(&rest).await? {
            found.insert(location.id, Found::Location(location));
        }
    }
    let rest = missing(&found);
    if !rest.is_empty() {
        for lot in services.stock.find_lots(&rest).await? {
            found.insert(lot.id, Found::Lot(lot));
        }
    }
    Ok(wanted
        .iter()
        .map(|id| found.get(id).cloned().map(Node::from))
        .collect())
}
