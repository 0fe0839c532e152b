//! Validated domain values. Each `parse` is the one place its rule lives; transports hand raw
//! input to them and services only ever see values that passed.

mod actor;
mod idempotency;
mod location;
mod product;
mod stock;

pub use actor::{Actor, Role};
pub use idempotency::IdempotencyKey;
pub use location::{DaysAhead, LocationCode, LocationName, LotCode};
pub use product::{ProductName, Sku, fold_case};
pub use stock::{Quantity, Reason, Reference, ReservationTtl, StockLevel};

/// The most units a product can hold: GraphQL `Int`'s maximum.
pub const MAX_STOCK: i64 = i32::MAX as i64;
