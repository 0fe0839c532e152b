//! A row of the `products` table.

use sea_orm::entity::prelude::*;

/// A product as stored. `name_key` and `sku_key` are the case-folded copies that searches and
/// the live-SKU unique index use.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "products")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub name_key: String,
    pub sku: String,
    pub sku_key: String,
    pub stock: i64,
    pub reorder_level: i64,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::stock_movement::Entity")]
    StockMovement,
}

impl Related<super::stock_movement::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::StockMovement.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// Whether the product has been soft-deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// `LOW_STOCK` when stock is at or below the reorder level.
    pub fn is_low_stock(&self) -> bool {
        self.stock <= self.reorder_level
    }
}
