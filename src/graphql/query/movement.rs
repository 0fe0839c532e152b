//! Ledger queries.

use async_graphql::{Context, ID, Object, Result};

use crate::graphql::context::ContextExt;
use crate::graphql::types::{
    MovementCursor, PageArguments, PageRequest, ProductLedger, StockMovementConnection, page_cost,
    parse_id,
};
use crate::service::MovementFilter;

/// Reading the stock ledger.
#[derive(Default)]
pub struct MovementQuery;

#[Object]
impl MovementQuery {
    /// The audit trail of stock movements, newest first: of one product (in exact commit order)
    /// or of all products.
    #[graphql(complexity = "page_cost(first.or(last), child_complexity)")]
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn stock_movements(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this product's movements (deleted products keep theirs).")]
        product_id: Option<ID>,
        #[graphql(desc = "Page size: 20 when omitted, at most 100.")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor (a previous page's `endCursor`).")]
        after: Option<String>,
        #[graphql(desc = "Page backward: this many items, 20 when omitted, at most 100.")]
        last: Option<i32>,
        #[graphql(desc = "Page backward: the items before this cursor (a page's `startCursor`).")]
        before: Option<String>,
        #[graphql(desc = "Only movements that touched this location.")] location_id: Option<ID>,
        #[graphql(desc = "Only movements that touched a lot with this code.")] lot_code: Option<
            String,
        >,
    ) -> Result<StockMovementConnection> {
        let product_id = product_id
            .as_ref()
            .map(|id| parse_id("productId", id))
            .transpose()?;
        let filter = MovementFilter {
            product_id,
            location_id: location_id
                .as_ref()
                .map(|id| parse_id("locationId", id))
                .transpose()?,
            lot_code,
        };
        let filtered = filter.location_id.is_some() || filter.lot_code.is_some();
        let page = PageRequest::<MovementCursor>::parse(PageArguments {
            first,
            after: after.as_deref(),
            last,
            before: before.as_deref(),
        })?;
        let mut movements = ctx
            .services()?
            .stock
            .movements(
                &filter,
                page.cursor.as_ref().map(|cursor| cursor.0),
                page.direction,
                page.size + 1,
            )
            .await?;
        let connection = StockMovementConnection::from_page(
            &mut movements,
            &page,
            product_id.map(|product_id| ProductLedger {
                product_id,
                listing: None,
            }),
        );
        Ok(if filtered {
            connection.limited_to(filter)
        } else {
            connection
        })
    }
}
