//! `POST /products/bulk-update`: the `syncStock` mutation over REST, same input and result.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;

use super::ApiError;
use super::extract::{JsonBody, idempotency_key};
use crate::auth::Caller;
use crate::auth::policy::authorize;
use crate::domain::IdempotencyKey;
use crate::service::{Services, SyncRequest, SyncResult};

/// Applies a sync: `200` with the result, also when rows failed (each row says why). The key
/// may come in the body (`idempotencyKey`) or the `Idempotency-Key` header; both must agree.
pub async fn bulk_update(
    State(services): State<Services>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(mut request): JsonBody<SyncRequest>,
) -> Result<Json<SyncResult>, ApiError> {
    let actor = authorize(&caller, "syncStock")?;
    if let Some(header_key) = idempotency_key(&headers)? {
        let body_key = IdempotencyKey::parse(request.idempotency_key.as_deref())?;
        match body_key {
            Some(body_key) if body_key.as_str() != header_key.as_str() => {
                return Err(ApiError::bad_request(
                    "the Idempotency-Key header and the body's idempotencyKey differ",
                ));
            }
            _ => request.idempotency_key = Some(header_key.as_str().to_owned()),
        }
    }
    Ok(Json(services.sync.sync(request, actor).await?))
}
