//! A row of the `stock_buckets` table: the units of one product in one location and lot.

use chrono::NaiveDate;
use sea_orm::entity::prelude::*;

/// A bucket as stored. `lot_code` is empty for the product's lot-less stock in the location.
/// `expired` is set once, by the expiry sweep, the day after `expires_on`; from then on its
/// units are on hand but never available (and no reservation holds them).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "stock_buckets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub lot_code: String,
    pub expires_on: Option<NaiveDate>,
    pub stock: i64,
    pub reserved: i64,
    pub expired: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::location::Entity",
        from = "Column::LocationId",
        to = "super::location::Column::Id"
    )]
    Location,
    #[sea_orm(
        belongs_to = "super::product::Entity",
        from = "Column::ProductId",
        to = "super::product::Column::Id"
    )]
    Product,
}

impl Related<super::location::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Location.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// Whether the bucket is a lot (rather than the location's lot-less stock).
    pub fn is_lot(&self) -> bool {
        !self.lot_code.is_empty()
    }

    /// Units that can be taken or held: none once expired, else those not held.
    pub fn available(&self) -> i64 {
        if self.expired {
            0
        } else {
            self.stock - self.reserved
        }
    }

    /// Units on hand that are expired.
    pub fn expired_units(&self) -> i64 {
        if self.expired { self.stock } else { 0 }
    }

    /// Whether the lot has passed its date as of `today` (good through `expires_on`).
    pub fn is_past_date(&self, today: NaiveDate) -> bool {
        self.expires_on
            .is_some_and(|last_good_day| last_good_day < today)
    }
}
