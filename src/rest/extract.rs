//! Extractors whose failures answer in the documented REST error body, never axum's plain text.

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::ApiError;
use super::error::invalid_body;
use crate::auth::{Authenticator, Caller};
use crate::domain::IdempotencyKey;

/// A JSON object body; any rejection (wrong content type, bad JSON, a body that is not an
/// object, wrong field types) becomes a `400 BAD_USER_INPUT` in the documented REST error body.
/// (serde's derived structs would also accept a JSON array of the fields in order: `[5]` must
/// not add five units.)
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) =
            axum::Json::<serde_json::Value>::from_request(request, state).await?;
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "invalid request body: expected a JSON object",
            ));
        }
        // With the path, serde's message names the field ("quantity: invalid type: ...").
        serde_path_to_error::deserialize(value)
            .map(JsonBody)
            .map_err(|error| ApiError::bad_request(invalid_body(&error.to_string())))
    }
}

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
