//! Product queries.

use async_graphql::{Context, ID, Object, Result};

use crate::graphql::context::ContextExt;
use crate::graphql::types::{
    Cursor, PageArguments, PageRequest, Product, ProductConnection, ProductCursor, ProductEdge,
    ProductStatus, StockStatus, finish_page, page_cost, parse_id,
};
use crate::service::ProductFilter;

/// Reading the catalogue.
#[derive(Default)]
pub struct ProductQuery;

#[Object]
impl ProductQuery {
    /// A product by id; null when it does not exist or is deleted.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Product>> {
        let id = parse_id("id", &id)?;
        Ok(ctx.services()?.products.find(id).await?.map(Product::from))
    }

    /// The live product with this SKU, in any letter case; null when there is none.
    async fn product_by_sku(&self, ctx: &Context<'_>, sku: String) -> Result<Option<Product>> {
        Ok(ctx
            .services()?
            .products
            .find_by_sku(&sku)
            .await?
            .map(Product::from))
    }

    /// Products in creation order, a page at a time.
    #[graphql(complexity = "page_cost(first.or(last), child_complexity)")]
    // Each parameter is one of the field's GraphQL arguments.
    #[allow(clippy::too_many_arguments)]
    async fn products(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size: 20 when omitted, at most 100.")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor (a previous page's `endCursor`).")]
        after: Option<String>,
        #[graphql(desc = "Page backward: this many items, 20 when omitted, at most 100.")]
        last: Option<i32>,
        #[graphql(desc = "Page backward: the items before this cursor (a page's `startCursor`).")]
        before: Option<String>,
        #[graphql(desc = "Only products whose name or SKU contains this text, in any case.")]
        search: Option<String>,
        #[graphql(desc = "Only products with this status.")] status: Option<StockStatus>,
        #[graphql(desc = "Also list soft-deleted products.")] include_deleted: Option<bool>,
    ) -> Result<ProductConnection> {
        let page = PageRequest::<ProductCursor>::parse(PageArguments {
            first,
            after: after.as_deref(),
            last,
            before: before.as_deref(),
        })?;
        let filter = ProductFilter {
            search,
            status: status.map(Into::into),
            include_deleted: include_deleted.unwrap_or(false),
        };
        let mut products = ctx
            .services()?
            .products
            .list(
                &filter,
                page.cursor.as_ref().map(|cursor| cursor.0),
                page.direction,
                page.size + 1,
            )
            .await?;
        let page_info = finish_page(&mut products, &page, |product| ProductCursor(product.id));
        Ok(ProductConnection {
            edges: Product::listed(products)
                .into_iter()
                .map(|product| ProductEdge {
                    cursor: ProductCursor(product.0.id).encode(),
                    node: product,
                })
                .collect(),
            page_info,
            filter,
        })
    }

    /// A product's stock at a glance; null when it does not exist or is deleted.
    async fn product_status(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProductStatus>> {
        let id = parse_id("id", &id)?;
        match ctx.services()?.products.find(id).await? {
            Some(product) => Ok(Some(ProductStatus::of(&product)?)),
            None => Ok(None),
        }
    }
}
