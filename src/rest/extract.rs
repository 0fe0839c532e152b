//! Extractors whose failures answer in the contract's error body, never axum's plain text.

use axum::extract::FromRequest;
use uuid::Uuid;

use super::ApiError;

/// A JSON body; any rejection (wrong content type, bad JSON, wrong field types) becomes a
/// `400 BAD_USER_INPUT` in the contract's shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// Parses a product id from the path. A malformed id names no product: `404`.
pub fn product_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no product has the id '{raw}'")))
}
