//! `/graphql` over HTTP, as the GraphQL-over-HTTP specification describes it: `POST` runs
//! queries and mutations (batches capped), `GET` runs queries only (or serves GraphiQL to a
//! browser). Credentials are checked before anything runs.
//!
//! Media types: a client that accepts `application/graphql-response+json` gets it; one that
//! accepts `application/json`, `*/*` or sends no `Accept` gets `application/json`; anything else
//! is `406`. A body or parameters that are not a GraphQL request are `400`. A document that does
//! not parse or validate, or variables that do not coerce, are `400` without a `data` entry
//! under the new media type and `200` with `errors` under `application/json`, as the
//! specification asks.

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse, Request, Variables};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::errors::{REQUEST_ERROR_CODES, SYSTEM_FAILURE_CODES};
use super::{AppSchema, GraphqlSettings};
use crate::auth::Authenticator;
use crate::error::Error;
use crate::telemetry::REQUEST_ID;

/// The media type of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MediaType {
    /// `application/json`: errors of the request itself are `200` with `errors`.
    Json,
    /// `application/graphql-response+json`: errors of the request itself are `4xx`, no `data`.
    GraphqlResponse,
}

impl MediaType {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            MediaType::Json => "application/json; charset=utf-8",
            MediaType::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        })
    }

    /// The media type the client asks for in `Accept`, in its order of preference; `None`
    /// when it accepts neither.
    fn negotiate(headers: &HeaderMap) -> Option<Self> {
        let Some(accept) = headers.get(header::ACCEPT) else {
            return Some(MediaType::Json);
        };
        let accept = accept.to_str().ok()?;
        if accept.trim().is_empty() {
            return Some(MediaType::Json);
        }
        let mut ranges: Vec<(f32, usize, MediaType)> = accept
            .split(',')
            .enumerate()
            .filter_map(|(position, range)| {
                let mut parts = range.split(';');
                let essence = parts.next()?.trim().to_ascii_lowercase();
                let quality = parts
                    .filter_map(|parameter| parameter.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                let media = match essence.as_str() {
                    "application/graphql-response+json" => MediaType::GraphqlResponse,
                    "application/json" | "application/*" | "*/*" => MediaType::Json,
                    _ => return None,
                };
                (quality > 0.0).then_some((quality, position, media))
            })
            .collect();
        // Highest quality first; among equals, the client's order.
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranges.first().map(|(_, _, media)| *media)
    }
}

/// `POST /graphql`: one operation, or a batch of at most `max_batch_size`.
pub async fn graphql_post(
    State(schema): State<AppSchema>,
    State(authenticator): State<Authenticator>,
    State(settings): State<GraphqlSettings>,
    headers: HeaderMap,
    body: Bytes,
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
    let Some(media) = MediaType::negotiate(&headers) else {
        return not_acceptable();
    };
    let caller = match authenticator.authenticate(authorization(&headers)) {
        Ok(caller) => caller,
        Err(error) => return unauthorized(&error),
    };
    let batch = match parse_body(&body) {
        Ok(batch) => batch,
        Err(message) => return request_error(media, &message),
    };
    if let BatchRequest::Batch(requests) = &batch
        && requests.len() > settings.max_batch_size
    {
        return request_error(
            media,
            &format!(
                "a batch may hold at most {} operations (got {})",
                settings.max_batch_size,
                requests.len()
            ),
        );
    }
    let response = schema.execute_batch(batch.data(caller)).await;
    respond(media, response, &headers)
}

/// `GET /graphql`: GraphiQL for a browser, or a query from the URL (`query`, `operationName`,
/// and `variables` / `extensions` as JSON text). Mutations (and subscriptions) are refused over
/// GET, so a link or an image tag can never change stock.
pub async fn graphql_get(
    State(schema): State<AppSchema>,
    State(authenticator): State<Authenticator>,
    State(settings): State<GraphqlSettings>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let Some(raw_query) = raw_query.filter(|raw| !raw.is_empty()) else {
        return if settings.graphiql {
            super::graphiql::page().into_response()
        } else {
            error_response(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "GraphiQL is switched off; send queries with POST",
            )
        };
    };
    let Some(media) = MediaType::negotiate(&headers) else {
        return not_acceptable();
    };
    let caller = match authenticator.authenticate(authorization(&headers)) {
        Ok(caller) => caller,
        Err(error) => return unauthorized(&error),
    };
    let request = match parse_url_parameters(&raw_query) {
        Ok(request) => request,
        Err(message) => return request_error(media, &message),
    };
    if request.query.is_empty() {
        // Whether a hash stands for a query or a mutation is known only once it is looked up,
        // and GET must never run a mutation: hashes alone come with POST.
        return request_error(
            media,
            "a persisted query sent with GET must carry its text; send its hash alone with POST",
        );
    }
    if !is_query(&request) {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_USER_INPUT",
            "only queries may be sent with GET; send mutations and subscriptions with POST",
        );
    }
    let response = schema.execute(request.data(caller)).await;
    respond(media, BatchResponse::Single(response), &headers)
}

/// A JSON body: one request object, or an array of them (a batch).
fn parse_body(body: &[u8]) -> Result<BatchRequest, String> {
    if body.is_empty() {
        return Err("the request has no body; send a JSON object with a `query`".to_owned());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| format!("the body is not valid JSON: {error}"))?;
    match value {
        Value::Object(parameters) => Ok(BatchRequest::Single(parse_parameters(parameters)?)),
        Value::Array(items) if !items.is_empty() => items
            .into_iter()
            .map(|item| match item {
                Value::Object(parameters) => parse_parameters(parameters),
                _ => Err("every request of a batch must be a JSON object".to_owned()),
            })
            .collect::<Result<_, _>>()
            .map(BatchRequest::Batch),
        _ => Err("the body must be a JSON object with a `query` (or an array of them)".to_owned()),
    }
}

/// The parameters of a GET request's URL.
fn parse_url_parameters(raw_query: &str) -> Result<Request, String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query)
        .map_err(|error| format!("the URL's parameters do not read: {error}"))?;
    let mut parameters = Map::new();
    for (name, text) in pairs {
        let value = match name.as_str() {
            "variables" | "extensions" => serde_json::from_str(&text)
                .map_err(|error| format!("`{name}` must be a JSON object: {error}"))?,
            _ => Value::String(text),
        };
        parameters.insert(name, value);
    }
    parse_parameters(parameters)
}

/// The request parameters of the specification: `query` (a string, required), and optional
/// `operationName` (string), `variables` and `extensions` (maps); `null` counts as absent.
fn parse_parameters(mut parameters: Map<String, Value>) -> Result<Request, String> {
    // An automatic persisted query may come as its hash alone (`extensions.persistedQuery`).
    let persisted = parameters
        .get("extensions")
        .and_then(|extensions| extensions.get("persistedQuery"))
        .is_some();
    let query = match parameters.remove("query") {
        Some(Value::String(query)) => query,
        None | Some(Value::Null) if persisted => String::new(),
        Some(_) => return Err("`query` must be a string".to_owned()),
        None => return Err("the request has no `query`".to_owned()),
    };
    let mut request = Request::new(query);
    match parameters.remove("operationName") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => request = request.operation_name(name),
        Some(_) => return Err("`operationName` must be a string".to_owned()),
    }
    match parameters.remove("variables") {
        None | Some(Value::Null) => {}
        Some(variables @ Value::Object(_)) => {
            request = request.variables(Variables::from_json(variables));
        }
        Some(_) => return Err("`variables` must be a map".to_owned()),
    }
    match parameters.remove("extensions") {
        None | Some(Value::Null) => {}
        Some(extensions @ Value::Object(_)) => {
            request.extensions = serde_json::from_value::<async_graphql::Extensions>(extensions)
                .map_err(|error| format!("`extensions` does not read: {error}"))?;
        }
        Some(_) => return Err("`extensions` must be a map".to_owned()),
    }
    Ok(request)
}

/// The answer to an executed request (or batch) in `media`.
fn respond(media: MediaType, response: BatchResponse, headers: &HeaderMap) -> Response {
    let mut response = match response {
        BatchResponse::Single(response) => {
            let request_error = request_error_status(&response);
            let body = ResponseBody::new(media, with_request_id(response, headers));
            let status = match (media, request_error) {
                (MediaType::GraphqlResponse, Some(status)) => status,
                _ => StatusCode::OK,
            };
            (status, axum::Json(body)).into_response()
        }
        BatchResponse::Batch(responses) => {
            let bodies: Vec<ResponseBody> = responses
                .into_iter()
                .map(|response| ResponseBody::new(media, with_request_id(response, headers)))
                .collect();
            (StatusCode::OK, axum::Json(bodies)).into_response()
        }
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.header());
    response
}

/// The status of a response that is an error of the request itself (nothing was executed):
/// `400`, or `401` / `403` when the caller may not run it; `None` for an executed response.
fn request_error_status(response: &async_graphql::Response) -> Option<StatusCode> {
    let code = |error: &async_graphql::ServerError| match error
        .extensions
        .as_ref()
        .and_then(|extensions| extensions.get("code"))
    {
        Some(async_graphql::Value::String(code)) => code.clone(),
        _ => String::new(),
    };
    let executed = !response
        .errors
        .iter()
        .all(|error| REQUEST_ERROR_CODES.contains(&code(error).as_str()) && error.path.is_empty());
    if response.errors.is_empty() || executed || response.data != async_graphql::Value::Null {
        return None;
    }
    Some(match code(&response.errors[0]).as_str() {
        "UNAUTHENTICATED" => StatusCode::UNAUTHORIZED,
        "FORBIDDEN" => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    })
}

/// A response as it is written, straight from the executor's value (fields keep the order of
/// the selection set); under `application/graphql-response+json` a request error has no
/// `data` entry at all.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum ResponseBody {
    /// The executor's response as it is.
    Executed(async_graphql::Response),
    /// A request error under `application/graphql-response+json`: errors only.
    Refused {
        /// Why nothing ran.
        errors: Vec<async_graphql::ServerError>,
    },
}

impl ResponseBody {
    fn new(media: MediaType, response: async_graphql::Response) -> Self {
        if media == MediaType::GraphqlResponse && request_error_status(&response).is_some() {
            ResponseBody::Refused {
                errors: response.errors,
            }
        } else {
            ResponseBody::Executed(response)
        }
    }
}

/// A request that is not a GraphQL request at all (no JSON, no `query`, parameters of the wrong
/// type): `400` in either media type.
fn request_error(media: MediaType, message: &str) -> Response {
    let mut response = error_response(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", message);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.header());
    response
}

fn not_acceptable() -> Response {
    error_response(
        StatusCode::NOT_ACCEPTABLE,
        "BAD_USER_INPUT",
        "accept `application/graphql-response+json` or `application/json`",
    )
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

/// A GraphQL-shaped error response: `{ "errors": [{ "message", "extensions": { "code" } }] }`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    (status, axum::Json(body)).into_response()
}

/// The GraphiQL explorer, wired to `/graphql` and `/graphql/ws`.
#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Option<MediaType> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        MediaType::negotiate(&headers)
    }

    #[test]
    fn the_media_type_follows_the_clients_preference() {
        assert_eq!(
            MediaType::negotiate(&HeaderMap::new()),
            Some(MediaType::Json)
        );
        assert_eq!(accept("application/json"), Some(MediaType::Json));
        assert_eq!(accept("*/*"), Some(MediaType::Json));
        assert_eq!(
            accept("application/graphql-response+json"),
            Some(MediaType::GraphqlResponse)
        );
        assert_eq!(
            accept("application/graphql-response+json, application/json;q=0.9"),
            Some(MediaType::GraphqlResponse)
        );
        assert_eq!(
            accept("application/json;q=0.9, application/graphql-response+json"),
            Some(MediaType::GraphqlResponse)
        );
        assert_eq!(
            accept("application/json, application/graphql-response+json"),
            Some(MediaType::Json)
        );
        assert_eq!(accept("text/html"), None);
        assert_eq!(accept("application/json;q=0"), None);
    }

    #[test]
    fn parameters_are_checked_as_the_specification_says() {
        let parse = |value: Value| match value {
            Value::Object(parameters) => parse_parameters(parameters).map(|_| ()),
            _ => unreachable!(),
        };
        assert!(parse(serde_json::json!({ "query": "{ a }", "variables": null })).is_ok());
        assert!(parse(serde_json::json!({ "qeury": "{ a }" })).is_err());
        for invalid in [
            serde_json::json!(0),
            serde_json::json!(false),
            serde_json::json!(["a"]),
        ] {
            assert!(parse(serde_json::json!({ "query": invalid.clone() })).is_err());
            assert!(
                parse(serde_json::json!({ "query": "{ a }", "operationName": invalid.clone() }))
                    .is_err()
            );
            assert!(
                parse(serde_json::json!({ "query": "{ a }", "variables": invalid.clone() }))
                    .is_err()
            );
            assert!(parse(serde_json::json!({ "query": "{ a }", "extensions": invalid })).is_err());
        }
        assert!(parse_body(b"[5]").is_err(), "a batch holds objects only");
        assert!(parse_body(b"{ \"not JSON").is_err());
        assert!(parse_body(b"").is_err());
    }
}
