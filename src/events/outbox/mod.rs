//! The outbox: every committed change's events, written in the change's own transaction, for
//! the relay (see `crate::relay`) to hand to the systems outside.

mod event;
mod store;

pub use event::{
    EVENT_TYPES, LOT_EXPIRED, NewOutboxEvent, PRODUCT_CREATED, PRODUCT_DELETED, PRODUCT_UPDATED,
    SCHEMA_VERSION, STOCK_CHANGED, STOCK_LOW, STOCK_OUT, STOCK_RESTOCKED, envelope, outbox_events,
};
pub use store::write;
