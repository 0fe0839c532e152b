//! A row of the `sync_sequences` table: the last `sourceSequence` a sync applied to one bucket
//! (product, location, lot) from one source.

use sea_orm::entity::prelude::*;

/// The newest sequence applied from `source` (case-folded) to one bucket: `lot_code` at
/// `location_id` of `product_id` (empty for the lot-less stock). A sync row from that source
/// for that bucket whose sequence is not greater is stale.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_sequences")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub source: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub location_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub lot_code: String,
    pub last_sequence: i64,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
