//! A row of the `locations` table: a place where stock is kept (a warehouse, a store, a shelf).

use sea_orm::entity::prelude::*;

/// A location as stored. `code_key` is the case-folded code the unique index uses; reductions
/// without a location take from locations in ascending `priority`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "locations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub code: String,
    pub code_key: String,
    pub name: String,
    pub priority: i32,
    pub created_at: DateTimeUtc,
    pub archived_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::stock_bucket::Entity")]
    StockBucket,
}

impl Related<super::stock_bucket::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::StockBucket.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// Whether the location has been archived (it then takes no new stock).
    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }
}
