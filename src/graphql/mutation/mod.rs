//! Mutation roots, one per domain, merged into the schema's `Mutation`.

mod location;
mod product;
mod reservation;
mod stock;
mod sync;
mod webhook;

pub use location::LocationMutation;
pub use product::ProductMutation;
pub use reservation::ReservationMutation;
pub use stock::{StockMutation, parse_optional_id};
pub use sync::SyncMutation;
pub use webhook::WebhookMutation;
