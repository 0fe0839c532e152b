//! A row of the `webhooks` table: an HTTP endpoint that receives events.

use sea_orm::entity::prelude::*;

/// A webhook as stored. `event_types` is the list of event types it receives, written
/// `,stock.low,stock.out,` (empty: every type), so one `LIKE`-free substring test matches on
/// both databases. `secret` is the `whsec_...` signing secret. A webhook whose endpoint
/// answered `410 Gone` is disabled, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: String,
    pub secret: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::webhook_delivery::Entity")]
    Delivery,
}

impl Related<super::webhook_delivery::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Delivery.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The event types this webhook receives (empty: every type).
    pub fn event_type_list(&self) -> Vec<String> {
        self.event_types
            .split(',')
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Whether the webhook receives events of `event_type`.
    pub fn receives(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.contains(&format!(",{event_type},"))
    }
}
