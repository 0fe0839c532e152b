//! Live stock events over WebSocket.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::{Context, ID, Result, Subscription};
use futures::{Stream, StreamExt, future};
use uuid::Uuid;

use crate::events::StockEvent;
use crate::graphql::context::ContextExt;
use crate::graphql::guard::Requires;
use crate::graphql::types::{LowStockEvent, StockMovement, parse_id};

/// Live stock events.
#[derive(Default)]
pub struct StockSubscription;

#[Subscription]
impl StockSubscription {
    /// An event after every committed change that leaves a product `LOW_STOCK` (a reduction,
    /// or a new reorder level), in commit order per product. If this subscription falls too far
    /// behind, or the server's event source is interrupted, it ends with an error whose
    /// `extensions.resubscribe` is true.
    #[graphql(guard = "Requires(\"lowStock\")")]
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
    #[graphql(guard = "Requires(\"stockChanged\")")]
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
}

fn parse_ids(ids: Option<Vec<ID>>) -> Result<Option<HashSet<Uuid>>> {
    Ok(ids
        .map(|ids| ids.iter().map(parse_id).collect::<Result<HashSet<_>, _>>())
        .transpose()?)
}

/// The bus's events for the wanted products; a lost subscription becomes its last item, an
/// error (mapped to a code by `ContractErrorCodes`).
fn events(
    ctx: &Context<'_>,
    wanted: Option<HashSet<Uuid>>,
) -> Result<impl Stream<Item = Result<Arc<StockEvent>>> + use<>> {
    let stream = ctx.services()?.events().subscribe();
    Ok(stream.filter_map(move |event| {
        future::ready(match event {
            Ok(event) => wanted
                .as_ref()
                .is_none_or(|ids| ids.contains(&event.product.id))
                .then_some(Ok(event)),
            Err(lost) => Some(Err(lost.into())),
        })
    }))
}
