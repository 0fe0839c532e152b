//! `addStock` and `reduceStock`: every rule, and the ledger they write.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_no_errors, error_code, id_of};

on_both_backends!(
    add_stock_adds_and_records_a_movement,
    reduce_stock_reduces_and_records_a_movement_with_reason_and_actor,
    reducing_exactly_the_stock_on_hand_leaves_zero,
    reducing_beyond_the_stock_is_insufficient_stock_and_changes_nothing,
    zero_negative_and_non_integer_quantities_are_bad_input_and_change_nothing,
    adding_past_the_stock_cap_is_refused_and_changes_nothing,
    updated_at_and_version_advance_on_every_stock_change,
    the_ledger_sums_to_the_stock_and_chains_each_change_to_the_next,
    stock_movements_lists_the_whole_ledger_newest_first,
);

async fn add_stock_adds_and_records_a_movement(app: TestApp) {
    let product = app.create_product("Widget", "ADD-1", 5, 2).await;

    let response = app.add_stock(&id_of(&product), 7).await;

    assert_no_errors(&response);
    let change = &response["data"]["addStock"];
    assert_eq!(change["success"], true);
    assert_eq!(change["productId"], product["id"]);
    assert_eq!(change["newStock"], 12);
    assert_eq!(change["product"]["stock"], 12);
    let movement = &change["movement"];
    assert_eq!(movement["kind"], "ADD");
    assert_eq!(movement["quantity"], 7);
    assert_eq!(movement["delta"], 7);
    assert_eq!(movement["stockBefore"], 5);
    assert_eq!(movement["stockAfter"], 12);
    assert_eq!(movement["productId"], product["id"]);
}

async fn reduce_stock_reduces_and_records_a_movement_with_reason_and_actor(app: TestApp) {
    let product = app.create_product("Widget", "RED-1", 5, 2).await;

    let response = app
        .graphql(
            "mutation($id: ID!) { reduceStock(id: $id, quantity: 3, reason: \" order 42 \") {
                newStock movement { kind quantity delta stockBefore stockAfter reason actor } } }",
            json!({ "id": id_of(&product) }),
        )
        .await;

    assert_no_errors(&response);
    let change = &response["data"]["reduceStock"];
    assert_eq!(change["newStock"], 2);
    assert_eq!(
        change["movement"],
        json!({ "kind": "REDUCE", "quantity": 3, "delta": -3, "stockBefore": 5, "stockAfter": 2,
                "reason": "order 42", "actor": "anonymous" })
    );
}

async fn reducing_exactly_the_stock_on_hand_leaves_zero(app: TestApp) {
    let product = app.create_product("Widget", "EXACT-1", 4, 0).await;

    let response = app.reduce_stock(&id_of(&product), 4).await;

    assert_no_errors(&response);
    assert_eq!(response["data"]["reduceStock"]["newStock"], 0);
    assert_eq!(
        response["data"]["reduceStock"]["product"]["status"],
        "LOW_STOCK"
    );
}

async fn reducing_beyond_the_stock_is_insufficient_stock_and_changes_nothing(app: TestApp) {
    let product = app.create_product("Widget", "SHORT-1", 3, 0).await;
    let id = id_of(&product);

    let response = app.reduce_stock(&id, 4).await;

    assert_error(&response, "INSUFFICIENT_STOCK");
    assert_eq!(
        response["errors"][0]["message"],
        "Not enough stock available"
    );
    assert_eq!(response["errors"][0]["extensions"]["available"], 3);
    assert_eq!(response["errors"][0]["extensions"]["requested"], 4);
    // The mutation's payload is nullable: it is null, and the error says why.
    assert_eq!(response["data"], json!({ "reduceStock": null }));
    assert_eq!(app.product(&id).await, product);
    assert_eq!(app.movements(&id).await.len(), 1);
}

async fn zero_negative_and_non_integer_quantities_are_bad_input_and_change_nothing(app: TestApp) {
    let product = app.create_product("Widget", "QTY-1", 10, 0).await;
    let id = id_of(&product);

    for mutation in ["addStock", "reduceStock"] {
        for quantity in [
            json!(0),
            json!(-1),
            json!(i32::MIN),
            json!(1.5),
            json!("3"),
            json!(null),
        ] {
            let response = app
                .graphql(
                    &format!("mutation($id: ID!, $q: Int!) {{ {mutation}(id: $id, quantity: $q) {{ newStock }} }}"),
                    json!({ "id": id, "q": quantity }),
                )
                .await;
            // Not an `Int!` at all: the variables do not validate; an `Int` below 1 breaks a rule.
            let expected = if quantity.is_i64() {
                "BAD_USER_INPUT"
            } else {
                "GRAPHQL_VALIDATION_FAILED"
            };
            assert_eq!(
                error_code(&response),
                Some(expected),
                "{mutation}({quantity}): {response:#}"
            );
        }
        let malformed = app.change_stock(mutation, "not-a-uuid", 1).await;
        assert_error(&malformed, "BAD_USER_INPUT");
        let long_reason = app
            .graphql(
                &format!("mutation($id: ID!, $r: String) {{ {mutation}(id: $id, quantity: 1, reason: $r) {{ newStock }} }}"),
                json!({ "id": id, "r": "r".repeat(501) }),
            )
            .await;
        assert_error(&long_reason, "BAD_USER_INPUT");
    }
    assert_eq!(app.product(&id).await, product);
    assert_eq!(app.movements(&id).await.len(), 1);
}

async fn adding_past_the_stock_cap_is_refused_and_changes_nothing(app: TestApp) {
    let product = app
        .create_product("Widget", "CAP-1", i64::from(i32::MAX) - 5, 0)
        .await;
    let id = id_of(&product);

    let response = app.add_stock(&id, 6).await;
    assert_error(&response, "STOCK_LIMIT_EXCEEDED");
    let response = app.add_stock(&id, i64::from(i32::MAX)).await;
    assert_error(&response, "STOCK_LIMIT_EXCEEDED");
    assert_eq!(app.product(&id).await, product);

    // Up to the cap exactly is fine.
    let response = app.add_stock(&id, 5).await;
    assert_no_errors(&response);
    assert_eq!(response["data"]["addStock"]["newStock"], i32::MAX);
}

async fn updated_at_and_version_advance_on_every_stock_change(app: TestApp) {
    let product = app.create_product("Widget", "TIME-1", 10, 0).await;
    let id = id_of(&product);
    let mut previous = product;

    for step in 0..6 {
        let response = if step % 2 == 0 {
            app.reduce_stock(&id, 1).await
        } else {
            app.add_stock(&id, 2).await
        };
        assert_no_errors(&response);
        let data = &response["data"];
        let change = data.get("reduceStock").unwrap_or(&data["addStock"]);
        let current = &change["product"];
        let (before, after) = (
            parse_time(&previous["updatedAt"]),
            parse_time(&current["updatedAt"]),
        );
        assert!(
            after > before,
            "step {step}: updatedAt {after} is not after {before}"
        );
        assert_eq!(
            current["version"].as_i64(),
            previous["version"].as_i64().map(|v| v + 1)
        );
        assert_eq!(current["createdAt"], previous["createdAt"]);
        previous = current.clone();
    }
}

fn parse_time(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp")).expect("RFC 3339")
}

async fn the_ledger_sums_to_the_stock_and_chains_each_change_to_the_next(app: TestApp) {
    let product = app.create_product("Widget", "LEDGER-1", 20, 0).await;
    let id = id_of(&product);
    for (add, quantity) in [(false, 5), (true, 3), (false, 100), (false, 18), (true, 1)] {
        if add {
            app.add_stock(&id, quantity).await;
        } else {
            app.reduce_stock(&id, quantity).await;
        }
    }

    let movements = app.movements(&id).await;
    let stock = app.product(&id).await["stock"].as_i64().unwrap();

    assert_eq!(stock, 1);
    let kinds: Vec<&str> = movements
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["ADD", "REDUCE", "ADD", "REDUCE", "INITIAL"],
        "newest first; the refused one is absent"
    );
    let sum: i64 = movements.iter().map(|m| m["delta"].as_i64().unwrap()).sum();
    assert_eq!(sum, stock);
    assert_chained(&movements, stock);
}

/// Asserts that each movement (given newest first) starts where the one before it ended, the
/// oldest starts at 0 and the newest ends at `stock`: a lost update would break the chain.
pub fn assert_chained(movements: &[Value], stock: i64) {
    let mut expected_before = 0;
    for movement in movements.iter().rev() {
        let before = movement["stockBefore"].as_i64().unwrap();
        let after = movement["stockAfter"].as_i64().unwrap();
        assert_eq!(before, expected_before, "chain broken at {movement}");
        assert_eq!(after - before, movement["delta"].as_i64().unwrap());
        assert!(after >= 0);
        expected_before = after;
    }
    assert_eq!(expected_before, stock);
}

async fn stock_movements_lists_the_whole_ledger_newest_first(app: TestApp) {
    let first = app.create_product("First", "ALL-1", 1, 0).await;
    app.create_product("Second", "ALL-2", 2, 0).await;
    app.add_stock(&id_of(&first), 4).await;

    let response = app
        .graphql(
            "{ stockMovements { totalCount nodes { kind delta product { sku } } } }",
            json!({}),
        )
        .await;

    assert_no_errors(&response);
    let ledger = &response["data"]["stockMovements"];
    assert_eq!(ledger["totalCount"], 3);
    assert_eq!(
        ledger["nodes"],
        json!([
            { "kind": "ADD", "delta": 4, "product": { "sku": "ALL-1" } },
            { "kind": "INITIAL", "delta": 2, "product": { "sku": "ALL-2" } },
            { "kind": "INITIAL", "delta": 1, "product": { "sku": "ALL-1" } },
        ])
    );
}
