//! Webhook mutations (admin): create, update, delete, redeliver.

use async_graphql::{Context, ID, Object, Result};

use crate::graphql::context::ContextExt;
use crate::graphql::types::{
    CreateWebhookInput, UpdateWebhookInput, Webhook, WebhookDelivery, WebhookWithSecret, parse_id,
};

/// Managing webhooks.
#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Creates a webhook; the answer carries its signing secret, shown this once. It receives
    /// the events of every change committed from now on. Errors: `BAD_USER_INPUT` (a URL that
    /// does not parse, is not http(s), or reaches a loopback, private or link-local address;
    /// an unknown event type; a description over 500 characters).
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> Result<Option<WebhookWithSecret>> {
        let created = ctx
            .services()?
            .webhooks
            .create(input.into())
            .await
            .map_err(|error| error.under("input"))?;
        Ok(Some(WebhookWithSecret(created)))
    }

    /// Changes a webhook's URL, event types, description, or turns it on or off (events
    /// committed while it is off are not sent to it). Errors as for `createWebhook`, and
    /// `BAD_USER_INPUT` for an unknown id.
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateWebhookInput,
    ) -> Result<Option<Webhook>> {
        let id = parse_id("id", &id)?;
        let updated = ctx
            .services()?
            .webhooks
            .update(id, input.into())
            .await
            .map_err(|error| match error {
                // An unknown id is about the `id` argument; everything else about `input`.
                crate::error::Error::BadUserInput { ref field, .. } if field == &["id"] => error,
                error => error.under("input"),
            })?;
        Ok(Some(Webhook(updated)))
    }

    /// Deletes a webhook and its delivery log; returns it as it was. Errors: `BAD_USER_INPUT`
    /// for an unknown id.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Webhook>> {
        let id = parse_id("id", &id)?;
        Ok(Some(Webhook(ctx.services()?.webhooks.delete(id).await?)))
    }

    /// Sends a delivery's event again as a new delivery (same `webhook-id`). Errors:
    /// `BAD_USER_INPUT` for an unknown delivery, or one whose event is past the retention
    /// period.
    async fn redeliver_webhook_event(
        &self,
        ctx: &Context<'_>,
        delivery_id: ID,
    ) -> Result<Option<WebhookDelivery>> {
        let id = parse_id("deliveryId", &delivery_id)?;
        let (delivery, event_type) = ctx.services()?.webhooks.redeliver(id).await?;
        Ok(Some(WebhookDelivery {
            delivery,
            event_type: Some(event_type),
        }))
    }
}
