//! Query roots, one per domain, merged into the schema's `Query`.

mod ledger;
mod movement;
mod product;
mod reservation;

pub use ledger::LedgerQuery;
pub use movement::MovementQuery;
pub use product::ProductQuery;
pub use reservation::ReservationQuery;
