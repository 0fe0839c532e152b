//! Stockroom's database schema as sea-orm migrations, one file per migration.
//!
//! The server runs these on start (unless `--no-migrate`); `cargo run -p migration -- status`
//! (or `up`, `down`) runs them by hand against `DATABASE_URL`.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_products;
mod m20261122_000002_create_stock_movements;
mod m20261122_000003_reservations_idempotency_append_only;
mod m20261206_000004_locations_and_lots;
mod m20261207_000005_sync_sequences;
mod m20261207_000006_outbox_and_webhooks;
mod m20261208_000007_search_index;

pub use m20261206_000004_locations_and_lots::MAIN_LOCATION_ID;

/// Every migration of the schema, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_products::Migration),
            Box::new(m20261122_000002_create_stock_movements::Migration),
            Box::new(m20261122_000003_reservations_idempotency_append_only::Migration),
            Box::new(m20261206_000004_locations_and_lots::Migration),
            Box::new(m20261207_000005_sync_sequences::Migration),
            Box::new(m20261207_000006_outbox_and_webhooks::Migration),
            Box::new(m20261208_000007_search_index::Migration),
        ]
    }
}
