//! A row of the `idempotency_keys` table: a key a caller used, what it was used for, and the
//! outcome to replay when the same request comes again.

use sea_orm::entity::prelude::*;

/// A claimed key. `outcome` is the stored result (JSON), written in the same transaction as
/// the change it guards.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    /// Whose key: the caller's subject.
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub operation: String,
    pub fingerprint: String,
    pub outcome: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
