//! Subscriptions of the same selection share one execution: each event is resolved and
//! serialized once for all of them, while each subscriber keeps its own lifetime (its
//! connection, its token's expiry).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use stockroom::domain::Role;

use crate::helpers::{
    Backend, TEST_SECRET, TestApp, assert_no_errors, id_of, spawn_secured_app, test_auth, token,
};
use crate::ws::{Delivery, Protocol, WsClient, settle_events, wait_for_subscribers};

on_both_backends!(
    subscribers_of_one_selection_share_one_execution_and_each_receive_every_event,
    a_shared_execution_ends_when_its_last_subscriber_leaves,
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
