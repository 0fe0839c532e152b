//! Webhook queries (admin): the webhooks and their delivery log.

use async_graphql::{Context, ID, Object, Result};

use crate::error::Error;
use crate::graphql::context::ContextExt;
use crate::graphql::types::{
    PageInfo, Webhook, WebhookDelivery, WebhookDeliveryConnection, WebhookDeliveryEdge,
    WebhookDeliveryStatus, page_cost, parse_id,
};

/// Most deliveries one page returns.
const MAX_PAGE: i32 = 100;

/// Reading webhooks.
#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// Every webhook, oldest first (secrets are never shown again).
    async fn webhooks(&self, ctx: &Context<'_>) -> Result<Vec<Webhook>> {
        Ok(ctx
            .services()?
            .webhooks
            .list()
            .await?
            .into_iter()
            .map(Webhook)
            .collect())
    }

    /// A webhook's deliveries, newest first, optionally only those in `status`. `first`
    /// defaults to 20 (at most 100). Errors: `BAD_USER_INPUT` (bad id, `first` out of range,
    /// a cursor not from this list).
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
        status: Option<WebhookDeliveryStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<WebhookDeliveryConnection> {
        let webhook_id = parse_id("webhookId", &webhook_id)?;
        let first = first.unwrap_or(20);
        if !(0..=MAX_PAGE).contains(&first) {
            return Err(Error::bad_field("first", format!("must be 0..={MAX_PAGE}")).into());
        }
        let after = after
            .map(|cursor| parse_id("after", &ID(cursor)))
            .transpose()?;
        let (rows, more) = ctx
            .services()?
            .webhooks
            .deliveries(webhook_id, status.map(Into::into), first as u64, after)
            .await?;
        let edges: Vec<WebhookDeliveryEdge> = rows
            .into_iter()
            .map(|(delivery, event_type)| WebhookDeliveryEdge {
                cursor: delivery.id.to_string(),
                node: WebhookDelivery {
                    delivery,
                    event_type,
                },
            })
            .collect();
        Ok(WebhookDeliveryConnection {
            page_info: PageInfo {
                has_next_page: more,
                has_previous_page: after.is_some(),
                start_cursor: edges.first().map(|edge| edge.cursor.clone()),
                end_cursor: edges.last().map(|edge| edge.cursor.clone()),
            },
            edges,
        })
    }
}
