//! `/products` handlers: parse the request, call the service, shape the answer.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ApiError;
use super::extract::{JsonBody, idempotency_key, product_id};
use crate::auth::Caller;
use crate::auth::policy::authorize;
use axum::http::HeaderMap;

use crate::domain::{Actor, Quantity, Reason};
use crate::entity::product;
use crate::error::Error;
use crate::service::{
    NewProduct, Services, StockChange, StockChangeRequest, StockDirection, StockStatus,
};

/// A product as the API shows it (the same fields and formats as GraphQL's `Product`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductBody {
    id: String,
    name: String,
    sku: String,
    stock: i64,
    reserved: i64,
    available: i64,
    reorder_level: i64,
    status: &'static str,
    version: i32,
    created_at: String,
    updated_at: String,
    deleted_at: Option<String>,
}

impl From<product::Model> for ProductBody {
    fn from(product: product::Model) -> Self {
        Self {
            id: product.id.to_string(),
            status: StockStatus::of(&product).as_str(),
            available: product.available(),
            created_at: product.created_at.to_rfc3339(),
            updated_at: product.updated_at.to_rfc3339(),
            deleted_at: product.deleted_at.map(|at| at.to_rfc3339()),
            name: product.name,
            sku: product.sku,
            stock: product.stock,
            reserved: product.reserved,
            reorder_level: product.reorder_level,
            version: product.version,
        }
    }
}

/// `POST /products`. Integer fields are GraphQL `Int`s: anything else is a 400.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProductRequest {
    name: String,
    sku: String,
    #[serde(default)]
    stock: i32,
    #[serde(default)]
    reorder_level: i32,
}

/// `PUT /products/:id/add` and `/reduce`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockChangeBodyRequest {
    quantity: i32,
    #[serde(default)]
    reason: Option<String>,
}

/// The REST reply to a stock change.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StockChangeBody {
    success: bool,
    product_id: String,
    new_stock: i64,
}

impl From<StockChange> for StockChangeBody {
    fn from(change: StockChange) -> Self {
        Self {
            success: true,
            product_id: change.product.id.to_string(),
            new_stock: change.product.stock,
        }
    }
}

/// `GET /products/:id/status`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductStatusBody {
    sku: String,
    stock: i64,
    reorder_level: i64,
    status: &'static str,
}

/// Creates a product: `201` with the product.
pub async fn create(
    State(services): State<Services>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateProductRequest>,
) -> Result<(StatusCode, Json<ProductBody>), ApiError> {
    let actor = authorize(&caller, "createProduct")?;
    let new = NewProduct::parse(
        &request.name,
        &request.sku,
        request.stock.into(),
        request.reorder_level.into(),
    )?;
    let product = services.products.create(new, actor).await?;
    Ok((StatusCode::CREATED, Json(product.into())))
}

/// A live product, or `404`.
pub async fn get(
    State(services): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ProductBody>, ApiError> {
    authorize(&caller, "product")?;
    let product = services.products.find(product_id(&id)?).await?;
    Ok(Json(product.ok_or(Error::NotFound)?.into()))
}

/// A live product's `{ sku, stock, reorderLevel, status }`, or `404`.
pub async fn status(
    State(services): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ProductStatusBody>, ApiError> {
    authorize(&caller, "productStatus")?;
    let product = services
        .products
        .find(product_id(&id)?)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Json(ProductStatusBody {
        status: StockStatus::of(&product).as_str(),
        sku: product.sku,
        stock: product.stock,
        reorder_level: product.reorder_level,
    }))
}

/// Adds stock: `200 { success, productId, newStock }`.
pub async fn add_stock(
    State(services): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<StockChangeBodyRequest>,
) -> Result<Json<StockChangeBody>, ApiError> {
    let actor = authorize(&caller, "addStock")?;
    change_stock(
        &services,
        actor,
        StockDirection::Add,
        &id,
        &headers,
        request,
    )
    .await
}

/// Reduces stock: `200 { success, productId, newStock }`, or `400` with "Not enough stock
/// available" when short.
pub async fn reduce_stock(
    State(services): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<StockChangeBodyRequest>,
) -> Result<Json<StockChangeBody>, ApiError> {
    let actor = authorize(&caller, "reduceStock")?;
    change_stock(
        &services,
        actor,
        StockDirection::Reduce,
        &id,
        &headers,
        request,
    )
    .await
}

async fn change_stock(
    services: &Services,
    actor: &Actor,
    direction: StockDirection,
    id: &str,
    headers: &HeaderMap,
    body: StockChangeBodyRequest,
) -> Result<Json<StockChangeBody>, ApiError> {
    let request = StockChangeRequest {
        product_id: product_id(id)?,
        direction,
        quantity: Quantity::parse(body.quantity.into())?,
        reason: Reason::parse(body.reason.as_deref())?,
        idempotency_key: idempotency_key(headers)?,
        location_id: None,
        lot: None,
    };
    let change = services.stock.change(request, actor).await?;
    Ok(Json(change.into()))
}

/// A product's stock in one location, as `GET /products/:id/stock` shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationStockBody {
    location_id: Uuid,
    code: String,
    name: String,
    stock: i64,
    reserved: i64,
    expired: i64,
    available: i64,
    lots: Vec<LotBody>,
}

/// A lot with units on hand, within [`LocationStockBody`].
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LotBody {
    id: Uuid,
    code: String,
    expires_on: Option<chrono::NaiveDate>,
    stock: i64,
    expired: bool,
}

/// `GET /products/:id/stock`: the product's totals and its stock per location (with the lots
/// there), or `404`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductStockBody {
    product_id: Uuid,
    sku: String,
    stock: i64,
    reserved: i64,
    expired: i64,
    available: i64,
    locations: Vec<LocationStockBody>,
}

/// A live product's stock per location and lot, or `404`.
pub async fn stock_by_location(
    State(services): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ProductStockBody>, ApiError> {
    authorize(&caller, "product")?;
    let product = services
        .products
        .find(product_id(&id)?)
        .await?
        .ok_or(Error::NotFound)?;
    let buckets = services.stock.buckets_of_products(&[product.id]).await?;
    let mut location_ids: Vec<Uuid> = buckets.iter().map(|bucket| bucket.location_id).collect();
    location_ids.sort_unstable();
    location_ids.dedup();
    let locations = services.locations.find_many(&location_ids).await?;
    let mut by_location: Vec<LocationStockBody> = Vec::new();
    for bucket in buckets {
        let index = match by_location
            .iter()
            .position(|entry| entry.location_id == bucket.location_id)
        {
            Some(index) => index,
            None => {
                let location = locations
                    .iter()
                    .find(|location| location.id == bucket.location_id)
                    .ok_or_else(|| Error::internal("a bucket's location is missing"))?;
                by_location.push(LocationStockBody {
                    location_id: location.id,
                    code: location.code.clone(),
                    name: location.name.clone(),
                    stock: 0,
                    reserved: 0,
                    expired: 0,
                    available: 0,
                    lots: Vec::new(),
                });
                by_location.len() - 1
            }
        };
        let entry = &mut by_location[index];
        entry.stock += bucket.stock;
        entry.reserved += bucket.reserved;
        entry.expired += bucket.expired_units();
        entry.available += bucket.available();
        if bucket.is_lot() && bucket.stock > 0 {
            entry.lots.push(LotBody {
                id: bucket.id,
                code: bucket.lot_code,
                expires_on: bucket.expires_on,
                stock: bucket.stock,
                expired: bucket.expired,
            });
        }
    }
    Ok(Json(ProductStockBody {
        product_id: product.id,
        sku: product.sku.clone(),
        stock: product.stock,
        reserved: product.reserved,
        expired: product.expired,
        available: product.available(),
        locations: by_location,
    }))
}
