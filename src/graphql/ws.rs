//! `GET /graphql/ws`: GraphQL subscriptions over WebSocket, in both the `graphql-transport-ws`
//! and the legacy `graphql-ws` subprotocol.

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;

use super::AppSchema;
use crate::service::Actor;

/// Upgrades to a WebSocket and serves subscriptions on it until the client leaves; every
/// stream it opened is dropped with the connection.
pub async fn graphql_ws(
    State(schema): State<AppSchema>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(|_payload| async {
                    let mut data = Data::default();
                    data.insert(Actor::anonymous());
                    Ok(data)
                })
                .serve()
        })
}
