//! Mutation roots, one per domain, merged into the schema's `Mutation`.

mod product;
mod reservation;
mod stock;

pub use product::ProductMutation;
pub use reservation::ReservationMutation;
pub use stock::StockMutation;
