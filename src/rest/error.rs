//! REST errors: the documented body `{ "error": true, "message", "code" }` with a status code
//! for every domain error, and for every way a request can be malformed.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

/// An error answered in the documented REST error body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: bool,
    message: &'a str,
    code: &'a str,
}

impl ApiError {
    /// A `400 BAD_USER_INPUT`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "BAD_USER_INPUT",
            message: message.into(),
        }
    }

    /// A `413` for a body over the size limit.
    pub fn payload_too_large() -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "BAD_USER_INPUT",
            message: "the request body is too large".to_owned(),
        }
    }

    /// A `405` for a known path asked with the wrong method.
    pub fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "BAD_USER_INPUT",
            message: "this endpoint does not accept that method".to_owned(),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A `404 NOT_FOUND` for a path that names nothing.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "NOT_FOUND",
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::BadUserInput { .. }
            | Error::InsufficientStock { .. }
            | Error::StockLimitExceeded => StatusCode::BAD_REQUEST,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::SkuConflict(_)
            | Error::VersionConflict { .. }
            | Error::IdempotencyKeyReused
            | Error::ReservationNotActive(_)
            | Error::LocationNotEmpty(_) => StatusCode::CONFLICT,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Timeout => StatusCode::REQUEST_TIMEOUT,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error.log_cause();
        Self {
            status,
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "expected a JSON body with `Content-Type: application/json`".to_owned()
            }
            JsonRejection::JsonSyntaxError(_) => "the body is not valid JSON".to_owned(),
            JsonRejection::JsonDataError(error) => invalid_body(&innermost_cause(error)),
            JsonRejection::BytesRejection(_) => "the body could not be read".to_owned(),
            _ => "the body could not be read".to_owned(),
        };
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            code: "BAD_USER_INPUT",
            message,
        }
    }
}

/// serde's own words name the field and what was wrong with it, e.g. "quantity: invalid type:
/// floating point `1.5`, expected i32"; the Rust type name is put in the API's terms.
pub(super) fn invalid_body(serde_message: &str) -> String {
    format!(
        "invalid request body: {}",
        serde_message.replace(
            "expected i32",
            "expected a whole number from -2147483648 to 2147483647"
        )
    )
}

fn innermost_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: true,
            message: &self.message,
            code: self.code,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
