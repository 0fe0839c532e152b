//! Extractors whose failures answer in the documented REST error body, never axum's plain text.

use axum::extract::{FromRef, FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use uuid::Uuid;

use super::ApiError;
use crate::auth::{Authenticator, Caller};
use crate::domain::IdempotencyKey;

/// A JSON body; any rejection (wrong content type, bad JSON, wrong field types) becomes a
/// `400 BAD_USER_INPUT` in the documented REST error body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// The optional `Idempotency-Key` header, validated like GraphQL's `idempotencyKey`.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::bad_request("the Idempotency-Key header must be visible ASCII"))?;
    Ok(IdempotencyKey::parse(Some(value))?)
}

/// Parses a product id from the path. A malformed id names no product: `404`.
pub fn product_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no product has the id '{raw}'")))
}

/// The caller of a REST request, from its `Authorization` header: a token that does not verify
/// is a `401` before the handler runs.
impl<S> FromRequestParts<S> for Caller
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|value| value.to_str().unwrap_or_default());
        Ok(Authenticator::from_ref(state).authenticate(authorization)?)
    }
}
