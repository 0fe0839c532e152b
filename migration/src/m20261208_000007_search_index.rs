//! Product search that does not scan the catalogue: on PostgreSQL, trigram (`pg_trgm`) GIN
//! indexes on the case-folded name and SKU, which serve `LIKE '%fragment%'` for fragments of
//! three or more characters. Where the extension cannot be created (not installed, or the
//! role may not create it) the migration leaves a warning and search keeps scanning; SQLite
//! keeps its scan too (see the README's "Search" section).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "DO $$ BEGIN \
                   CREATE EXTENSION IF NOT EXISTS pg_trgm; \
                 EXCEPTION WHEN OTHERS THEN \
                   RAISE WARNING 'pg_trgm is not available (%): product search scans the table', SQLERRM; \
                 END $$; \
                 DO $$ BEGIN \
                   IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN \
                     CREATE INDEX IF NOT EXISTS products_name_key_trgm ON products USING gin (name_key gin_trgm_ops); \
                     CREATE INDEX IF NOT EXISTS products_sku_key_trgm ON products USING gin (sku_key gin_trgm_ops); \
                   END IF; \
                 END $$;",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        // The extension stays: other schemas of the database may use it.
        manager
            .get_connection()
            .execute_unprepared(
                "DROP INDEX IF EXISTS products_name_key_trgm; \
                 DROP INDEX IF EXISTS products_sku_key_trgm;",
            )
            .await?;
        Ok(())
    }
}
