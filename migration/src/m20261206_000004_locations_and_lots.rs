//! Locations and lots: stock is held in buckets, one per (product, location, lot); every
//! movement records one allocation per bucket it touched; reservations hold specific buckets.
//!
//! Existing data moves into location `MAIN`: each product gets one lot-less bucket there with
//! its stock and reserved units (the bucket shares the product's id), every existing movement
//! one allocation to that bucket, and every active reservation one hold on it. The ledger
//! rules hold for all of it afterwards.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement};

/// The id of location `MAIN`, which always exists.
pub const MAIN_LOCATION_ID: &str = "00000000-0000-7000-8000-000000000001";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let postgres = backend == DbBackend::Postgres;

        manager
            .create_table(
                Table::create()
                    .table(Locations::Table)
                    .col(
                        ColumnDef::new(Locations::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Locations::Code).text().not_null())
                    .col(ColumnDef::new(Locations::CodeKey).text().not_null())
                    .col(ColumnDef::new(Locations::Name).text().not_null())
                    .col(ColumnDef::new(Locations::Priority).integer().not_null())
                    .col(
                        ColumnDef::new(Locations::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Locations::ArchivedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("locations_code_key")
                    .table(Locations::Table)
                    .col(Locations::CodeKey)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StockBuckets::Table)
                    .col(
                        ColumnDef::new(StockBuckets::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(StockBuckets::ProductId).uuid().not_null())
                    .col(ColumnDef::new(StockBuckets::LocationId).uuid().not_null())
                    // '' for the lot-less bucket, so that the unique index covers it too.
                    .col(ColumnDef::new(StockBuckets::LotCode).text().not_null())
                    .col(ColumnDef::new(StockBuckets::ExpiresOn).date().null())
                    .col(
                        ColumnDef::new(StockBuckets::Stock)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(StockBuckets::Stock).gte(0)),
                    )
                    .col(
                        ColumnDef::new(StockBuckets::Reserved)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(StockBuckets::Reserved).gte(0)),
                    )
                    .col(ColumnDef::new(StockBuckets::Expired).boolean().not_null())
                    .col(
                        ColumnDef::new(StockBuckets::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .check(Expr::col(StockBuckets::Reserved).lte(Expr::col(StockBuckets::Stock)))
                    .foreign_key(
                        ForeignKey::create()
                            .name("stock_buckets_product_id_fkey")
                            .from(StockBuckets::Table, StockBuckets::ProductId)
                            .to(Products::Table, Products::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("stock_buckets_location_id_fkey")
                            .from(StockBuckets::Table, StockBuckets::LocationId)
                            .to(Locations::Table, Locations::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("stock_buckets_product_location_lot")
                    .table(StockBuckets::Table)
                    .col(StockBuckets::ProductId)
                    .col(StockBuckets::LocationId)
                    .col(StockBuckets::LotCode)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("stock_buckets_location_id")
                    .table(StockBuckets::Table)
                    .col(StockBuckets::LocationId)
                    .to_owned(),
            )
            .await?;
        // The expiry task and `expiringLots` look for lots by date.
        manager
            .create_index(
                Index::create()
                    .name("stock_buckets_expires_on")
                    .table(StockBuckets::Table)
                    .col(StockBuckets::ExpiresOn)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StockAllocations::Table)
                    .col(
                        ColumnDef::new(StockAllocations::MovementId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(StockAllocations::BucketId).uuid().not_null())
                    .col(
                        ColumnDef::new(StockAllocations::ProductId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(StockAllocations::LocationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(StockAllocations::LotCode).text().not_null())
                    .col(
                        ColumnDef::new(StockAllocations::Quantity)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(StockAllocations::StockBefore)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(StockAllocations::StockAfter)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(StockAllocations::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(StockAllocations::MovementId)
                            .col(StockAllocations::BucketId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("stock_allocations_movement_id_fkey")
                            .from(StockAllocations::Table, StockAllocations::MovementId)
                            .to(StockMovements::Table, StockMovements::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("stock_allocations_bucket_id_fkey")
                            .from(StockAllocations::Table, StockAllocations::BucketId)
                            .to(StockBuckets::Table, StockBuckets::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("stock_allocations_bucket_id")
                    .table(StockAllocations::Table)
                    .col(StockAllocations::BucketId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("stock_allocations_location_movement")
                    .table(StockAllocations::Table)
                    .col(StockAllocations::LocationId)
                    .col(StockAllocations::MovementId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReservationHolds::Table)
                    .col(
                        ColumnDef::new(ReservationHolds::ReservationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ReservationHolds::BucketId).uuid().not_null())
                    .col(
                        ColumnDef::new(ReservationHolds::Quantity)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(ReservationHolds::Quantity).gt(0)),
                    )
                    .primary_key(
                        Index::create()
                            .col(ReservationHolds::ReservationId)
                            .col(ReservationHolds::BucketId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("reservation_holds_reservation_id_fkey")
                            .from(ReservationHolds::Table, ReservationHolds::ReservationId)
                            .to(Reservations::Table, Reservations::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("reservation_holds_bucket_id_fkey")
                            .from(ReservationHolds::Table, ReservationHolds::BucketId)
                            .to(StockBuckets::Table, StockBuckets::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reservation_holds_bucket_id")
                    .table(ReservationHolds::Table)
                    .col(ReservationHolds::BucketId)
                    .to_owned(),
            )
            .await?;

        // Units of expired lots: on hand, never available.
        db.execute_unprepared(
            "ALTER TABLE products ADD COLUMN expired BIGINT NOT NULL DEFAULT 0 CHECK (expired >= 0)",
        )
        .await?;

        // Everything there is moves to MAIN.
        let main = uuid_literal(postgres);
        let now = if postgres {
            "CURRENT_TIMESTAMP"
        } else {
            "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"
        };
        let statements = [
            format!(
                "INSERT INTO locations (id, code, code_key, name, priority, created_at, archived_at) \
                 VALUES ({main}, 'MAIN', 'main', 'Main', 0, {now}, NULL)"
            ),
            format!(
                "INSERT INTO stock_buckets \
                 (id, product_id, location_id, lot_code, expires_on, stock, reserved, expired, created_at) \
                 SELECT id, id, {main}, '', NULL, stock, reserved, false, created_at FROM products"
            ),
            format!(
                "INSERT INTO stock_allocations \
                 (movement_id, bucket_id, product_id, location_id, lot_code, quantity, stock_before, stock_after, created_at) \
                 SELECT id, product_id, product_id, {main}, '', delta, stock_before, stock_after, created_at \
                 FROM stock_movements"
            ),
            "INSERT INTO reservation_holds (reservation_id, bucket_id, quantity) \
             SELECT id, product_id, quantity FROM reservations WHERE status = 'ACTIVE'"
                .to_owned(),
        ];
        for statement in statements {
            db.execute_raw(Statement::from_string(backend, statement))
                .await?;
        }

        // Allocations are part of the ledger: append-only too.
        if postgres {
            db.execute_unprepared(
                "CREATE TRIGGER stock_allocations_append_only BEFORE UPDATE OR DELETE ON stock_allocations \
                 FOR EACH ROW EXECUTE FUNCTION stock_movements_append_only()",
            )
            .await?;
        } else {
            db.execute_unprepared(
                "CREATE TRIGGER stock_allocations_no_update BEFORE UPDATE ON stock_allocations \
                 BEGIN SELECT RAISE(ABORT, 'stock_allocations is append-only: UPDATE is not allowed'); END; \
                 CREATE TRIGGER stock_allocations_no_delete BEFORE DELETE ON stock_allocations \
                 BEGIN SELECT RAISE(ABORT, 'stock_allocations is append-only: DELETE is not allowed'); END;",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(
                "DROP TRIGGER stock_allocations_append_only ON stock_allocations",
            )
            .await?;
        } else {
            db.execute_unprepared(
                "DROP TRIGGER stock_allocations_no_update; DROP TRIGGER stock_allocations_no_delete",
            )
            .await?;
        }
        for table in [
            ReservationHolds::Table.into_iden(),
            StockAllocations::Table.into_iden(),
            StockBuckets::Table.into_iden(),
            Locations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        db.execute_unprepared("ALTER TABLE products DROP COLUMN expired")
            .await?;
        Ok(())
    }
}

/// [`MAIN_LOCATION_ID`] as a literal in the form each backend stores UUIDs (SQLite: 16 bytes).
fn uuid_literal(postgres: bool) -> String {
    if postgres {
        format!("'{MAIN_LOCATION_ID}'::uuid")
    } else {
        format!("X'{}'", MAIN_LOCATION_ID.replace('-', ""))
    }
}

#[derive(DeriveIden)]
enum Locations {
    Table,
    Id,
    Code,
    CodeKey,
    Name,
    Priority,
    CreatedAt,
    ArchivedAt,
}

#[derive(DeriveIden)]
enum StockBuckets {
    Table,
    Id,
    ProductId,
    LocationId,
    LotCode,
    ExpiresOn,
    Stock,
    Reserved,
    Expired,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StockAllocations {
    Table,
    MovementId,
    BucketId,
    ProductId,
    LocationId,
    LotCode,
    Quantity,
    StockBefore,
    StockAfter,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ReservationHolds {
    Table,
    ReservationId,
    BucketId,
    Quantity,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum StockMovements {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    Id,
}
