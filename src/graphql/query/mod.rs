//! Query roots, one per domain, merged into the schema's `Query`.

mod movement;
mod product;

pub use movement::MovementQuery;
pub use product::ProductQuery;
