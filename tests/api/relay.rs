//! Relay object identification: `node` and `nodes` fetch any object by its id alone.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_no_errors, id_of};

on_both_backends!(
    node_fetches_products_movements_and_reservations_by_id_alone,
    nodes_fetches_a_hundred_mixed_ids_in_a_fixed_number_of_statements,
    product_movements_of_fifty_products_take_a_fixed_number_of_statements,
    product_movements_pages_forward_and_backward_like_the_ledger,
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
    // One look-up per type at most (products, movements, reservations, locations, lots),
    // however many ids.
    assert!(statements <= 5, "{statements} statements for 100 ids");

    let too_many: Vec<String> = (0..101).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    assert_error(
        &app.graphql(query, json!({ "ids": too_many })).await,
        "BAD_USER_INPUT",
    );
}

const PRODUCTS_WITH_MOVEMENTS: &str = "{ products(first: 50) { edges { node { id
    movements(first: 5) { totalCount edges { cursor node { id delta stockAfter } }
                          pageInfo { hasNextPage hasPreviousPage } } } } } }";

async fn product_movements_of_fifty_products_take_a_fixed_number_of_statements(app: TestApp) {
    let mut expected = std::collections::HashMap::new();
    for index in 0..50 {
        let product = id_of(
            &app.create_product("Ledger", &format!("LEDGER-{index}"), 1, 0)
                .await,
        );
        // Products 0..7 get 0..7 more movements, so pages come out short, full and overfull.
        for _ in 0..index % 8 {
            assert_no_errors(&app.add_stock(&product, 1).await);
        }
        expected.insert(product, 1 + index % 8);
    }

    let before = app.services().database().statements_executed();
    let response = app.graphql(PRODUCTS_WITH_MOVEMENTS, json!({})).await;
    let statements = app.services().database().statements_executed() - before;
    assert_no_errors(&response);

    let edges = response["data"]["products"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 50);
    for edge in edges {
        let product = edge["node"]["id"].as_str().unwrap();
        let count = expected[product];
        let movements = &edge["node"]["movements"];
        assert_eq!(movements["totalCount"], json!(count), "{product}");
        assert_eq!(movements["pageInfo"]["hasNextPage"], json!(count > 5));
        assert_eq!(movements["pageInfo"]["hasPreviousPage"], json!(false));
        // The same five movements, in the same order, as the product's own ledger listing.
        let ledger: Vec<Value> = app
            .movements(product)
            .await
            .into_iter()
            .take(5)
            .map(|movement| movement["id"].clone())
            .collect();
        let nested: Vec<Value> = movements["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|edge| edge["node"]["id"].clone())
            .collect();
        assert_eq!(nested, ledger, "{product}");
        let stock_after: Vec<i64> = movements["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|edge| edge["node"]["stockAfter"].as_i64().unwrap())
            .collect();
        let newest = i64::from(count);
        assert_eq!(
            stock_after,
            (0..newest.min(5))
                .map(|back| newest - back)
                .collect::<Vec<_>>()
        );
    }
    // One statement for the page of products, one for every product's movements, one for
    // every product's count, whatever the number of products.
    assert!(statements <= 3, "{statements} statements for 50 products");
}

async fn product_movements_pages_forward_and_backward_like_the_ledger(app: TestApp) {
    let product = id_of(&app.create_product("Pages", "PAGES-1", 1, 0).await);
    for _ in 0..6 {
        assert_no_errors(&app.add_stock(&product, 1).await);
    }
    let ledger: Vec<Value> = app
        .movements(&product)
        .await
        .into_iter()
        .map(|movement| movement["id"].clone())
        .collect();
    assert_eq!(ledger.len(), 7);

    let page = |arguments: &str| {
        format!(
            "query($id: ID!) {{ node(id: $id) {{ ... on Product {{ movements({arguments}) {{
                edges {{ node {{ id }} }}
                pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }} }} }}"
        )
    };
    let ids = |response: &Value| -> Vec<Value> {
        response["data"]["node"]["movements"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|edge| edge["node"]["id"].clone())
            .collect()
    };

    // Forward, three at a time.
    let mut forward = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let arguments = match &after {
            Some(cursor) => format!("first: 3, after: \"{cursor}\""),
            None => "first: 3".to_owned(),
        };
        let response = app
            .graphql(&page(&arguments), json!({ "id": product }))
            .await;
        assert_no_errors(&response);
        forward.extend(ids(&response));
        let info = &response["data"]["node"]["movements"]["pageInfo"];
        if info["hasNextPage"] != json!(true) {
            break;
        }
        after = info["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(forward, ledger);

    // Backward, three at a time, each page in listing order.
    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let arguments = match &before {
            Some(cursor) => format!("last: 3, before: \"{cursor}\""),
            None => "last: 3".to_owned(),
        };
        let response = app
            .graphql(&page(&arguments), json!({ "id": product }))
            .await;
        assert_no_errors(&response);
        pages.push(ids(&response));
        let info = &response["data"]["node"]["movements"]["pageInfo"];
        if info["hasPreviousPage"] != json!(true) {
            break;
        }
        before = info["startCursor"].as_str().map(str::to_owned);
    }
    let backward: Vec<Value> = pages.into_iter().rev().flatten().collect();
    assert_eq!(backward, ledger);

    assert_error(
        &app.graphql(&page("first: 1, last: 1"), json!({ "id": product }))
            .await,
        "BAD_USER_INPUT",
    );
    assert_error(
        &app.graphql(&page("after: \"garbage\""), json!({ "id": product }))
            .await,
        "BAD_USER_INPUT",
    );
}
