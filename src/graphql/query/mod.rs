//! Query roots, one per domain, merged into the schema's `Query`.

mod ledger;
mod location;
mod movement;
mod node;
mod product;
mod reservation;
mod webhook;

pub use ledger::LedgerQuery;
pub use location::LocationQuery;
pub use movement::MovementQuery;
pub use node::NodeQuery;
pub use product::ProductQuery;
pub use reservation::ReservationQuery;
pub use webhook::WebhookQuery;
