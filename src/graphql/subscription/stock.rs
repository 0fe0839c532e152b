//! Live stock events over WebSocket.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::{Context, ID, Result, Subscription};
use futures::{Stream, StreamExt, future};
use uuid::Uuid;

use crate::events::StockEvent;
use crate::graphql::context::ContextExt;
use crate::graphql::fanout::RenderPosition;
use crate::graphql::types::{Lot, LowStockEvent, StockMovement, parse_id};

/// Live stock events.
#[derive(Default)]
pub struct StockSubscription;

#[Subscription]
impl StockSubscription {
    /// An event after every committed change that leaves a product `LOW_STOCK` (a reduction,
    /// or a new reorder level), in commit order per product. If this subscription falls too far
    /// behind, or the server's event source is interrupted, it ends with an error whose
    /// `extensions.resubscribe` is true.
    async fn low_stock(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only these products (all when omitted).")] product_ids: Option<Vec<ID>>,
    ) -> Result<impl Stream<Item = Result<LowStockEvent>> + use<>> {
        let wanted = parse_ids(product_ids)?;
        Ok(events(ctx, wanted)?.filter_map(|event| {
            future::ready(match event {
                Ok(event) if event.is_low() => Some(Ok(LowStockEvent(event))),
                Ok(_) => None,
                Err(error) => Some(Err(error)),
            })
        }))
    }

    /// Every committed stock movement, in commit order per product. Ends with an error like
    /// `lowStock` does when events could be missed.
    async fn stock_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only these products (all when omitted).")] product_ids: Option<Vec<ID>>,
    ) -> Result<impl Stream<Item = Result<StockMovement>> + use<>> {
        let wanted = parse_ids(product_ids)?;
        Ok(events(ctx, wanted)?.filter_map(|event| {
            future::ready(match event {
                Ok(event) => event.movement.clone().map(|movement| {
                    Ok(StockMovement::with_product(
                        movement,
                        event.product.to_model(),
                    ))
                }),
                Err(error) => Some(Err(error)),
            })
        }))
    }

    /// A lot that has passed its date (once per lot, when the server notices: on the next
    /// write to the product or the background check, shortly after midnight UTC). Its units
    /// stay on hand as `expired` until written off. Ends with an error like `lowStock` does
    /// when events could be missed.
    async fn lot_expired(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only these products (all when omitted).")] product_ids: Option<Vec<ID>>,
    ) -> Result<impl Stream<Item = Result<Lot>> + use<>> {
        let wanted = parse_ids(product_ids)?;
        Ok(events(ctx, wanted)?.filter_map(|event| {
            future::ready(match event {
                Ok(event) => event.lot.as_ref().map(|lot| Ok(Lot(lot.to_model()))),
                Err(error) => Some(Err(error)),
            })
        }))
    }
}

fn parse_ids(ids: Option<Vec<ID>>) -> Result<Option<HashSet<Uuid>>> {
    Ok(ids
        .map(|ids| {
            ids.iter()
                .map(|id| parse_id("productIds", id))
                .collect::<Result<HashSet<_>, _>>()
        })
        .transpose()?)
}

/// The bus's events for the wanted products; a lost subscription becomes its last item, an
/// error (mapped to a code by `ErrorCodes`). The WebSocket transport holds the connection's
/// subscription slot and ends the subscription when the caller's token expires.
fn events(
    ctx: &Context<'_>,
    wanted: Option<HashSet<Uuid>>,
) -> Result<impl Stream<Item = Result<Arc<StockEvent>>> + use<>> {
    // In a shared execution: where to note which event the next response is made of.
    let position = ctx.data_opt::<RenderPosition>().cloned();
    Ok(ctx
        .services()?
        .events()
        .subscribe_with_positions()
        .filter_map(move |event| {
            future::ready(match event {
                // Catalogue-only changes keep caches current; no subscription shows them.
                Ok((_, event)) if event.quiet => None,
                Ok((at, event)) => wanted
                    .as_ref()
                    .is_none_or(|ids| ids.contains(&event.product.id))
                    .then(|| {
                        if let Some(position) = &position {
                            position.set(at);
                        }
                        Ok(event)
                    }),
                Err(lost) => Some(Err(lost.into())),
            })
        }))
}
