//! A WebSocket GraphQL client for the tests, speaking either subprotocol.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::helpers::TestApp;

/// The two GraphQL-over-WebSocket subprotocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws` (the `graphql-ws` npm package, GraphiQL).
    TransportWs,
    /// The legacy `graphql-ws` (subscriptions-transport-ws).
    LegacyGraphqlWs,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::LegacyGraphqlWs => "graphql-ws",
        }
    }
}

/// What a subscription delivered.
#[derive(Debug)]
pub enum Delivery {
    /// A result: `{ data, errors? }`.
    Next(Value),
    /// The server completed the subscription.
    Complete,
}

/// One WebSocket connection with its subscriptions.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    protocol: Protocol,
}

impl WsClient {
    /// Connects to `app` and completes the handshake (`connection_init` → `connection_ack`),
    /// sending `app`'s token if it has one.
    pub async fn connect(app: &TestApp, protocol: Protocol) -> WsClient {
        let payload = match &app.token {
            Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
            None => json!({}),
        };
        Self::try_connect(app, protocol, payload)
            .await
            .expect("the server acknowledges the connection")
    }

    /// Connects and sends `connection_init` with `payload`; `Err` with what the server said
    /// (or `closed`) if it does not acknowledge.
    pub async fn try_connect(
        app: &TestApp,
        protocol: Protocol,
        payload: Value,
    ) -> Result<WsClient, String> {
        let url = format!("{}/graphql/ws", app.address.replace("http://", "ws://"));
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.name().parse().unwrap());
        let (stream, response) = connect_async(request).await.expect("the WebSocket opens");
        assert_eq!(
            response.headers()["sec-websocket-protocol"]
                .to_str()
                .unwrap(),
            protocol.name()
        );
        let mut client = WsClient { stream, protocol };
        client
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        match client.receive(Duration::from_secs(5)).await {
            Some(ack) if ack["type"] == "connection_ack" => Ok(client),
            Some(other) => Err(other.to_string()),
            None => Err("closed".to_owned()),
        }
    }

    /// Starts the subscription `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = match self.protocol {
            Protocol::TransportWs => "subscribe",
            Protocol::LegacyGraphqlWs => "start",
        };
        self.send(json!({ "id": id, "type": kind, "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The next delivery of any subscription, or `None` if nothing comes `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Delivery> {
        loop {
            let message = self.receive(within).await?;
            match message["type"].as_str() {
                Some("next" | "data") => return Some(Delivery::Next(message["payload"].clone())),
                Some("complete") => return Some(Delivery::Complete),
                Some("ka" | "ping" | "pong") => continue,
                _ => panic!("unexpected message: {message}"),
            }
        }
    }

    /// The next result's `data.<field>`, panicking on anything else.
    pub async fn next_data(&mut self, field: &str) -> Value {
        match self.next(Duration::from_secs(5)).await {
            Some(Delivery::Next(payload)) => {
                assert!(
                    payload.get("errors").is_none_or(Value::is_null),
                    "{payload}"
                );
                payload["data"][field].clone()
            }
            other => panic!("expected a {field} event, got {other:?}"),
        }
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        self.stream.close(None).await.ok();
    }

    pub async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::text(message.to_string()))
            .await
            .expect("the message is sent");
    }

    /// The next GraphQL message (pings and pongs skipped), or `None` when the connection
    /// closes or nothing comes `within`.
    pub async fn receive(&mut self, within: Duration) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(within, self.stream.next())
                .await
                .ok()??;
            match message {
                Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).expect("JSON")),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }
}

/// Waits until `app`'s event bus has `count` subscribers, so no event is published before a
/// subscription is in place.
pub async fn wait_for_subscribers(app: &TestApp, count: usize) {
    for _ in 0..500 {
        if app.services().events().subscriber_count() == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "expected {count} subscribers, have {}",
        app.services().events().subscriber_count()
    );
}

/// Waits until every event committed so far has been dispatched to subscribers, so a
/// subscription opened afterwards sees only later changes. On PostgreSQL a notification
/// arrives a moment after its commit; notifications arrive in commit order, so once a marker
/// change made now has come through, everything before it has too.
pub async fn settle_events(app: &TestApp) {
    let mut events = Box::pin(app.services().events().subscribe());
    let sku = format!("BARRIER-{}", uuid::Uuid::new_v4().simple());
    app.create_product("Event barrier", &sku, 0, 0).await;
    let wait = async {
        while let Some(Ok(event)) = events.next().await {
            if event.product.sku == sku {
                return;
            }
        }
        panic!("the event stream ended before the barrier came through");
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("the barrier event arrives");
}
