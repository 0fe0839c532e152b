//! Warehouse sync: the last `sourceSequence` applied per (source, product, location, lot), so a
//! count that arrives late or twice is recognised as stale and changes nothing.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncSequences::Table)
                    .col(ColumnDef::new(SyncSequences::Source).text().not_null())
                    .col(ColumnDef::new(SyncSequences::ProductId).uuid().not_null())
                    .col(ColumnDef::new(SyncSequences::LocationId).uuid().not_null())
                    .col(
                        ColumnDef::new(SyncSequences::LotCode)
                            .text()
                            .not_null()
                            .default(""),
                    )
                    .col(
                        ColumnDef::new(SyncSequences::LastSequence)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncSequences::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(SyncSequences::Source)
                            .col(SyncSequences::ProductId)
                            .col(SyncSequences::LocationId)
                            .col(SyncSequences::LotCode),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("sync_sequences_product_id_fkey")
                            .from(SyncSequences::Table, SyncSequences::ProductId)
                            .to(Products::Table, Products::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("sync_sequences_location_id_fkey")
                            .from(SyncSequences::Table, SyncSequences::LocationId)
                            .to(Locations::Table, Locations::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // Reads go by product (a sync loads the sequences of the products it locked).
        manager
            .create_index(
                Index::create()
                    .name("sync_sequences_product_id")
                    .table(SyncSequences::Table)
                    .col(SyncSequences::ProductId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncSequences::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SyncSequences {
    Table,
    Source,
    ProductId,
    LocationId,
    LotCode,
    LastSequence,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Locations {
    Table,
    Id,
}
