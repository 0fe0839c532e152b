//! The `products` table.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .col(ColumnDef::new(Products::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Products::Name).text().not_null())
                    // Case-folded copies of `name` and `sku`, computed by the application so that
                    // "case-insensitive" means the same thing on PostgreSQL and SQLite (SQLite's
                    // `lower()` folds ASCII only).
                    .col(ColumnDef::new(Products::NameKey).text().not_null())
                    .col(ColumnDef::new(Products::Sku).text().not_null())
                    .col(ColumnDef::new(Products::SkuKey).text().not_null())
                    // The last line of defence: whatever the application does, stock never goes
                    // negative or past the GraphQL `Int` range.
                    .col(
                        ColumnDef::new(Products::Stock)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(Products::Stock).between(0, i64::from(i32::MAX))),
                    )
                    .col(
                        ColumnDef::new(Products::ReorderLevel)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(Products::ReorderLevel).gte(0)),
                    )
                    .col(ColumnDef::new(Products::Version).integer().not_null())
                    .col(
                        ColumnDef::new(Products::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Products::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Products::DeletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;

        // SKUs are unique case-insensitively among live products only: a soft-deleted product
        // frees its SKU. A partial unique index reads the same on both backends, and it is what
        // makes two concurrent creates of `ABC-1` and `abc-1` impossible.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX products_live_sku_key ON products (sku_key) \
                 WHERE deleted_at IS NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Products::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
    Name,
    NameKey,
    Sku,
    SkuKey,
    Stock,
    ReorderLevel,
    Version,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}
