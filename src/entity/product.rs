//! A row of the `products` table.

use sea_orm::entity::prelude::*;

/// A product as stored. `name_key` and `sku_key` are the case-folded copies that searches and
/// the live-SKU unique index use. `reserved` units are held by active reservations; `expired`
/// units sit in lots past their date. `stock`, `reserved` and `expired` are the sums over the
/// product's buckets, kept in the same transaction as the buckets.
/// Serializable because idempotent operations store their original result.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
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
    pub reserved: i64,
    /// Units on hand in expired lots.
    pub expired: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::stock_movement::Entity")]
    StockMovement,
    #[sea_orm(has_many = "super::reservation::Entity")]
    Reservation,
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

    /// Units that reductions and new reservations may take: stock less what is reserved and
    /// what has expired.
    pub fn available(&self) -> i64 {
        self.stock - self.reserved - self.expired
    }

    /// `LOW_STOCK` when the available units are at or below the reorder level.
    pub fn is_low_stock(&self) -> bool {
        self.available() <= self.reorder_level
    }
}
