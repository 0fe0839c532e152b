//! Subscriptions of the same selection share one execution: each event is resolved and
//! serialized once for all of them, while each subscriber keeps its own lifetime (its
//! connection, its token's expiry).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::{Value, json};
use stockroom::domain::Role;

use crate::helpers::{
    Backend, TEST_SECRET, TestApp, assert_no_errors, id_of, spawn_app_with, spawn_secured_app,
    test_auth, token,
};
use crate::ws::{Delivery, Protocol, WsClient, settle_events, wait_for_subscribers};

on_both_backends!(
    subscribers_of_one_selection_share_one_execution_and_each_receive_every_event,
    a_shared_execution_ends_when_its_last_subscriber_leaves,
    a_subscriber_joining_a_busy_execution_gets_no_event_committed_before_it_joined,
    an_id_is_free_again_as_soon_as_its_complete_is_sent,
);

const STOCK_CHANGED: &str = "subscription($ids: [ID!]) { stockChanged(productIds: $ids) {
    id kind delta stockAfter product { sku stock } } }";

/// Waits until the bus has `count` receivers.
async fn wait_for_receivers(app: &TestApp, count: usize) {
    let started = Instant::now();
    while app.services().events().receiver_count() != count {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "expected {count} receivers of the bus, have {}",
            app.services().events().receiver_count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next event's payload, which must carry data and no error.
async fn next_payload(client: &mut WsClient) -> Value {
    match client.next(Duration::from_secs(5)).await {
        Some(Delivery::Next(payload)) => {
            assert!(
                payload.get("errors").is_none_or(Value::is_null),
                "{payload}"
            );
            payload
        }
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn subscribers_of_one_selection_share_one_execution_and_each_receive_every_event(
    app: TestApp,
) {
    let watched = id_of(&app.create_product("Shared", "FAN-1", 100, 0).await);
    let other = id_of(&app.create_product("Apart", "FAN-2", 100, 0).await);
    settle_events(&app).await;
    let before = app.services().events().receiver_count();

    // Two connections, one in each subprotocol, with the same selection; a third with another.
    let mut first = WsClient::connect(&app, Protocol::TransportWs).await;
    let mut second = WsClient::connect(&app, Protocol::LegacyGraphqlWs).await;
    let mut apart = WsClient::connect(&app, Protocol::TransportWs).await;
    first
        .subscribe("a", STOCK_CHANGED, json!({ "ids": [watched] }))
        .await;
    second
        .subscribe("b", STOCK_CHANGED, json!({ "ids": [watched] }))
        .await;
    apart
        .subscribe("c", STOCK_CHANGED, json!({ "ids": [other] }))
        .await;
    wait_for_subscribers(&app, 3).await;
    assert_eq!(
        app.services().events().receiver_count(),
        before + 2,
        "three subscribers of two selections run two executions"
    );

    for _ in 0..3 {
        assert_no_errors(&app.reduce_stock(&watched, 1).await);
    }
    assert_no_errors(&app.reduce_stock(&other, 5).await);

    for expected_stock in [99, 98, 97] {
        let seen_first = next_payload(&mut first).await;
        let seen_second = next_payload(&mut second).await;
        assert_eq!(seen_first, seen_second, "both see the same event");
        assert_eq!(
            seen_first["data"]["stockChanged"]["stockAfter"],
            expected_stock
        );
        assert_eq!(
            seen_first["data"]["stockChanged"]["product"]["sku"],
            "FAN-1"
        );
    }
    let seen_apart = next_payload(&mut apart).await;
    assert_eq!(
        seen_apart["data"]["stockChanged"]["product"]["sku"],
        "FAN-2"
    );
    assert_eq!(seen_apart["data"]["stockChanged"]["stockAfter"], 95);

    // One leaving ends only its own subscription.
    first.close().await;
    wait_for_subscribers(&app, 2).await;
    assert_no_errors(&app.reduce_stock(&watched, 1).await);
    let after = next_payload(&mut second).await;
    assert_eq!(after["data"]["stockChanged"]["stockAfter"], 96);
    assert!(
        apart.next(Duration::from_millis(300)).await.is_none(),
        "the other selection saw nothing of it"
    );
}

async fn a_shared_execution_ends_when_its_last_subscriber_leaves(app: TestApp) {
    let watched = id_of(&app.create_product("Left", "FAN-3", 100, 0).await);
    settle_events(&app).await;
    let before = app.services().events().receiver_count();
    let mut one = WsClient::connect(&app, Protocol::TransportWs).await;
    let mut two = WsClient::connect(&app, Protocol::TransportWs).await;
    one.subscribe("s", STOCK_CHANGED, json!({ "ids": [watched] }))
        .await;
    two.subscribe("s", STOCK_CHANGED, json!({ "ids": [watched] }))
        .await;
    wait_for_subscribers(&app, 2).await;
    wait_for_receivers(&app, before + 1).await;

    // `complete` from the client stops its subscription; the execution runs on for the other.
    one.send(json!({ "id": "s", "type": "complete" })).await;
    wait_for_subscribers(&app, 1).await;
    assert_eq!(app.services().events().receiver_count(), before + 1);
    two.close().await;
    wait_for_subscribers(&app, 0).await;
    wait_for_receivers(&app, before).await;

    // A new subscriber of the same selection starts a fresh execution and gets events.
    let mut three = WsClient::connect(&app, Protocol::TransportWs).await;
    three
        .subscribe("s", STOCK_CHANGED, json!({ "ids": [watched] }))
        .await;
    wait_for_subscribers(&app, 1).await;
    wait_for_receivers(&app, before + 1).await;
    assert_no_errors(&app.reduce_stock(&watched, 2).await);
    let seen = next_payload(&mut three).await;
    assert_eq!(seen["data"]["stockChanged"]["stockAfter"], 98);
}

/// A viewer's token that expires in `seconds`.
fn viewer_token_expiring_in(seconds: u64) -> String {
    let auth = test_auth();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": "dashboard", "role": "viewer", "exp": now + seconds, "iss": auth.issuer, "aud": auth.audience }),
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expiring_ends_only_its_own_share_of_an_execution_and_roles_do_not_share() {
    let app = spawn_secured_app(Backend::Sqlite).await;
    let admin = app.with_token(Some(token(Role::Admin, "ops")));
    let watched = id_of(&admin.create_product("Expiring", "FAN-4", 100, 0).await);
    settle_events(&admin).await;
    let before = app.services().events().receiver_count();

    let mut short = WsClient::connect(
        &app.with_token(Some(viewer_token_expiring_in(2))),
        Protocol::TransportWs,
    )
    .await;
    let mut long = WsClient::connect(
        &app.with_token(Some(token(Role::Viewer, "wall"))),
        Protocol::TransportWs,
    )
    .await;
    let mut manager = WsClient::connect(
        &app.with_token(Some(token(Role::Manager, "buyer"))),
        Protocol::TransportWs,
    )
    .await;
    for client in [&mut short, &mut long, &mut manager] {
        client
            .subscribe("s", STOCK_CHANGED, json!({ "ids": [watched] }))
            .await;
    }
    wait_for_subscribers(&app, 3).await;
    assert_eq!(
        app.services().events().receiver_count(),
        before + 2,
        "the two viewers share an execution; the manager runs its own"
    );

    let ended = short
        .receive(Duration::from_secs(6))
        .await
        .expect("the short-lived subscription ends with an error");
    assert_eq!(
        ended["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{ended}"
    );
    let complete = short
        .receive(Duration::from_secs(2))
        .await
        .expect("complete");
    assert_eq!(complete["type"], "complete", "{complete}");
    wait_for_subscribers(&app, 2).await;

    assert_no_errors(&admin.reduce_stock(&watched, 3).await);
    for client in [&mut long, &mut manager] {
        let seen = next_payload(client).await;
        assert_eq!(seen["data"]["stockChanged"]["stockAfter"], 97);
    }
}

/// A selection that costs a query per event (the product's last movements), so that its
/// execution falls behind a burst of changes.
const SLOW_TO_RENDER: &str = "subscription($ids: [ID!]) { stockChanged(productIds: $ids) {
    stockAfter product { movements(first: 100) { edges { node { id stockAfter } } } } } }";

async fn a_subscriber_joining_a_busy_execution_gets_no_event_committed_before_it_joined(
    app: TestApp,
) {
    let watched = id_of(&app.create_product("Busy", "FAN-5", 0, 0).await);
    settle_events(&app).await;
    let mut early = WsClient::connect(&app, Protocol::TransportWs).await;
    early
        .subscribe("s", SLOW_TO_RENDER, json!({ "ids": [watched] }))
        .await;
    wait_for_subscribers(&app, 1).await;

    // A burst, every change of it answered (and its event through the bus) before the late
    // subscriber joins.
    let mutation = "mutation($id: ID!) { addStock(id: $id, quantity: 1) { newStock } }";
    let answers = futures::stream::iter(0..300)
        .map(|_| app.graphql(mutation, json!({ "id": watched })))
        .buffer_unordered(12)
        .collect::<Vec<_>>()
        .await;
    answers.iter().for_each(assert_no_errors);
    settle_events(&app).await;
    let mut late = WsClient::connect(&app, Protocol::TransportWs).await;
    late.subscribe("s", SLOW_TO_RENDER, json!({ "ids": [watched] }))
        .await;
    wait_for_subscribers(&app, 2).await;
    assert_no_errors(&app.add_stock(&watched, 1000).await);

    let first_seen = match late.next(Duration::from_secs(30)).await {
        Some(Delivery::Next(payload)) => payload,
        other => panic!("expected an event, got {other:?}"),
    };
    assert_eq!(
        first_seen["data"]["stockChanged"]["stockAfter"], 1300,
        "the late subscriber's first event is the change made after it joined: {first_seen}"
    );
    // The early one gets all 301, in order.
    for expected in (1..=300).chain([1300]) {
        let seen = match early.next(Duration::from_secs(30)).await {
            Some(Delivery::Next(payload)) => payload,
            other => panic!("expected an event, got {other:?}"),
        };
        assert_eq!(seen["data"]["stockChanged"]["stockAfter"], expected);
    }
}

async fn an_id_is_free_again_as_soon_as_its_complete_is_sent(app: TestApp) {
    let watched = id_of(&app.create_product("Reused", "FAN-6", 0, 0).await);
    settle_events(&app).await;
    let mut client = WsClient::connect(&app, Protocol::TransportWs).await;
    for index in 0..40 {
        client
            .subscribe(
                &format!("s{index}"),
                STOCK_CHANGED,
                json!({ "ids": [watched] }),
            )
            .await;
    }
    wait_for_subscribers(&app, 40).await;
    // Events keep 95 subscriptions busy while one id is reused as soon as it completes.
    let writer = {
        let app = app.with_token(None);
        let watched = watched.clone();
        tokio::spawn(async move {
            let mutation = "mutation($id: ID!) { addStock(id: $id, quantity: 1) { newStock } }";
            futures::stream::iter(0..400)
                .map(|_| app.graphql(mutation, json!({ "id": watched })))
                .buffer_unordered(4)
                .for_each(|answer| async move { assert_no_errors(&answer) })
                .await;
        })
    };
    let query = "query($id: ID!) { product(id: $id) { stock } }";
    for _ in 0..150 {
        client.subscribe("q", query, json!({ "id": watched })).await;
        loop {
            let message = client
                .receive(Duration::from_secs(10))
                .await
                .expect("the connection stays open and answers");
            assert_ne!(message["type"], "error", "{message}");
            if message["id"] == "q" && message["type"] == "complete" {
                break;
            }
        }
    }
    writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_subscription_tells_its_own_error_even_with_the_smallest_buffer() {
    let app = spawn_app_with(Backend::Sqlite, &["--event-buffer", "1"]).await;
    for round in 0..10 {
        let mut client = WsClient::connect(&app, Protocol::TransportWs).await;
        client
            .subscribe("s", STOCK_CHANGED, json!({ "ids": ["not-an-id"] }))
            .await;
        let refused = match client.next(Duration::from_secs(5)).await {
            Some(Delivery::Next(payload)) => payload,
            other => panic!("round {round}: expected the error, got {other:?}"),
        };
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "round {round}: {refused}"
        );
        assert!(matches!(
            client.next(Duration::from_secs(5)).await,
            Some(Delivery::Complete)
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_sent_with_a_token_already_expired_runs_nothing() {
    let app = spawn_secured_app(Backend::Sqlite).await;
    let admin = app.with_token(Some(token(Role::Admin, "ops")));
    let watched = id_of(&admin.create_product("Late", "FAN-7", 10, 0).await);
    // Expired two seconds ago: still inside the verifier's leeway at `connection_init`.
    let auth = test_auth();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": "buyer", "role": "manager", "exp": now - 2, "iss": auth.issuer, "aud": auth.audience }),
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap();
    let mut client = WsClient::connect(&app.with_token(Some(expired)), Protocol::TransportWs).await;
    let mutation = "mutation($id: ID!) { addStock(id: $id, quantity: 1) { newStock } }";
    for index in 0..20 {
        client
            .subscribe(&format!("m{index}"), mutation, json!({ "id": watched }))
            .await;
        let refused = match client.next(Duration::from_secs(5)).await {
            Some(Delivery::Next(payload)) => payload,
            other => panic!("expected the refusal, got {other:?}"),
        };
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{refused}"
        );
        assert!(matches!(
            client.next(Duration::from_secs(5)).await,
            Some(Delivery::Complete)
        ));
    }
    let stock = admin
        .graphql(
            "query($id: ID!) { product(id: $id) { stock } }",
            json!({ "id": watched }),
        )
        .await;
    assert_eq!(
        stock["data"]["product"]["stock"], 10,
        "no refused mutation ran"
    );

    // With a valid token the same mutation over the WebSocket runs, once.
    let mut valid = WsClient::connect(
        &app.with_token(Some(token(Role::Manager, "buyer"))),
        Protocol::TransportWs,
    )
    .await;
    valid
        .subscribe("m", mutation, json!({ "id": watched }))
        .await;
    let answer = match valid.next(Duration::from_secs(5)).await {
        Some(Delivery::Next(payload)) => payload,
        other => panic!("expected the answer, got {other:?}"),
    };
    assert_eq!(answer["data"]["addStock"]["newStock"], 11, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_with_its_extensions_in_another_order_shares_an_execution() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let before = app.services().events().receiver_count();
    let mut one = WsClient::connect(&app, Protocol::TransportWs).await;
    let mut two = WsClient::connect(&app, Protocol::TransportWs).await;
    one.send(json!({ "id": "s", "type": "subscribe", "payload": {
        "query": STOCK_CHANGED, "extensions": { "a": 1, "b": { "x": 1, "y": 2 }, "c": 3 } } }))
        .await;
    two.send(json!({ "id": "s", "type": "subscribe", "payload": {
        "query": STOCK_CHANGED, "extensions": { "c": 3, "b": { "y": 2, "x": 1 }, "a": 1 } } }))
        .await;
    wait_for_subscribers(&app, 2).await;
    assert_eq!(app.services().events().receiver_count(), before + 1);
}
