//! Webhooks (admin): the endpoints events are sent to, and the log of what was sent.
//!
//! Creating one makes its signing secret, shown once. From the next commit on, every event
//! of a type the webhook receives gets a delivery row, written with the change itself (see the
//! outbox); the dispatcher in `crate::relay` sends them.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::now;
use crate::database::Database;
use crate::entity::webhook_delivery::DeliveryStatus;
use crate::entity::{outbox_event, webhook, webhook_delivery};
use crate::error::{Error, Result};
use crate::events::outbox::EVENT_TYPES;
use crate::relay::{signing, targets};

/// Most characters in a webhook's description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// A webhook to create, as given (validated by [`WebhookService::create`]).
#[derive(Clone, Debug, Default)]
pub struct NewWebhook {
    /// Where events are POSTed.
    pub url: String,
    /// The event types it receives; empty: every type.
    pub event_types: Vec<String>,
    /// What it is for.
    pub description: Option<String>,
}

/// The fields an update may change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    /// `true` enables a webhook again (after a `410`); `false` stops it: events committed
    /// while it is off are not sent to it.
    pub enabled: Option<bool>,
}

/// Manages webhooks and reads their deliveries.
#[derive(Clone, Debug)]
pub struct WebhookService {
    database: Database,
    allow_private_targets: bool,
}

impl WebhookService {
    pub(super) fn new(database: Database) -> Self {
        Self {
            database,
            allow_private_targets: false,
        }
    }

    /// Lets webhooks target loopback, private and link-local addresses.
    pub fn with_private_targets(mut self, allowed: bool) -> Self {
        self.allow_private_targets = allowed;
        self
    }

    /// Creates a webhook with a new secret; returns it (its `secret` is shown this once).
    /// Errors: `BAD_USER_INPUT` for a URL that does not parse, is not http(s), or reaches an
    /// internal address; an unknown event type; a description too long.
    pub async fn create(&self, new: NewWebhook) -> Result<webhook::Model> {
        let url = self.checked_url(&new.url).await?;
        let event_types = checked_event_types(&new.event_types)?;
        let description = checked_description(new.description.as_deref().unwrap_or(""))?;
        let at = now();
        let row = webhook::Model {
            id: Uuid::now_v7(),
            url,
            description,
            event_types,
            secret: signing::new_secret(),
            enabled: true,
            disabled_reason: None,
            created_at: at,
            updated_at: at,
        };
        let transaction = self.database.begin_write().await?;
        let created = row.into_active_model().insert(&*transaction).await?;
        transaction.commit().await?;
        Ok(created)
    }

    /// Every webhook, oldest first.
    pub async fn list(&self) -> Result<Vec<webhook::Model>> {
        Ok(webhook::Entity::find()
            .order_by_asc(webhook::Column::CreatedAt)
            .order_by_asc(webhook::Column::Id)
            .all(self.database.connection())
            .await?)
    }

    /// One webhook, if it exists.
    pub async fn get(&self, id: Uuid) -> Result<Option<webhook::Model>> {
        Ok(webhook::Entity::find_by_id(id)
            .one(self.database.connection())
            .await?)
    }

    /// Changes a webhook. Enabling clears the reason it was disabled. Errors as for
    /// [`WebhookService::create`], and `BAD_USER_INPUT` for an unknown id.
    pub async fn update(&self, id: Uuid, changes: WebhookChanges) -> Result<webhook::Model> {
        let url = match &changes.url {
            Some(url) => Some(self.checked_url(url).await?),
            None => None,
        };
        let event_types = changes
            .event_types
            .as_deref()
            .map(checked_event_types)
            .transpose()?;
        let description = changes
            .description
            .as_deref()
            .map(checked_description)
            .transpose()?;
        let transaction = self.database.begin_write().await?;
        let current = webhook::Entity::find_by_id(id)
            .lock_exclusive()
            .one(&*transaction)
            .await?
            .ok_or_else(unknown_webhook)?;
        let mut row = current.into_active_model();
        if let Some(url) = url {
            row.url = Set(url);
        }
        if let Some(event_types) = event_types {
            row.event_types = Set(event_types);
        }
        if let Some(description) = description {
            row.description = Set(description);
        }
        if let Some(enabled) = changes.enabled {
            row.enabled = Set(enabled);
            if enabled {
                row.disabled_reason = Set(None);
            } else {
                row.disabled_reason = Set(Some("paused by an administrator".into()));
            }
        }
        row.updated_at = Set(now());
        let updated = row.update(&*transaction).await?;
        transaction.commit().await?;
        Ok(updated)
    }

    /// Deletes a webhook and its delivery log; returns it. `BAD_USER_INPUT` for an unknown id.
    pub async fn delete(&self, id: Uuid) -> Result<webhook::Model> {
        let transaction = self.database.begin_write().await?;
        // The webhook's row first, as every other writer of a webhook and its deliveries
        // takes them (a 410 answer, an update): no lock-order deadlock between them.
        let current = webhook::Entity::find_by_id(id)
            .lock_exclusive()
            .one(&*transaction)
            .await?
            .ok_or_else(unknown_webhook)?;
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::WebhookId.eq(id))
            .exec(&*transaction)
            .await?;
        webhook::Entity::delete_by_id(id)
            .exec(&*transaction)
            .await?;
        transaction.commit().await?;
        Ok(current)
    }

    /// A page of a webhook's deliveries, newest first, optionally only those in `status`:
    /// at most `limit` after the delivery `after` (its id). Returns the page and whether more
    /// follow.
    pub async fn deliveries(
        &self,
        webhook_id: Uuid,
        status: Option<DeliveryStatus>,
        limit: u64,
        after: Option<Uuid>,
    ) -> Result<(Vec<(webhook_delivery::Model, Option<String>)>, bool)> {
        let mut query = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::WebhookId.eq(webhook_id));
        if let Some(status) = status {
            query = query.filter(webhook_delivery::Column::Status.eq(status));
        }
        if let Some(after) = after {
            // Delivery ids are time-ordered (UUIDv7 here; v4 from the database's fan-out), so
            // the cursor is the row's creation time and id.
            let cursor = webhook_delivery::Entity::find_by_id(after)
                .one(self.database.connection())
                .await?
                .ok_or_else(|| Error::bad_field("after", "not a cursor of this list"))?;
            query = query.filter(
                sea_orm::Condition::any()
                    .add(webhook_delivery::Column::CreatedAt.lt(cursor.created_at))
                    .add(
                        sea_orm::Condition::all()
                            .add(webhook_delivery::Column::CreatedAt.eq(cursor.created_at))
                            .add(webhook_delivery::Column::Id.lt(cursor.id)),
                    ),
            );
        }
        let mut rows = query
            .order_by_desc(webhook_delivery::Column::CreatedAt)
            .order_by_desc(webhook_delivery::Column::Id)
            .limit(limit + 1)
            .all(self.database.connection())
            .await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let event_ids: Vec<Uuid> = rows.iter().map(|row| row.event_id).collect();
        let types: std::collections::HashMap<Uuid, String> = outbox_event::Entity::find()
            .select_only()
            .column(outbox_event::Column::Id)
            .column(outbox_event::Column::EventType)
            .filter(outbox_event::Column::Id.is_in(event_ids))
            .into_tuple::<(Uuid, String)>()
            .all(self.database.connection())
            .await?
            .into_iter()
            .collect();
        Ok((
            rows.into_iter()
                .map(|row| {
                    let event_type = types.get(&row.event_id).cloned();
                    (row, event_type)
                })
                .collect(),
            more,
        ))
    }

    /// Sends a delivery's event again, as a new delivery (same event id, so receivers can
    /// drop it if they had it). `BAD_USER_INPUT` for an unknown delivery or an event that was
    /// pruned.
    /// Returns the new delivery and its event's type.
    pub async fn redeliver(&self, delivery_id: Uuid) -> Result<(webhook_delivery::Model, String)> {
        let transaction = self.database.begin_write().await?;
        let original = webhook_delivery::Entity::find_by_id(delivery_id)
            .one(&*transaction)
            .await?
            .ok_or_else(|| Error::bad_field("deliveryId", "no delivery has this id"))?;
        let Some(event) = outbox_event::Entity::find()
            .filter(outbox_event::Column::Id.eq(original.event_id))
            .one(&*transaction)
            .await?
        else {
            return Err(Error::bad_field(
                "deliveryId",
                "this delivery's event is past the retention period",
            ));
        };
        let at = now();
        let again = webhook_delivery::Model {
            id: Uuid::now_v7(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: at,
            claimed_until: None,
            last_status_code: None,
            last_error: None,
            last_response: None,
            created_at: at,
            finished_at: None,
            ..original
        }
        .into_active_model()
        .insert(&*transaction)
        .await?;
        transaction.commit().await?;
        Ok((again, event.event_type))
    }

    async fn checked_url(&self, url: &str) -> Result<String> {
        let url = url.trim();
        targets::check(url, self.allow_private_targets)
            .await
            .map_err(|refused| {
                Error::bad_field("url", format!("webhook URL refused: {refused}"))
            })?;
        Ok(url.to_owned())
    }
}

fn unknown_webhook() -> Error {
    Error::bad_field("id", "no webhook has this id")
}

/// The stored form of an event type list (`,a,b,`; empty for every type).
fn checked_event_types(types: &[String]) -> Result<String> {
    let mut known: Vec<&str> = Vec::with_capacity(types.len());
    for name in types {
        let found = EVENT_TYPES
            .iter()
            .find(|known| **known == name.as_str())
            .ok_or_else(|| {
                Error::bad_field(
                    "eventTypes",
                    format!(
                        "unknown event type '{}'; known: {}",
                        name.chars().take(64).collect::<String>(),
                        EVENT_TYPES.join(", ")
                    ),
                )
            })?;
        if !known.contains(found) {
            known.push(found);
        }
    }
    Ok(if known.is_empty() {
        String::new()
    } else {
        format!(",{},", known.join(","))
    })
}

fn checked_description(description: &str) -> Result<String> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::bad_field(
            "description",
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(description.to_owned())
}
