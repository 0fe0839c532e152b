//! `Webhook`, `WebhookWithSecret`, `WebhookDelivery` and their inputs.

use async_graphql::{Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::PageInfo;
use crate::entity::webhook_delivery::DeliveryStatus;
use crate::entity::{webhook, webhook_delivery};
use crate::service::{NewWebhook, WebhookChanges};

/// An HTTP endpoint that receives events, signed the Standard Webhooks way.
#[derive(Clone)]
pub struct Webhook(pub webhook::Model);

/// An HTTP endpoint that receives events, signed the Standard Webhooks way.
#[Object]
impl Webhook {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Where events are POSTed.
    async fn url(&self) -> &str {
        &self.0.url
    }

    /// The event types it receives; empty: every type.
    async fn event_types(&self) -> Vec<String> {
        self.0.event_type_list()
    }

    /// What it is for.
    async fn description(&self) -> &str {
        &self.0.description
    }

    /// Whether events are sent to it. A webhook whose endpoint answered `410 Gone` is
    /// disabled; `updateWebhook(enabled: true)` turns it back on.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }

    /// Why it is disabled, when it is.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it was last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A webhook just created, with its signing secret: shown this once, never again.
pub struct WebhookWithSecret(pub webhook::Model);

/// A webhook just created, with its signing secret: shown this once, never again.
#[Object]
impl WebhookWithSecret {
    /// The webhook's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The webhook.
    async fn webhook(&self) -> Webhook {
        Webhook(self.0.clone())
    }

    /// The signing secret (`whsec_` and base64): verify `webhook-signature` with it.
    async fn secret(&self) -> &str {
        &self.0.secret
    }
}

/// Where a delivery stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "WebhookDeliveryStatus")]
pub enum WebhookDeliveryStatus {
    /// Waiting for its first attempt or its next retry.
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Every retry failed, or the webhook was disabled.
    Failed,
}

impl From<DeliveryStatus> for WebhookDeliveryStatus {
    fn from(status: DeliveryStatus) -> Self {
        match status {
            DeliveryStatus::Pending => Self::Pending,
            DeliveryStatus::Succeeded => Self::Succeeded,
            DeliveryStatus::Failed => Self::Failed,
        }
    }
}

impl From<WebhookDeliveryStatus> for DeliveryStatus {
    fn from(status: WebhookDeliveryStatus) -> Self {
        match status {
            WebhookDeliveryStatus::Pending => Self::Pending,
            WebhookDeliveryStatus::Succeeded => Self::Succeeded,
            WebhookDeliveryStatus::Failed => Self::Failed,
        }
    }
}

/// One event on its way to one webhook, with the outcome of its last attempt.
pub struct WebhookDelivery {
    pub delivery: webhook_delivery::Model,
    pub event_type: Option<String>,
}

/// One event on its way to one webhook, with the outcome of its last attempt.
#[Object]
impl WebhookDelivery {
    /// Its id (pass it to `redeliverWebhookEvent`).
    async fn id(&self) -> ID {
        ID(self.delivery.id.to_string())
    }

    /// The webhook it goes to.
    async fn webhook_id(&self) -> ID {
        ID(self.delivery.webhook_id.to_string())
    }

    /// The event's id: the `webhook-id` header, the same on every attempt.
    async fn event_id(&self) -> ID {
        ID(self.delivery.event_id.to_string())
    }

    /// The event's type; null once the event is past the retention period.
    async fn event_type(&self) -> Option<&str> {
        self.event_type.as_deref()
    }

    /// The product the event is about.
    async fn product_id(&self) -> ID {
        ID(self.delivery.product_id.to_string())
    }

    /// Where it stands.
    async fn status(&self) -> WebhookDeliveryStatus {
        self.delivery.status.into()
    }

    /// Attempts made so far.
    async fn attempts(&self) -> i32 {
        self.delivery.attempts
    }

    /// When the next attempt is due (while pending).
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.delivery.status == DeliveryStatus::Pending).then_some(self.delivery.next_attempt_at)
    }

    /// The HTTP status of the last answer, if one came.
    async fn last_status_code(&self) -> Option<i32> {
        self.delivery.last_status_code
    }

    /// Why the last attempt failed (a status, a timeout, a refused target).
    async fn last_error(&self) -> Option<&str> {
        self.delivery.last_error.as_deref()
    }

    /// The first bytes of the last answer's body.
    async fn last_response(&self) -> Option<&str> {
        self.delivery.last_response.as_deref()
    }

    /// When the event was committed and the delivery written.
    async fn created_at(&self) -> DateTime<Utc> {
        self.delivery.created_at
    }

    /// When it succeeded or finally failed.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.delivery.finished_at
    }
}

/// A delivery and its cursor.
#[derive(SimpleObject)]
pub struct WebhookDeliveryEdge {
    /// Pass as `after` to continue after this delivery.
    pub cursor: String,
    /// The delivery.
    pub node: WebhookDelivery,
}

/// A page of a webhook's deliveries, newest first.
#[derive(SimpleObject)]
pub struct WebhookDeliveryConnection {
    /// The deliveries with their cursors.
    pub edges: Vec<WebhookDeliveryEdge>,
    /// Where this page is.
    pub page_info: PageInfo,
}

/// A webhook to create.
#[derive(InputObject)]
pub struct CreateWebhookInput {
    /// Where events are POSTed: `http` or `https`, not on a loopback, private or link-local
    /// address (unless the server allows private targets).
    pub url: String,
    /// The event types to receive (`stock.changed`, `stock.low`, `stock.out`,
    /// `stock.restocked`, `lot.expired`, `product.created`, `product.updated`,
    /// `product.deleted`); empty or absent: every type.
    pub event_types: Option<Vec<String>>,
    /// What it is for (at most 500 characters).
    pub description: Option<String>,
}

impl From<CreateWebhookInput> for NewWebhook {
    fn from(input: CreateWebhookInput) -> Self {
        NewWebhook {
            url: input.url,
            event_types: input.event_types.unwrap_or_default(),
            description: input.description,
        }
    }
}

/// Changes to a webhook; absent fields stay as they are.
#[derive(InputObject)]
pub struct UpdateWebhookInput {
    /// A new URL (checked like a new webhook's).
    pub url: Option<String>,
    /// New event types; empty: every type.
    pub event_types: Option<Vec<String>>,
    /// A new description.
    pub description: Option<String>,
    /// `true` turns a disabled webhook back on; `false` stops it (events committed while it
    /// is off are not sent to it).
    pub enabled: Option<bool>,
}

impl From<UpdateWebhookInput> for WebhookChanges {
    fn from(input: UpdateWebhookInput) -> Self {
        WebhookChanges {
            url: input.url,
            event_types: input.event_types,
            description: input.description,
            enabled: input.enabled,
        }
    }
}
