//! Relay object identification: `node` and `nodes` fetch any object by its id alone.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_no_errors, id_of};

on_both_backends!(
    node_fetches_products_movements_and_reservations_by_id_alone,
    nodes_fetches_a_hundred_mixed_ids_in_a_fixed_number_of_statements,
);

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id
    ... on Product { sku } ... on StockMovement { kind } ... on Reservation { quantity } } }";

async fn node_fetches_products_movements_and_reservations_by_id_alone(app: TestApp) {
    let product = id_of(&app.create_product("Node", "NODE-1", 10, 0).await);
    let movement = app.movements(&product).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reserved = app
        .graphql(
            "mutation($id: ID!) { reserveStock(productId: $id, quantity: 2) { id } }",
            json!({ "id": product }),
        )
        .await;
    let reservation = reserved["data"]["reserveStock"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for (id, typename, field, value) in [
        (&product, "Product", "sku", json!("NODE-1")),
        (&movement, "StockMovement", "kind", json!("INITIAL")),
        (&reservation, "Reservation", "quantity", json!(2)),
    ] {
        let response = app.graphql(NODE, json!({ "id": id })).await;
        assert_no_errors(&response);
        let node = &response["data"]["node"];
        assert_eq!(node["__typename"], typename);
        assert_eq!(node["id"], json!(id));
        assert_eq!(node[field], value);
    }

    let status = app
        .graphql(
            "query($id: ID!) { productStatus(id: $id) { id sku } }",
            json!({ "id": product }),
        )
        .await;
    assert_eq!(status["data"]["productStatus"]["id"], json!(product));

    let unknown = app
        .graphql(NODE, json!({ "id": uuid::Uuid::now_v7().to_string() }))
        .await;
    assert_no_errors(&unknown);
    assert_eq!(unknown["data"]["node"], Value::Null);
    assert_error(
        &app.graphql(NODE, json!({ "id": "nope" })).await,
        "BAD_USER_INPUT",
    );
}

async fn nodes_fetches_a_hundred_mixed_ids_in_a_fixed_number_of_statements(app: TestApp) {
    let mut ids = Vec::new();
    for index in 0..30 {
        let product = id_of(
            &app.create_product("Many", &format!("MANY-{index}"), 5, 0)
                .await,
        );
        let movement = app.movements(&product).await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let reserved = app
            .graphql(
                "mutation($id: ID!) { reserveStock(productId: $id, quantity: 1) { id } }",
                json!({ "id": product }),
            )
            .await;
        ids.push((product, "Product"));
        ids.push((movement, "StockMovement"));
        ids.push((
            reserved["data"]["reserveStock"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
            "Reservation",
        ));
    }
    for _ in 0..10 {
        ids.push((uuid::Uuid::now_v7().to_string(), "none"));
    }
    assert_eq!(ids.len(), 100);
    let query = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }";
    let asked: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();

    let before = app.services().database().statements_executed();
    let response = app.graphql(query, json!({ "ids": asked })).await;
    let statements = app.services().database().statements_executed() - before;

    assert_no_errors(&response);
    let nodes = response["data"]["nodes"].as_array().unwrap();
    for ((id, typename), node) in ids.iter().zip(nodes) {
        if *typename == "none" {
            assert_eq!(node, &Value::Null);
        } else {
            assert_eq!(
                (node["id"].as_str(), node["__typename"].as_str()),
                (Some(id.as_str()), Some(*typename))
            );
        }
    }
    assert!(statements <= 3, "{statements} statements for 100 ids");

    let too_many: Vec<String> = (0..101).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    assert_error(
        &app.graphql(query, json!({ "ids": too_many })).await,
        "BAD_USER_INPUT",
    );
}
