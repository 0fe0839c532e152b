//! `lowStock` and `stockChanged` over WebSocket: what fires, what does not, ordering, both
//! subprotocols, several server instances, and resources freed on disconnect.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, assert_no_errors, id_of, spawn_app};
use crate::ws::{Delivery, Protocol, WsClient, settle_events, wait_for_subscribers};

on_both_backends!(
    low_stock_fires_when_a_reduction_crosses_the_level_and_while_low_but_not_otherwise,
    a_new_reorder_level_that_makes_a_product_low_fires_low_stock,
    both_subprotocols_complete_the_handshake_and_deliver_events,
    every_subscriber_gets_every_movement_of_a_burst_once_in_commit_order,
    disconnecting_frees_the_subscription,
    a_malformed_product_id_filter_is_bad_input,
);

const LOW_STOCK: &str = "subscription($ids: [ID!]) { lowStock(productIds: $ids) {
    product { id sku name status } stock reorderLevel crossedThreshold
    movement { kind quantity stockBefore stockAfter } occurredAt } }";

const STOCK_CHANGED: &str = "subscription($ids: [ID!]) { stockChanged(productIds: $ids) {
    id productId kind delta stockBefore stockAfter product { sku stock } } }";

async fn low_stock_fires_when_a_reduction_crosses_the_level_and_while_low_but_not_otherwise(
    app: TestApp,
) {
    let watched = id_of(&app.create_product("Watched", "LS-1", 10, 5).await);
    let other = id_of(&app.create_product("Other", "LS-2", 10, 5).await);
    settle_events(&app).await;
    let mut client = WsClient::connect(&app, Protocol::TransportWs).await;
    client
        .subscribe("low", LOW_STOCK, json!({ "ids": [watched] }))
        .await;
    wait_for_subscribers(&app, 1).await;

    assert_no_errors(&app.reduce_stock(&watched, 2).await); // 8: still IN_STOCK
    assert_no_errors(&app.reduce_stock(&watched, 4).await); // 4: crosses
    assert_error(&app.reduce_stock(&watched, 50).await, "INSUFFICIENT_STOCK");
    assert_no_errors(&app.reduce_stock(&other, 9).await); // low, but not watched
    assert_no_errors(&app.reduce_stock(&watched, 1).await); // 3: still low
    assert_no_errors(&app.add_stock(&watched, 20).await); // 23: IN_STOCK again
    assert_no_errors(&app.reduce_stock(&watched, 20).await); // 3: crosses again

    let crossing = client.next_data("lowStock").await;
    assert_eq!(crossing["crossedThreshold"], true);
    assert_eq!(crossing["stock"], 4);
    assert_eq!(crossing["reorderLevel"], 5);
    assert_eq!(crossing["product"]["sku"], "LS-1");
    assert_eq!(crossing["product"]["status"], "LOW_STOCK");
    assert_eq!(
        crossing["movement"],
        json!({ "kind": "REDUCE", "quantity": 4, "stockBefore": 8, "stockAfter": 4 })
    );
    assert!(crossing["occurredAt"].is_string());
    let still_low = client.next_data("lowStock").await;
    assert_eq!(
        (
            still_low["stock"].clone(),
            still_low["crossedThreshold"].clone()
        ),
        (json!(3), json!(false))
    );
    // The next event is the last change: nothing fired for the changes in between.
    let again = client.next_data("lowStock").await;
    assert_eq!(
        (again["stock"].clone(), again["crossedThreshold"].clone()),
        (json!(3), json!(true))
    );
    assert!(client.next(Duration::from_millis(300)).await.is_none());
}

async fn a_new_reorder_level_that_makes_a_product_low_fires_low_stock(app: TestApp) {
    let id = id_of(&app.create_product("Widget", "RL-1", 10, 2).await);
    settle_events(&app).await;
    let mut client = WsClient::connect(&app, Protocol::TransportWs).await;
    client.subscribe("low", LOW_STOCK, json!({})).await;
    wait_for_subscribers(&app, 1).await;

    let update = "mutation($id: ID!, $level: Int!) { updateProduct(id: $id, input: { reorderLevel: $level }) { status } }";
    assert_no_errors(&app.graphql(update, json!({ "id": id, "level": 5 })).await); // still IN_STOCK
    assert_no_errors(&app.graphql(update, json!({ "id": id, "level": 10 })).await); // LOW_STOCK

    let event = client.next_data("lowStock").await;
    assert_eq!(event["crossedThreshold"], true);
    assert_eq!(event["reorderLevel"], 10);
    assert_eq!(event["movement"], Value::Null);
    assert!(client.next(Duration::from_millis(300)).await.is_none());
}

async fn both_subprotocols_complete_the_handshake_and_deliver_events(app: TestApp) {
    let id = id_of(&app.create_product("Widget", "PROTO-1", 10, 0).await);
    settle_events(&app).await;
    let mut modern = WsClient::connect(&app, Protocol::TransportWs).await;
    let mut legacy = WsClient::connect(&app, Protocol::LegacyGraphqlWs).await;
    modern
        .subscribe("a", STOCK_CHANGED, json!({ "ids": [id] }))
        .await;
    legacy
        .subscribe("b", STOCK_CHANGED, json!({ "ids": [id] }))
        .await;
    wait_for_subscribers(&app, 2).await;

    assert_no_errors(&app.reduce_stock(&id, 3).await);

    for client in [&mut modern, &mut legacy] {
        let movement = client.next_data("stockChanged").await;
        assert_eq!(movement["kind"], "REDUCE");
        assert_eq!(movement["delta"], -3);
        assert_eq!(movement["productId"], id.as_str());
        assert_eq!(movement["product"], json!({ "sku": "PROTO-1", "stock": 7 }));
    }
}

async fn every_subscriber_gets_every_movement_of_a_burst_once_in_commit_order(app: TestApp) {
    let products = [
        id_of(&app.create_product("Burst A", "BURST-A", 1000, 0).await),
        id_of(&app.create_product("Burst B", "BURST-B", 1000, 0).await),
    ];
    settle_events(&app).await;
    let mut clients = Vec::new();
    for subscriber in 0..20 {
        let protocol = if subscriber % 2 == 0 {
            Protocol::TransportWs
        } else {
            Protocol::LegacyGraphqlWs
        };
        let mut client = WsClient::connect(&app, protocol).await;
        client.subscribe("burst", STOCK_CHANGED, json!({})).await;
        clients.push(client);
    }
    wait_for_subscribers(&app, 20).await;

    let requests = (0..1000).map(|i| products[i % 2].clone());
    let responses: Vec<Value> = futures::stream::iter(requests)
        .map(|id| {
            let app = &app;
            async move { app.reduce_stock(&id, 1).await }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    assert!(responses.iter().all(|r| r.get("errors").is_none()));

    let received = join_all(clients.into_iter().map(|mut client| async move {
        let mut movements = Vec::new();
        while movements.len() < 1000 {
            movements.push(client.next_data("stockChanged").await);
        }
        assert!(
            client.next(Duration::from_millis(200)).await.is_none(),
            "more than 1000 events"
        );
        movements
    }))
    .await;
    for movements in received {
        let mut by_product: HashMap<String, Vec<&Value>> = HashMap::new();
        for movement in &movements {
            by_product
                .entry(movement["productId"].as_str().unwrap().to_owned())
                .or_default()
                .push(movement);
        }
        for id in &products {
            let history = &by_product[id];
            assert_eq!(history.len(), 500);
            // Commit order: each movement starts where the previous one ended.
            for pair in history.windows(2) {
                assert_eq!(
                    pair[1]["stockBefore"], pair[0]["stockAfter"],
                    "out of order: {pair:?}"
                );
            }
            assert_eq!(history[0]["stockBefore"], 1000);
            assert_eq!(history[499]["stockAfter"], 500);
        }
    }
}

async fn disconnecting_frees_the_subscription(app: TestApp) {
    let mut first = WsClient::connect(&app, Protocol::TransportWs).await;
    let mut second = WsClient::connect(&app, Protocol::LegacyGraphqlWs).await;
    first.subscribe("1", STOCK_CHANGED, json!({})).await;
    first.subscribe("2", LOW_STOCK, json!({})).await;
    second.subscribe("3", LOW_STOCK, json!({})).await;
    wait_for_subscribers(&app, 3).await;

    first.close().await;
    wait_for_subscribers(&app, 1).await;
    drop(second); // without a close frame
    wait_for_subscribers(&app, 0).await;
}

async fn a_malformed_product_id_filter_is_bad_input(app: TestApp) {
    let mut client = WsClient::connect(&app, Protocol::TransportWs).await;
    client
        .subscribe("bad", LOW_STOCK, json!({ "ids": ["not-a-uuid"] }))
        .await;

    let message = client.next(Duration::from_secs(5)).await;
    match message {
        Some(Delivery::Next(payload)) => {
            assert_eq!(
                payload["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
                "{payload}"
            )
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_instance_sees_a_reduction_made_through_another_within_a_second() {
    let instance_a = spawn_app(Backend::Postgres).await;
    let instance_b = instance_a.spawn_another_instance().await;
    let id = id_of(&instance_a.create_product("Shared", "MULTI-1", 10, 5).await);
    settle_events(&instance_b).await;
    let mut client = WsClient::connect(&instance_b, Protocol::TransportWs).await;
    client
        .subscribe("low", LOW_STOCK, json!({ "ids": [id] }))
        .await;
    wait_for_subscribers(&instance_b, 1).await;

    let started = Instant::now();
    assert_no_errors(&instance_a.reduce_stock(&id, 6).await);
    let event = client.next_data("lowStock").await;
    let elapsed = started.elapsed();

    println!("instance A's reduction reached instance B's subscriber in {elapsed:?}");
    assert_eq!(event["stock"], 4);
    assert_eq!(event["crossedThreshold"], true);
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_listener_connection_drops_subscribers_are_told_and_events_flow_again() {
    let app = spawn_app(Backend::Postgres).await;
    let id = id_of(&app.create_product("Resilient", "RECON-1", 100, 0).await);
    settle_events(&app).await;
    let mut client = WsClient::connect(&app, Protocol::TransportWs).await;
    client
        .subscribe("changes", STOCK_CHANGED, json!({ "ids": [id] }))
        .await;
    wait_for_subscribers(&app, 1).await;

    let database = app.database_url.rsplit('/').next().unwrap().to_owned();
    let admin = sea_orm::Database::connect(&app.database_url).await.unwrap();
    let terminated = admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'stockroom-listener' AND datname = '{database}'"
        ))
        .await
        .unwrap();
    assert_eq!(terminated.rows_affected(), 1);

    // The subscriber learns that it may have missed events, and its subscription ends.
    match client.next(Duration::from_secs(10)).await {
        Some(Delivery::Next(payload)) => {
            let extensions = &payload["errors"][0]["extensions"];
            assert_eq!(extensions["code"], "SUBSCRIPTION_INTERRUPTED", "{payload}");
            assert_eq!(extensions["resubscribe"], true, "{payload}");
            assert_eq!(extensions["reason"], "INTERRUPTED", "{payload}");
        }
        other => panic!("expected an interruption, got {other:?}"),
    }
    assert!(matches!(
        client.next(Duration::from_secs(5)).await,
        Some(Delivery::Complete)
    ));

    // Subscribing again works: the listener reconnected.
    client
        .subscribe("again", STOCK_CHANGED, json!({ "ids": [id] }))
        .await;
    wait_for_subscribers(&app, 1).await;
    assert_no_errors(&app.reduce_stock(&id, 1).await);
    assert_eq!(client.next_data("stockChanged").await["stockAfter"], 99);
}
