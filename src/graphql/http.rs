//! `POST /graphql` and GraphiQL on `GET /graphql`.

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::AppSchema;
use crate::service::Actor;

/// Executes one GraphQL request. A body that is not a GraphQL request gets a GraphQL-shaped
/// `BAD_USER_INPUT` error, not the framework's plain-text rejection.
pub async fn graphql_handler(
    State(schema): State<AppSchema>,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    match request {
        Ok(request) => {
            let request = request.into_inner().data(Actor::anonymous());
            GraphQLResponse::from(schema.execute(request).await).into_response()
        }
        Err(rejection) => {
            let body = serde_json::json!({
                "errors": [{
                    "message": format!("invalid GraphQL request: {}", rejection.0),
                    "extensions": { "code": "BAD_USER_INPUT" },
                }]
            });
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
    }
}

/// The GraphiQL explorer, wired to `/graphql` and `/graphql/ws`.
pub async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Stockroom")
            .finish(),
    )
}
