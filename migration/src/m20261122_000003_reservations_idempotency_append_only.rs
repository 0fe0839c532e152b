//! Reservations (`products.reserved` and the `reservations` table), idempotency keys, and
//! triggers that make the stock ledger append-only.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;

        // Units held by active reservations; never more than on hand.
        if postgres {
            db.execute_unprepared(
                "ALTER TABLE products ADD COLUMN reserved BIGINT NOT NULL DEFAULT 0; \
                 ALTER TABLE products ADD CONSTRAINT products_reserved_check \
                 CHECK (reserved >= 0 AND reserved <= stock)",
            )
            .await?;
        } else {
            db.execute_unprepared(
                "ALTER TABLE products ADD COLUMN reserved BIGINT NOT NULL DEFAULT 0 \
                 CHECK (reserved >= 0 AND reserved <= stock)",
            )
            .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Reservations::Table)
                    .col(
                        ColumnDef::new(Reservations::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Reservations::ProductId).uuid().not_null())
                    .col(
                        ColumnDef::new(Reservations::Quantity)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(Reservations::Quantity).gt(0)),
                    )
                    .col(ColumnDef::new(Reservations::Status).text().not_null())
                    .col(ColumnDef::new(Reservations::Reference).text().null())
                    .col(ColumnDef::new(Reservations::Actor).text().not_null())
                    .col(
                        ColumnDef::new(Reservations::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Reservations::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Reservations::ResolvedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("reservations_product_id_fkey")
                            .from(Reservations::Table, Reservations::ProductId)
                            .to(Products::Table, Products::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // The expiry sweep and the per-product sweep look for active reservations by time.
        manager
            .create_index(
                Index::create()
                    .name("reservations_status_expires_at")
                    .table(Reservations::Table)
                    .col(Reservations::Status)
                    .col(Reservations::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reservations_product_id_status")
                    .table(Reservations::Table)
                    .col(Reservations::ProductId)
                    .col(Reservations::Status)
                    .to_owned(),
            )
            .await?;

        // A key is claimed by inserting it in the transaction of the change it guards; the
        // primary key makes a concurrent duplicate wait for that transaction and then see its
        // outcome.
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(ColumnDef::new(IdempotencyKeys::Scope).text().not_null())
                    .col(ColumnDef::new(IdempotencyKeys::Key).text().not_null())
                    .col(ColumnDef::new(IdempotencyKeys::Operation).text().not_null())
                    .col(
                        ColumnDef::new(IdempotencyKeys::Fingerprint)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(IdempotencyKeys::Outcome).text().null())
                    .col(
                        ColumnDef::new(IdempotencyKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKeys::Scope)
                            .col(IdempotencyKeys::Key),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idempotency_keys_created_at")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::CreatedAt)
                    .to_owned(),
            )
            .await?;

        // The ledger is append-only, whatever the application does.
        if postgres {
            db.execute_unprepared(
                "CREATE FUNCTION stock_movements_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN RAISE EXCEPTION 'stock_movements is append-only: % is not allowed', TG_OP; END $$; \
                 CREATE TRIGGER stock_movements_append_only BEFORE UPDATE OR DELETE ON stock_movements \
                 FOR EACH ROW EXECUTE FUNCTION stock_movements_append_only()",
            )
            .await?;
        } else {
            db.execute_unprepared(
                "CREATE TRIGGER stock_movements_no_update BEFORE UPDATE ON stock_movements \
                 BEGIN SELECT RAISE(ABORT, 'stock_movements is append-only: UPDATE is not allowed'); END; \
                 CREATE TRIGGER stock_movements_no_delete BEFORE DELETE ON stock_movements \
                 BEGIN SELECT RAISE(ABORT, 'stock_movements is append-only: DELETE is not allowed'); END;",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(
                "DROP TRIGGER stock_movements_append_only ON stock_movements; \
                 DROP FUNCTION stock_movements_append_only()",
            )
            .await?;
        } else {
            db.execute_unprepared(
                "DROP TRIGGER stock_movements_no_update; DROP TRIGGER stock_movements_no_delete",
            )
            .await?;
        }
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Reservations::Table).to_owned())
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(
                "ALTER TABLE products DROP CONSTRAINT products_reserved_check; \
                 ALTER TABLE products DROP COLUMN reserved",
            )
            .await?;
        } else {
            db.execute_unprepared("ALTER TABLE products DROP COLUMN reserved")
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    Id,
    ProductId,
    Quantity,
    Status,
    Reference,
    Actor,
    ExpiresAt,
    CreatedAt,
    ResolvedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Scope,
    Key,
    Operation,
    Fingerprint,
    Outcome,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
}
