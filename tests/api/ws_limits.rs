//! Limits of WebSocket connections: the `connection_init` timeout, keep-alive pings, a cap on
//! subscriptions per connection, and subscriptions that end when their token expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Backend, TEST_SECRET, spawn_app_with, spawn_secured_app, test_auth};
use crate::ws::{Protocol, WsClient, wait_for_subscribers};

/// Opens a raw `graphql-transport-ws` WebSocket to `address`.
async fn open(
    address: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("{}/graphql/ws", address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    connect_async(request).await.expect("the WebSocket opens").0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_connection_init_is_closed_with_4408() {
    let app = spawn_app_with(Backend::Sqlite, &["--ws-init-timeout", "1s"]).await;
    let mut socket = open(&app.address).await;

    let closed = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("the server closes the connection");

    match closed {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4408);
            assert!(frame.reason.contains("initialisation timeout"), "{frame:?}");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_pinged_and_answering_keeps_them_open() {
    let app = spawn_app_with(Backend::Sqlite, &["--ws-ping-interval", "1s"]).await;
    let mut socket = open(&app.address).await;
    socket
        .send(Message::text(
            json!({ "type": "connection_init" }).to_string(),
        ))
        .await
        .unwrap();

    let mut pings = 0;
    let watched = tokio::time::timeout(Duration::from_millis(4500), async {
        // tungstenite answers each ping with a pong while it is read.
        while let Some(Ok(message)) = socket.next().await {
            match message {
                Message::Ping(_) => pings += 1,
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
    })
    .await;

    assert!(watched.is_err(), "the connection stayed open");
    assert!(pings >= 3, "{pings} pings in 4.5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_may_run_only_as_many_subscriptions_as_configured() {
    let app = spawn_app_with(Backend::Sqlite, &["--ws-max-subscriptions", "2"]).await;
    let mut client = WsClient::connect(&app, Protocol::TransportWs).await;
    let query = "subscription { stockChanged { delta } }";
    client.subscribe("a", query, json!({})).await;
    client.subscribe("b", query, json!({})).await;
    wait_for_subscribers(&app, 2).await;

    client.subscribe("c", query, json!({})).await;
    let refused = client
        .receive(Duration::from_secs(5))
        .await
        .expect("an answer");

    assert_eq!(refused["id"], "c", "{refused}");
    let errors = match refused["type"].as_str() {
        Some("error") => refused["payload"].clone(),
        _ => refused["payload"]["errors"].clone(),
    };
    assert_eq!(
        errors[0]["extensions"]["code"], "BAD_USER_INPUT",
        "{refused}"
    );
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 2 subscriptions"),
        "{refused}"
    );
    assert_eq!(app.services().events().subscriber_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ends_when_the_token_it_was_opened_with_expires() {
    let auth = test_auth();
    let app = spawn_secured_app(Backend::Sqlite).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let short_lived = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": "dashboard", "role": "viewer", "exp": now + 2, "iss": auth.issuer, "aud": auth.audience }),
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap();
    let mut client =
        WsClient::connect(&app.with_token(Some(short_lived)), Protocol::TransportWs).await;
    client
        .subscribe("s", "subscription { lowStock { stock } }", json!({}))
        .await;
    wait_for_subscribers(&app, 1).await;

    let ended = client
        .receive(Duration::from_secs(6))
        .await
        .expect("the subscription ends with an error");

    let payload: &Value = &ended["payload"];
    assert_eq!(
        payload["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{ended}"
    );
    let complete = client
        .receive(Duration::from_secs(2))
        .await
        .expect("complete");
    assert_eq!(complete["type"], "complete", "{complete}");
    wait_for_subscribers(&app, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_disconnected_instead_of_blocking_forever() {
    let app = spawn_app_with(Backend::Sqlite, &["--ws-ping-interval", "1s"]).await;
    let id = crate::helpers::id_of(&app.create_product("Flood", "FLOOD-1", 1_000_000, 0).await);
    // A client whose receive window is tiny, and which never reads after subscribing.
    let address: std::net::SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let stream = socket.connect(address).await.unwrap();
    let url = format!("{}/graphql/ws", app.address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    socket
        .send(Message::text(
            json!({ "type": "connection_init" }).to_string(),
        ))
        .await
        .unwrap();
    let _ack = socket.next().await;
    socket
        .send(Message::text(
            json!({ "id": "s", "type": "subscribe", "payload": { "query":
                "subscription { stockChanged { id reason stockAfter product { id name sku } } }" } })
            .to_string(),
        ))
        .await
        .unwrap();
    wait_for_subscribers(&app, 1).await;

    // Far more than the socket buffers hold (about 6 MB of events): the server's writes to
    // this client block, while the client keeps answering nothing.
    let reason = "r".repeat(500);
    let mutation = "mutation($id: ID!, $reason: String) { reduceStock(id: $id, quantity: 1, reason: $reason) { newStock } }";
    futures::stream::iter(0..8000)
        .map(|_| app.graphql(mutation, json!({ "id": id, "reason": reason })))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;

    // The server gives up on the client within a few ping intervals and frees its subscription.
    let started = std::time::Instant::now();
    while app.services().events().subscriber_count() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the stalled subscriber is still connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(socket);
}
