//! The `stock_movements` table: the append-only audit trail of every stock change.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StockMovements::Table)
                    .col(
                        ColumnDef::new(StockMovements::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(StockMovements::ProductId).uuid().not_null())
                    .col(ColumnDef::new(StockMovements::Kind).text().not_null())
                    // Signed: positive for additions, negative for reductions, so that a
                    // product's stock is always the plain sum of its movements' deltas.
                    .col(
                        ColumnDef::new(StockMovements::Delta)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(StockMovements::StockBefore)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(StockMovements::StockAfter)
                            .big_integer()
                            .not_null(),
                    )
                    // The product's version after this movement. Row locking makes it strictly
                    // increasing in commit order, so it orders one product's history exactly.
                    .col(
                        ColumnDef::new(StockMovements::ProductVersion)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(StockMovements::Reason).text().null())
                    .col(ColumnDef::new(StockMovements::IdempotencyKey).text().null())
                    .col(ColumnDef::new(StockMovements::Actor).text().not_null())
                    .col(
                        ColumnDef::new(StockMovements::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .check(
                        Expr::col(StockMovements::StockAfter)
                            .eq(Expr::col(StockMovements::StockBefore)
                                .add(Expr::col(StockMovements::Delta))),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("stock_movements_product_id_fkey")
                            .from(StockMovements::Table, StockMovements::ProductId)
                            .to(Products::Table, Products::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;

        // One product's history, newest first; unique, so that two changes that both believed
        // they were the product's next version (a lost update) cannot both be recorded.
        manager
            .create_index(
                Index::create()
                    .name("stock_movements_product_version")
                    .table(StockMovements::Table)
                    .col(StockMovements::ProductId)
                    .col(StockMovements::ProductVersion)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(StockMovements::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum StockMovements {
    Table,
    Id,
    ProductId,
    Kind,
    Delta,
    StockBefore,
    StockAfter,
    ProductVersion,
    Reason,
    IdempotencyKey,
    Actor,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
}
