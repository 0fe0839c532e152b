//! A row of the `sync_sequences` table: the last `sourceSequence` a sync applied for one
//! product and location from one source.

use sea_orm::entity::prelude::*;

/// The newest sequence applied from `source` to `product_id` at `location_id`; a sync row from
/// that source for that product and location whose sequence is not greater is stale.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_sequences")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub source: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub location_id: Uuid,
    pub last_sequence: i64,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
