//! A row of the `outbox_events` table: one event of a committed change, written in the change's
//! own transaction, waiting for (or done with) the relay.

use sea_orm::entity::prelude::*;

/// An event as stored. `position` orders every event ever written; `sequence` numbers one
/// product's events 1, 2, 3, ... with no gaps. `data` is the event's JSON `data` object;
/// `relayed_at` is set once the relay has handed the event to the broker (or had no broker to
/// hand it to).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub position: i64,
    pub id: Uuid,
    pub event_type: String,
    pub product_id: Uuid,
    pub sequence: i64,
    pub occurred_at: DateTimeUtc,
    pub data: String,
    pub created_at: DateTimeUtc,
    pub relayed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
