//! Idempotency keys: retries return the original result and never change stock again.

use futures::future::join_all;
use serde_json::{Value, json};
use stockroom::domain::Role;

use crate::helpers::{
    Backend, TestApp, assert_error, assert_no_errors, error_code, id_of, spawn_secured_app, token,
};

on_both_backends!(
    fifty_concurrent_retries_of_one_reduction_change_stock_once_and_all_get_the_same_answer,
    the_same_key_with_other_arguments_is_refused_and_changes_nothing,
    a_refusal_is_replayed_too_even_when_it_would_now_succeed,
    the_rest_header_uses_the_same_mechanism,
    pruned_keys_can_be_used_again,
);

const REDUCE: &str = "mutation($id: ID!, $quantity: Int!, $key: String) {
    reduceStock(id: $id, quantity: $quantity, idempotencyKey: $key) {
        success newStock product { stock version updatedAt } movement { id idempotencyKey stockAfter } } }";

async fn fifty_concurrent_retries_of_one_reduction_change_stock_once_and_all_get_the_same_answer(
    app: TestApp,
) {
    let id = id_of(&app.create_product("Retried", "IDEM-1", 100, 0).await);
    let variables = json!({ "id": id, "quantity": 7, "key": "order-1042" });

    let responses = join_all((0..50).map(|_| app.graphql(REDUCE, variables.clone()))).await;

    for response in &responses {
        assert_no_errors(response);
        assert_eq!(
            response, &responses[0],
            "every response is the original one"
        );
    }
    assert_eq!(responses[0]["data"]["reduceStock"]["newStock"], 93);
    assert_eq!(
        responses[0]["data"]["reduceStock"]["movement"]["idempotencyKey"],
        "order-1042"
    );
    assert_eq!(app.product(&id).await["stock"], 93);
    assert_eq!(app.movements(&id).await.len(), 2, "INITIAL and one REDUCE");
}

async fn the_same_key_with_other_arguments_is_refused_and_changes_nothing(app: TestApp) {
    let id = id_of(&app.create_product("Keyed", "IDEM-2", 100, 0).await);
    assert_no_errors(
        &app.graphql(REDUCE, json!({ "id": id, "quantity": 5, "key": "k" }))
            .await,
    );
    let before = app.product(&id).await;

    let other_quantity = app
        .graphql(REDUCE, json!({ "id": id, "quantity": 6, "key": "k" }))
        .await;
    let other_operation = app
        .graphql(
            "mutation($id: ID!) { addStock(id: $id, quantity: 5, idempotencyKey: \"k\") { newStock } }",
            json!({ "id": id }),
        )
        .await;

    assert_error(&other_quantity, "IDEMPOTENCY_KEY_REUSED");
    assert_error(&other_operation, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(app.product(&id).await, before);
    assert_eq!(app.movements(&id).await.len(), 2);
}

async fn a_refusal_is_replayed_too_even_when_it_would_now_succeed(app: TestApp) {
    let id = id_of(&app.create_product("Short", "IDEM-3", 2, 0).await);
    let variables = json!({ "id": id, "quantity": 5, "key": "too-many" });
    let first = app.graphql(REDUCE, variables.clone()).await;
    assert_error(&first, "INSUFFICIENT_STOCK");
    assert_no_errors(&app.add_stock(&id, 10).await);

    let retry = app.graphql(REDUCE, variables).await;

    assert_eq!(
        retry["errors"][0]["extensions"],
        first["errors"][0]["extensions"]
    );
    assert_eq!(app.product(&id).await["stock"], 12);
}

async fn the_rest_header_uses_the_same_mechanism(app: TestApp) {
    let id = id_of(&app.create_product("Rest", "IDEM-4", 20, 0).await);
    let send = |quantity: i64| {
        let app = &app;
        let id = &id;
        async move {
            let response = app
                .client
                .put(format!("{}/products/{id}/reduce", app.address))
                .header("Idempotency-Key", "rest-1")
                .json(&json!({ "quantity": quantity }))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };

    let first = send(3).await;
    let retry = send(3).await;
    let reused = send(4).await;
    // GraphQL shares the keys: the same key and arguments replay the REST result.
    let graphql = app
        .graphql(REDUCE, json!({ "id": id, "quantity": 3, "key": "rest-1" }))
        .await;

    assert_eq!(
        first,
        (
            200,
            json!({ "success": true, "productId": id, "newStock": 17 })
        )
    );
    assert_eq!(retry, first);
    assert_eq!(reused.0, 409);
    assert_eq!(reused.1["code"], "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(graphql["data"]["reduceStock"]["newStock"], 17);
    assert_eq!(app.product(&id).await["stock"], 17);
    let blank = app
        .client
        .put(format!("{}/products/{id}/reduce", app.address))
        .header("Idempotency-Key", "")
        .json(&json!({ "quantity": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(blank.status(), 400);
}

async fn pruned_keys_can_be_used_again(app: TestApp) {
    let id = id_of(&app.create_product("Pruned", "IDEM-5", 20, 0).await);
    let variables = json!({ "id": id, "quantity": 1, "key": "old" });
    assert_no_errors(&app.graphql(REDUCE, variables.clone()).await);

    let pruned = stockroom::service::prune_idempotency_keys(
        app.services().database(),
        chrono::Utc::now() + chrono::Duration::seconds(1),
    )
    .await
    .unwrap();

    assert_eq!(pruned, 1);
    assert_no_errors(&app.graphql(REDUCE, variables).await);
    assert_eq!(app.product(&id).await["stock"], 18);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_scoped_to_the_caller() {
    let app = spawn_secured_app(Backend::Postgres).await;
    let alice = app.with_token(Some(token(Role::Manager, "alice")));
    let bob = app.with_token(Some(token(Role::Manager, "bob")));
    let id = id_of(&alice.create_product("Shared", "IDEM-6", 20, 0).await);
    let variables = json!({ "id": id, "quantity": 2, "key": "same-key" });

    let from_alice = alice.graphql(REDUCE, variables.clone()).await;
    let from_bob = bob.graphql(REDUCE, variables).await;

    assert_eq!(error_code(&from_alice), None);
    assert_eq!(error_code(&from_bob), None);
    assert_eq!(alice.product(&id).await["stock"], 16);
}
