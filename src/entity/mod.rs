//! SeaORM entities: the rows as stored. Never exposed to clients directly; the GraphQL and REST
//! layers wrap them in their own types.

pub mod idempotency_key;
pub mod location;
pub mod outbox_event;
pub mod outbox_sequence;
pub mod product;
pub mod reservation;
pub mod reservation_hold;
pub mod stock_allocation;
pub mod stock_bucket;
pub mod stock_movement;
pub mod sync_sequence;
pub mod webhook;
pub mod webhook_delivery;
