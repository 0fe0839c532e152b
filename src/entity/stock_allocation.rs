//! A row of the `stock_allocations` table: what one movement did to one bucket.

use sea_orm::entity::prelude::*;

/// One bucket's part of a movement. `quantity` is signed; a movement's allocations add up to
/// its delta, and a bucket's allocations to its stock. Append-only, like the movements.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "stock_allocations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub movement_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket_id: Uuid,
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub lot_code: String,
    pub quantity: i64,
    pub stock_before: i64,
    pub stock_after: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
