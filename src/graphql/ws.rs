//! `GET /graphql/ws`: GraphQL subscriptions over WebSocket, in both the `graphql-transport-ws`
//! and the legacy `graphql-ws` subprotocol. The bearer token travels in the `connection_init`
//! payload; without a valid one (when authentication is on) the connection is closed before
//! any subscription starts.

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;

use super::AppSchema;
use crate::auth::Authenticator;

/// Upgrades to a WebSocket and serves subscriptions on it until the client leaves; every
/// stream it opened is dropped with the connection.
pub async fn graphql_ws(
    State(schema): State<AppSchema>,
    State(authenticator): State<Authenticator>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // Subscribers send only small control messages, and thousands of them may be connected:
        // small buffers keep each connection to a few KiB instead of tungstenite's 128 KiB
        // default, and a small message limit refuses anything else.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let caller = authenticator.authenticate(authorization(&payload))?;
                    // Every subscription needs an authenticated caller: refuse the
                    // connection now rather than each subscription later.
                    caller.actor()?;
                    let mut data = Data::default();
                    data.insert(caller);
                    Ok(data)
                })
                .serve()
        })
}

/// The `Authorization` entry of a `connection_init` payload, in any letter case.
fn authorization(payload: &serde_json::Value) -> Option<&str> {
    payload
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.as_str())
}
