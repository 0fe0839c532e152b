//! Mutation roots, one per domain, merged into the schema's `Mutation`.

mod product;
mod stock;

pub use product::ProductMutation;
pub use stock::StockMutation;
