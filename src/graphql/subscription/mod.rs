//! Subscription roots, merged into the schema's `Subscription`.

mod stock;

pub use stock::StockSubscription;
