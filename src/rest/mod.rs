//! The REST facade: the product endpoints, the bulk update, CSV import and export over the same services as GraphQL, with the documented JSON
//! bodies and status codes.

mod error;
mod extract;
mod inventory;
mod products;
mod sync;

pub use error::ApiError;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post, put};

use crate::auth::Authenticator;
use crate::service::Services;

/// The REST routes, over any application state that holds the services and the authenticator.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Services: FromRef<S>,
    Authenticator: FromRef<S>,
{
    Router::new()
        .route("/products", post(products::create))
        .route("/products/bulk-update", post(sync::bulk_update))
        .route("/products/{id}", get(products::get))
        .route("/products/{id}/status", get(products::status))
        .route("/products/{id}/stock", get(products::stock_by_location))
        .route("/products/{id}/add", put(products::add_stock))
        .route("/products/{id}/reduce", put(products::reduce_stock))
        .route("/exports/inventory.csv", get(inventory::export_inventory))
        .route("/exports/movements.csv", get(inventory::export_movements))
}

/// The CSV import route: it takes bodies up to `--max-import-bytes`, so the router gives it its
/// own body limit.
pub fn import_routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Services: FromRef<S>,
    Authenticator: FromRef<S>,
{
    Router::new().route("/imports/inventory", post(inventory::import))
}
