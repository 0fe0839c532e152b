//! Events that leave the process: the outbox every committed change writes its events to (in
//! the same transaction), the per-product counter that numbers them, the webhooks that
//! subscribe to them and one delivery row per (webhook, event).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The last event sequence given to each product (its events are numbered 1, 2, ...).
        manager
            .create_table(
                Table::create()
                    .table(OutboxSequences::Table)
                    .col(
                        ColumnDef::new(OutboxSequences::ProductId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(OutboxSequences::LastSequence)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OutboxEvents::Table)
                    .col(
                        ColumnDef::new(OutboxEvents::Position)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(OutboxEvents::Id).uuid().not_null())
                    .col(ColumnDef::new(OutboxEvents::EventType).text().not_null())
                    .col(ColumnDef::new(OutboxEvents::ProductId).uuid().not_null())
                    .col(
                        ColumnDef::new(OutboxEvents::Sequence)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OutboxEvents::OccurredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(OutboxEvents::Data).text().not_null())
                    .col(
                        ColumnDef::new(OutboxEvents::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(OutboxEvents::RelayedAt).timestamp_with_time_zone())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_events_id")
                    .table(OutboxEvents::Table)
                    .col(OutboxEvents::Id)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_events_product_sequence")
                    .table(OutboxEvents::Table)
                    .col(OutboxEvents::ProductId)
                    .col(OutboxEvents::Sequence)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The relay reads the undelivered rows in order; a partial index keeps that read small
        // however many delivered rows wait for pruning.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX outbox_events_pending ON outbox_events (position) \
                 WHERE relayed_at IS NULL",
            )
            .await?;
        // ... and, per product, finds the first undelivered event another instance holds.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX outbox_events_pending_product ON outbox_events \
                 (product_id, position) WHERE relayed_at IS NULL",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .col(ColumnDef::new(Webhooks::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Webhooks::Url).text().not_null())
                    .col(ColumnDef::new(Webhooks::Description).text().not_null())
                    .col(ColumnDef::new(Webhooks::EventTypes).text().not_null())
                    .col(ColumnDef::new(Webhooks::Secret).text().not_null())
                    .col(ColumnDef::new(Webhooks::Enabled).boolean().not_null())
                    .col(ColumnDef::new(Webhooks::DisabledReason).text())
                    .col(
                        ColumnDef::new(Webhooks::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Webhooks::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(
                        ColumnDef::new(WebhookDeliveries::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::WebhookId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::EventId).uuid().not_null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::ProductId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::Position)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::Status).text().not_null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::Attempts)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::NextAttemptAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::ClaimedUntil).timestamp_with_time_zone())
                    .col(ColumnDef::new(WebhookDeliveries::LastStatusCode).integer())
                    .col(ColumnDef::new(WebhookDeliveries::LastError).text())
                    .col(ColumnDef::new(WebhookDeliveries::LastResponse).text())
                    .col(
                        ColumnDef::new(WebhookDeliveries::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::FinishedAt).timestamp_with_time_zone())
                    .foreign_key(
                        ForeignKey::create()
                            .name("webhook_deliveries_webhook_id_fkey")
                            .from(WebhookDeliveries::Table, WebhookDeliveries::WebhookId)
                            .to(Webhooks::Table, Webhooks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The dispatcher looks for due deliveries, and for an earlier pending one of the same
        // (webhook, product) that must go first.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX webhook_deliveries_pending ON webhook_deliveries \
                 (webhook_id, product_id, position) WHERE status = 'PENDING'",
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) \
                 WHERE status = 'PENDING'",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_log")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::WebhookId)
                    .col(WebhookDeliveries::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_event_id")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EventId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookDeliveries::Table.into_iden(),
            Webhooks::Table.into_iden(),
            OutboxEvents::Table.into_iden(),
            OutboxSequences::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum OutboxSequences {
    Table,
    ProductId,
    LastSequence,
}

#[derive(DeriveIden)]
enum OutboxEvents {
    Table,
    Position,
    Id,
    EventType,
    ProductId,
    Sequence,
    OccurredAt,
    Data,
    CreatedAt,
    RelayedAt,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    Url,
    Description,
    EventTypes,
    Secret,
    Enabled,
    DisabledReason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    EventId,
    ProductId,
    Position,
    Status,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
    LastStatusCode,
    LastError,
    LastResponse,
    CreatedAt,
    FinishedAt,
}
