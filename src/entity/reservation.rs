//! A row of the `reservations` table: units held for a checkout until committed, released or
//! expired.

use sea_orm::entity::prelude::*;

/// A reservation as stored. While `ACTIVE`, its quantity counts in its product's `reserved`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "reservations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub product_id: Uuid,
    pub quantity: i64,
    pub status: ReservationStatus,
    pub reference: Option<String>,
    pub actor: String,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub resolved_at: Option<DateTimeUtc>,
}

/// Where a reservation stands. Only `ACTIVE` ones hold units; the others are final.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum ReservationStatus {
    /// Holding units.
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    /// Turned into a reduction.
    #[sea_orm(string_value = "COMMITTED")]
    Committed,
    /// Given back by the caller.
    #[sea_orm(string_value = "RELEASED")]
    Released,
    /// Given back because its time ran out.
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::product::Entity",
        from = "Column::ProductId",
        to = "super::product::Column::Id"
    )]
    Product,
}

impl Related<super::product::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Product.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
