//! `GET /graphql/ws`: GraphQL subscriptions over WebSocket, in both the `graphql-transport-ws`
//! and the legacy `graphql-ws` subprotocol. The bearer token travels in the `connection_init`
//! payload; without a valid one (when authentication is on) the connection is closed before
//! any subscription starts.
//!
//! A connection must send `connection_init` within the init timeout (else it is closed with
//! `4408`), is pinged every ping interval (a peer that answers nothing for three intervals is
//! closed), may run at most a set number of subscriptions at once, and each of its
//! subscriptions ends when the token it was opened with expires.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::{
    ALL_WEBSOCKET_PROTOCOLS, WebSocket as GraphqlWebSocket, WebSocketProtocols, WsMessage,
};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures::{SinkExt, StreamExt, future};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::AppSchema;
use crate::auth::Authenticator;
use crate::error::{Error, Result};

/// Limits of WebSocket connections.
#[derive(Clone, Copy, Debug)]
pub struct WebSocketSettings {
    /// How long a new connection may take to send `connection_init`.
    pub init_timeout: Duration,
    /// How often the server pings.
    pub ping_interval: Duration,
    /// Most subscriptions one connection may run at once.
    pub max_subscriptions: usize,
}

/// A connection's subscription slots: a subscription takes one while it runs.
#[derive(Clone)]
pub struct SubscriptionSlots(Arc<Semaphore>, usize);

impl SubscriptionSlots {
    fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)), max)
    }

    /// Takes a slot, or refuses when the connection runs its maximum already.
    pub fn take(&self) -> Result<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().map_err(|_| {
            Error::bad_input(format!(
                "a connection may run at most {} subscriptions at once; stop one or open another connection",
                self.1
            ))
        })
    }
}

/// Upgrades to a WebSocket and serves subscriptions on it until the client leaves; every
/// stream it opened is dropped with the connection.
pub async fn graphql_ws(
    State(schema): State<AppSchema>,
    State(authenticator): State<Authenticator>,
    State(settings): State<WebSocketSettings>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = subprotocol(&headers) else {
        return super::error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "ask for the `graphql-transport-ws` (or legacy `graphql-ws`) subprotocol",
        );
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // Subscribers send only small control messages, and thousands of them may be connected:
        // small buffers keep each connection to a few KiB instead of tungstenite's 128 KiB
        // default, and a small message limit refuses anything else.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .on_upgrade(move |socket| serve(socket, schema, authenticator, protocol, settings))
}

/// Runs one connection: GraphQL messages both ways, the init timeout and the pings.
async fn serve(
    socket: WebSocket,
    schema: AppSchema,
    authenticator: Authenticator,
    protocol: WebSocketProtocols,
    settings: WebSocketSettings,
) {
    let (mut sink, incoming) = socket.split();
    let last_heard = Arc::new(std::sync::Mutex::new(Instant::now()));
    let heard = last_heard.clone();
    let input = incoming
        .take_while(|message| future::ready(message.is_ok()))
        .filter_map(move |message| {
            if let Ok(mut last) = heard.lock() {
                *last = Instant::now();
            }
            future::ready(match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
                _ => None,
            })
        });
    let initialized = Arc::new(AtomicBool::new(false));
    let on_init = {
        let initialized = initialized.clone();
        move |payload: serde_json::Value| async move {
            let caller = authenticator.authenticate(authorization(&payload))?;
            // Every subscription needs an authenticated caller: refuse the connection now
            // rather than each subscription later.
            caller.actor()?;
            let mut data = Data::default();
            data.insert(caller);
            data.insert(SubscriptionSlots::new(settings.max_subscriptions));
            initialized.store(true, Ordering::Release);
            Ok::<_, async_graphql::Error>(data)
        }
    };
    let messages = GraphqlWebSocket::new(schema, input, protocol).on_connection_init(on_init);
    let mut messages = std::pin::pin!(messages);
    let init_deadline = tokio::time::sleep(settings.init_timeout);
    let mut init_deadline = std::pin::pin!(init_deadline);
    let mut pings = tokio::time::interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    loop {
        let outgoing = tokio::select! {
            message = messages.next() => match message {
                Some(WsMessage::Text(text)) => Message::Text(text.into()),
                Some(WsMessage::Close(code, reason)) => close(code, reason),
                None => break,
            },
            () = &mut init_deadline, if !initialized.load(Ordering::Acquire) => {
                close(4408, "Connection initialisation timeout".to_owned())
            }
            _ = pings.tick() => {
                let silent_for = last_heard.lock().map(|last| last.elapsed()).unwrap_or_default();
                if silent_for > settings.ping_interval * 3 {
                    close(1001, "no answer to keep-alive pings".to_owned())
                } else {
                    Message::Ping(Default::default())
                }
            }
        };
        let closing = matches!(outgoing, Message::Close(_));
        // A peer that takes nothing for a whole ping interval (its receive window full: it
        // stopped reading) is gone as far as this server is concerned; waiting on it forever
        // would also stop the pings and the init timeout from ever being checked again.
        let sent = tokio::time::timeout(settings.ping_interval, sink.send(outgoing)).await;
        if !matches!(sent, Ok(Ok(()))) || closing {
            break;
        }
    }
}

/// The first GraphQL subprotocol the client offers in `Sec-WebSocket-Protocol`.
fn subprotocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?
        .split(',')
        .find_map(|offered| offered.trim().parse().ok())
}

fn close(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// The `Authorization` entry of a `connection_init` payload, in any letter case.
fn authorization(payload: &serde_json::Value) -> Option<&str> {
    payload
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.as_str())
}
