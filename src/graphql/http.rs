//! `/graphql` over HTTP: `POST` runs queries and mutations (batches capped), `GET` runs
//! queries only (or serves GraphiQL to a browser). Credentials are checked before anything runs.

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse, Request};
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLBatchRequest, GraphQLRequest, GraphQLResponse};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::errors::SYSTEM_FAILURE_CODES;
use super::{AppSchema, GraphqlSettings};
use crate::auth::Authenticator;
use crate::error::Error;
use crate::telemetry::REQUEST_ID;

/// `POST /graphql`: one operation, or a batch of at most `max_batch_size`.
pub async fn graphql_post(
    State(schema): State<AppSchema>,
    State(authenticator): State<Authenticator>,
    State(settings): State<GraphqlSettings>,
    headers: HeaderMap,
    request: Result<GraphQLBatchRequest, GraphQLRejection>,
) -> Response {
    // Only a JSON body may run: a web page can post `text/plain`, form or multipart bodies to
    // any address without asking (no CORS preflight), and must never run a mutation that way.
    if !is_json(&headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "send GraphQL requests with `Content-Type: application/json`",
        );
    }
    let caller = match authenticator.authenticate(authorization(&headers)) {
        Ok(caller) => caller,
        Err(error) => return unauthorized(&error),
    };
    let batch = match request {
        Ok(request) => request.into_inner(),
        Err(rejection) => return rejection_response(rejection),
    };
    if let BatchRequest::Batch(requests) = &batch
        && requests.len() > settings.max_batch_size
    {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            &format!(
                "a batch may hold at most {} operations (got {})",
                settings.max_batch_size,
                requests.len()
            ),
        );
    }
    let response = match schema.execute_batch(batch.data(caller)).await {
        BatchResponse::Single(response) => {
            BatchResponse::Single(with_request_id(response, &headers))
        }
        BatchResponse::Batch(responses) => BatchResponse::Batch(
            responses
                .into_iter()
                .map(|response| with_request_id(response, &headers))
                .collect(),
        ),
    };
    GraphQLResponse::from(response).into_response()
}

/// `GET /graphql`: GraphiQL for a browser, or a query from the URL. Mutations (and
/// subscriptions) are refused over GET, so a link or an image tag can never change stock.
pub async fn graphql_get(
    State(schema): State<AppSchema>,
    State(authenticator): State<Authenticator>,
    State(settings): State<GraphqlSettings>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    if raw_query.as_deref().is_none_or(str::is_empty) {
        return if settings.graphiql {
            graphiql().into_response()
        } else {
            error_response(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "GraphiQL is switched off; send queries with POST",
            )
        };
    }
    let caller = match authenticator.authenticate(authorization(&headers)) {
        Ok(caller) => caller,
        Err(error) => return unauthorized(&error),
    };
    let request = match request {
        Ok(request) => request.into_inner(),
        Err(rejection) => return rejection_response(rejection),
    };
    if !is_query(&request) {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_USER_INPUT",
            "only queries may be sent with GET; send mutations and subscriptions with POST",
        );
    }
    let response = schema.execute(request.data(caller)).await;
    GraphQLResponse::from(with_request_id(response, &headers)).into_response()
}

/// Whether the body is declared as JSON (`application/json`, any parameters, any letter case).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Names the request (its `x-request-id`, set by the request-id layer) in every error that is
/// a failure of the system, so that an operator can find the log line with the cause.
fn with_request_id(
    mut response: async_graphql::Response,
    headers: &HeaderMap,
) -> async_graphql::Response {
    let Some(request_id) = headers.get(REQUEST_ID).and_then(|id| id.to_str().ok()) else {
        return response;
    };
    for error in &mut response.errors {
        let Some(extensions) = error.extensions.as_mut() else {
            continue;
        };
        let failed = matches!(
            extensions.get("code"),
            Some(async_graphql::Value::String(code)) if SYSTEM_FAILURE_CODES.contains(&code.as_str())
        );
        if failed {
            extensions.set("requestId", request_id);
        }
    }
    response
}

/// Whether the operation a request would run is a query. A document that does not parse
/// counts as a query: executing it just reports the syntax error.
fn is_query(request: &Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return true;
    };
    let mut operations = document.operations.iter();
    let selected = match &request.operation_name {
        Some(name) => {
            operations.find(|(operation, _)| operation.is_some_and(|op| op.as_str() == name))
        }
        None => operations.next(),
    };
    selected.is_none_or(|(_, operation)| operation.node.ty == OperationType::Query)
}

/// The request's `Authorization` header, if any.
fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or_default())
}

/// The `401` answer to credentials that do not verify.
fn unauthorized(error: &Error) -> Response {
    let mut response = error_response(StatusCode::UNAUTHORIZED, error.code(), &error.to_string());
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// A body that is not a GraphQL request: a GraphQL-shaped error, never the framework's text.
fn rejection_response(rejection: GraphQLRejection) -> Response {
    use async_graphql::ParseRequestError;
    let status = match &rejection.0 {
        ParseRequestError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ParseRequestError::Io(error) if is_length_limit(error) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "the request body is too large".to_owned()
    } else {
        format!("invalid GraphQL request: {}", rejection.0)
    };
    error_response(status, "BAD_USER_INPUT", &message)
}

fn is_length_limit(error: &std::io::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = error.get_ref().map(|e| e as _);
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = current.source();
    }
    false
}

/// A GraphQL-shaped error response: `{ "errors": [{ "message", "extensions": { "code" } }] }`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    (status, axum::Json(body)).into_response()
}

/// The GraphiQL explorer, wired to `/graphql` and `/graphql/ws`.
fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Stockroom")
            .finish(),
    )
}
