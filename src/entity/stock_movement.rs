//! A row of the `stock_movements` table: one entry of the append-only stock ledger.

use sea_orm::entity::prelude::*;

/// One stock change as recorded. `delta` is signed, so a product's stock is the sum of the
/// deltas of its movements. Serializable because it travels inside events between instances.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "stock_movements")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub product_id: Uuid,
    pub kind: MovementKind,
    pub delta: i64,
    pub stock_before: i64,
    pub stock_after: i64,
    pub product_version: i32,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
    pub actor: String,
    pub created_at: DateTimeUtc,
}

/// What caused a movement, stored as text.
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
pub enum MovementKind {
    /// The stock a product was created with.
    #[sea_orm(string_value = "INITIAL")]
    Initial,
    /// Units added with `addStock`.
    #[sea_orm(string_value = "ADD")]
    Add,
    /// Units taken with `reduceStock`.
    #[sea_orm(string_value = "REDUCE")]
    Reduce,
    /// Units taken by committing a reservation.
    #[sea_orm(string_value = "RESERVATION_COMMIT")]
    ReservationCommit,
    /// Units moved between locations with `transferStock` (the product's stock is unchanged).
    #[sea_orm(string_value = "TRANSFER")]
    Transfer,
    /// Units written off with `writeOffStock` (expired or damaged).
    #[sea_orm(string_value = "WRITE_OFF")]
    WriteOff,
    /// On-hand set by a warehouse count (`syncStock` with `onHand`, a CSV import).
    #[sea_orm(string_value = "ADJUSTMENT")]
    Adjustment,
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
