//! Creating, reading, updating, deleting and restoring products, and every input rule.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_no_errors, error_code, id_of};

on_both_backends!(
    text_with_a_nul_character_is_bad_input_in_every_argument_on_both_backends,
    create_product_returns_every_field_and_starts_at_version_1,
    create_product_trims_name_and_sku_and_stores_sku_as_given,
    create_product_refuses_each_invalid_input_and_creates_nothing,
    create_product_with_a_sku_taken_in_another_case_is_a_sku_conflict,
    two_concurrent_creates_of_one_sku_in_different_case_let_exactly_one_win,
    status_is_low_stock_when_stock_is_at_or_below_the_reorder_level,
    product_by_sku_ignores_case_and_product_status_reports_the_seed_fields,
    reading_an_unknown_product_gives_null_and_a_malformed_id_is_bad_input,
    update_product_changes_fields_and_bumps_the_version,
    update_product_with_a_stale_expected_version_is_a_version_conflict,
    update_product_refuses_invalid_input_and_sku_conflicts,
    deleted_products_read_as_null_and_free_their_sku,
    restore_product_brings_it_back_unless_its_sku_was_taken,
    mutations_on_unknown_or_deleted_products_are_not_found,
);

async fn create_product_returns_every_field_and_starts_at_version_1(app: TestApp) {
    let product = app.create_product("Widget", "WID-1", 10, 3).await;

    assert!(uuid::Uuid::parse_str(product["id"].as_str().unwrap()).is_ok());
    assert_eq!(product["name"], "Widget");
    assert_eq!(product["sku"], "WID-1");
    assert_eq!(product["stock"], 10);
    assert_eq!(product["reorderLevel"], 3);
    assert_eq!(product["status"], "IN_STOCK");
    assert_eq!(product["version"], 1);
    assert_eq!(product["createdAt"], product["updatedAt"]);
    assert!(chrono::DateTime::parse_from_rfc3339(product["createdAt"].as_str().unwrap()).is_ok());
    assert_eq!(product["deletedAt"], Value::Null);
    // The response and a later read agree to the microsecond.
    assert_eq!(app.product(&id_of(&product)).await, product);
}

async fn create_product_trims_name_and_sku_and_stores_sku_as_given(app: TestApp) {
    let product = app.create_product("  Blue Widget ", " AbC-9 ", 0, 0).await;

    assert_eq!(product["name"], "Blue Widget");
    assert_eq!(product["sku"], "AbC-9");
}

async fn create_product_refuses_each_invalid_input_and_creates_nothing(app: TestApp) {
    let too_long_name = "n".repeat(201);
    let too_long_sku = "s".repeat(65);
    let cases = [
        (
            "missing name",
            json!({ "sku": "A-1", "stock": 1, "reorderLevel": 0 }),
        ),
        (
            "empty name",
            json!({ "name": "", "sku": "A-1", "stock": 1, "reorderLevel": 0 }),
        ),
        (
            "blank name",
            json!({ "name": "   ", "sku": "A-1", "stock": 1, "reorderLevel": 0 }),
        ),
        (
            "name too long",
            json!({ "name": too_long_name, "sku": "A-1", "stock": 1, "reorderLevel": 0 }),
        ),
        (
            "name with NUL",
            json!({ "name": "a\u{0}b", "sku": "A-1", "stock": 1, "reorderLevel": 0 }),
        ),
        (
            "missing sku",
            json!({ "name": "Widget", "stock": 1, "reorderLevel": 0 }),
        ),
        (
            "empty sku",
            json!({ "name": "Widget", "sku": " ", "stock": 1, "reorderLevel": 0 }),
        ),
        (
            "sku too long",
            json!({ "name": "Widget", "sku": too_long_sku, "stock": 1, "reorderLevel": 0 }),
        ),
        (
            "negative stock",
            json!({ "name": "Widget", "sku": "A-1", "stock": -1, "reorderLevel": 0 }),
        ),
        (
            "negative reorder level",
            json!({ "name": "Widget", "sku": "A-1", "stock": 1, "reorderLevel": -5 }),
        ),
        (
            "fractional stock",
            json!({ "name": "Widget", "sku": "A-1", "stock": 1.5, "reorderLevel": 0 }),
        ),
        (
            "stock as a string",
            json!({ "name": "Widget", "sku": "A-1", "stock": "10", "reorderLevel": 0 }),
        ),
        (
            "stock past Int",
            json!({ "name": "Widget", "sku": "A-1", "stock": 2_147_483_648_i64, "reorderLevel": 0 }),
        ),
    ];
    for (case, input) in cases {
        let response = app.try_create_product(input).await;
        // A value of the wrong type (a number past `Int` included), or a missing one, does not
        // validate against the schema; a value of the right type that breaks a rule is bad
        // input.
        let expected = if case.starts_with("missing")
            || ["fractional stock", "stock as a string", "stock past Int"].contains(&case)
        {
            "GRAPHQL_VALIDATION_FAILED"
        } else {
            "BAD_USER_INPUT"
        };
        assert_eq!(
            error_code(&response),
            Some(expected),
            "{case}: {response:#}"
        );
        // A document that does not validate (or holds a NUL character) runs nothing: `data` is
        // null. A refusal by the mutation itself leaves its (nullable) payload null.
        let data = if expected == "GRAPHQL_VALIDATION_FAILED" || case == "name with NUL" {
            Value::Null
        } else {
            json!({ "createProduct": null })
        };
        assert_eq!(response["data"], data, "{case}: {response}");
    }

    let listed = app
        .graphql(
            "{ products { totalCount } stockMovements { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["data"]["products"]["totalCount"], 0);
    assert_eq!(listed["data"]["stockMovements"]["totalCount"], 0);
}

async fn create_product_with_a_sku_taken_in_another_case_is_a_sku_conflict(app: TestApp) {
    app.create_product("Widget", "ABC-1", 5, 0).await;

    for sku in ["ABC-1", "abc-1", " aBc-1 "] {
        let response = app
            .try_create_product(
                json!({ "name": "Other", "sku": sku, "stock": 1, "reorderLevel": 0 }),
            )
            .await;
        assert_error(&response, "SKU_CONFLICT");
    }
    let listed = app.graphql("{ products { totalCount } }", json!({})).await;
    assert_eq!(listed["data"]["products"]["totalCount"], 1);
}

async fn two_concurrent_creates_of_one_sku_in_different_case_let_exactly_one_win(app: TestApp) {
    for round in 0..10 {
        let upper = format!("RACE-{round}");
        let lower = upper.to_lowercase();
        let (first, second) = tokio::join!(
            app.try_create_product(
                json!({ "name": "A", "sku": upper, "stock": 1, "reorderLevel": 0 })
            ),
            app.try_create_product(
                json!({ "name": "B", "sku": lower, "stock": 1, "reorderLevel": 0 })
            ),
        );
        let codes = [error_code(&first), error_code(&second)];
        assert!(
            codes == [None, Some("SKU_CONFLICT")] || codes == [Some("SKU_CONFLICT"), None],
            "round {round}: {first:#} {second:#}"
        );
    }
    let listed = app.graphql("{ products { totalCount } }", json!({})).await;
    assert_eq!(listed["data"]["products"]["totalCount"], 10);
}

async fn status_is_low_stock_when_stock_is_at_or_below_the_reorder_level(app: TestApp) {
    let above = app.create_product("Above", "S-1", 6, 5).await;
    let equal = app.create_product("Equal", "S-2", 5, 5).await;
    let below = app.create_product("Below", "S-3", 2, 5).await;
    let empty = app.create_product("Empty", "S-4", 0, 0).await;

    assert_eq!(above["status"], "IN_STOCK");
    assert_eq!(equal["status"], "LOW_STOCK");
    assert_eq!(below["status"], "LOW_STOCK");
    assert_eq!(empty["status"], "LOW_STOCK");

    let reduced = app.reduce_stock(&id_of(&above), 1).await;
    assert_eq!(
        reduced["data"]["reduceStock"]["product"]["status"],
        "LOW_STOCK"
    );
}

async fn product_by_sku_ignores_case_and_product_status_reports_the_seed_fields(app: TestApp) {
    let product = app.create_product("Widget", "MiXeD-1", 4, 5).await;

    let response = app
        .graphql(
            "query($id: ID!) { productBySku(sku: \"mixed-1\") { id sku }
               productStatus(id: $id) { sku stock reorderLevel status } }",
            json!({ "id": id_of(&product) }),
        )
        .await;

    assert_no_errors(&response);
    assert_eq!(response["data"]["productBySku"]["id"], product["id"]);
    assert_eq!(response["data"]["productBySku"]["sku"], "MiXeD-1");
    assert_eq!(
        response["data"]["productStatus"],
        json!({ "sku": "MiXeD-1", "stock": 4, "reorderLevel": 5, "status": "LOW_STOCK" })
    );
}

async fn reading_an_unknown_product_gives_null_and_a_malformed_id_is_bad_input(app: TestApp) {
    let unknown = uuid::Uuid::now_v7().to_string();
    let response = app
        .graphql(
            "query($id: ID!) { product(id: $id) { id } productStatus(id: $id) { sku }
               productBySku(sku: \"nope\") { id } }",
            json!({ "id": unknown }),
        )
        .await;
    assert_no_errors(&response);
    assert_eq!(
        response["data"],
        json!({ "product": null, "productStatus": null, "productBySku": null })
    );

    let response = app
        .graphql("{ product(id: \"not-a-uuid\") { id } }", json!({}))
        .await;
    assert_error(&response, "BAD_USER_INPUT");
}

const UPDATE: &str = "mutation($id: ID!, $input: UpdateProductInput!, $expected: Int) {
    updateProduct(id: $id, input: $input, expectedVersion: $expected) { id name sku reorderLevel status version updatedAt } }";

async fn update_product_changes_fields_and_bumps_the_version(app: TestApp) {
    let product = app.create_product("Widget", "U-1", 10, 2).await;
    let id = id_of(&product);

    let response = app
        .graphql(
            UPDATE,
            json!({ "id": id, "input": { "name": " Gadget ", "sku": "u-2", "reorderLevel": 10 }, "expected": 1 }),
        )
        .await;

    assert_no_errors(&response);
    let updated = &response["data"]["updateProduct"];
    assert_eq!(updated["name"], "Gadget");
    assert_eq!(updated["sku"], "u-2");
    assert_eq!(updated["reorderLevel"], 10);
    assert_eq!(updated["status"], "LOW_STOCK");
    assert_eq!(updated["version"], 2);
    assert!(updated["updatedAt"].as_str() > product["updatedAt"].as_str());

    // Without expectedVersion the update applies to whatever is current.
    let response = app
        .graphql(UPDATE, json!({ "id": id, "input": { "reorderLevel": 1 } }))
        .await;
    assert_no_errors(&response);
    assert_eq!(response["data"]["updateProduct"]["version"], 3);
}

async fn update_product_with_a_stale_expected_version_is_a_version_conflict(app: TestApp) {
    let product = app.create_product("Widget", "V-1", 10, 2).await;
    let id = id_of(&product);
    app.add_stock(&id, 1).await; // version 2

    let response = app
        .graphql(
            UPDATE,
            json!({ "id": id, "input": { "name": "Stale" }, "expected": 1 }),
        )
        .await;

    assert_error(&response, "VERSION_CONFLICT");
    assert_eq!(response["errors"][0]["extensions"]["currentVersion"], 2);
    let current = app.product(&id).await;
    assert_eq!(current["name"], "Widget");
    assert_eq!(current["version"], 2);

    let delete = app
        .graphql(
            "mutation($id: ID!) { deleteProduct(id: $id, expectedVersion: 1) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_error(&delete, "VERSION_CONFLICT");
    assert_eq!(app.product(&id).await["deletedAt"], Value::Null);
}

async fn update_product_refuses_invalid_input_and_sku_conflicts(app: TestApp) {
    app.create_product("Taken", "TAKEN-1", 1, 0).await;
    let product = app.create_product("Widget", "W-1", 10, 2).await;
    let id = id_of(&product);

    let cases = [
        (json!({}), "BAD_USER_INPUT"),
        (json!({ "name": "" }), "BAD_USER_INPUT"),
        (json!({ "sku": "   " }), "BAD_USER_INPUT"),
        (json!({ "reorderLevel": -1 }), "BAD_USER_INPUT"),
        (json!({ "sku": "taken-1" }), "SKU_CONFLICT"),
        (json!({ "name": "Fine", "sku": "TAKEN-1" }), "SKU_CONFLICT"),
    ];
    for (input, code) in cases {
        let response = app
            .graphql(UPDATE, json!({ "id": id, "input": input }))
            .await;
        assert_eq!(error_code(&response), Some(code), "{input}: {response:#}");
    }
    let malformed = app
        .graphql(UPDATE, json!({ "id": "42", "input": { "name": "X" } }))
        .await;
    assert_error(&malformed, "BAD_USER_INPUT");

    assert_eq!(app.product(&id).await, product, "nothing changed");
}

const DELETE: &str = "mutation($id: ID!) { deleteProduct(id: $id) { id version deletedAt } }";
const RESTORE: &str = "mutation($id: ID!) { restoreProduct(id: $id) { id sku version deletedAt } }";

async fn deleted_products_read_as_null_and_free_their_sku(app: TestApp) {
    let product = app.create_product("Widget", "DEL-1", 3, 0).await;
    let id = id_of(&product);

    let response = app.graphql(DELETE, json!({ "id": id })).await;
    assert_no_errors(&response);
    assert!(response["data"]["deleteProduct"]["deletedAt"].is_string());
    assert_eq!(response["data"]["deleteProduct"]["version"], 2);

    assert_eq!(app.product(&id).await, Value::Null);
    let reads = app
        .graphql(
            "query($id: ID!) { productStatus(id: $id) { sku } productBySku(sku: \"del-1\") { id }
               products { totalCount } all: products(includeDeleted: true) { totalCount nodes { id deletedAt } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(reads["data"]["productStatus"], Value::Null);
    assert_eq!(reads["data"]["productBySku"], Value::Null);
    assert_eq!(reads["data"]["products"]["totalCount"], 0);
    assert_eq!(reads["data"]["all"]["totalCount"], 1);

    // Its SKU is free again, in any case; its ledger stays.
    let successor = app.create_product("Successor", "del-1", 1, 0).await;
    assert_eq!(successor["sku"], "del-1");
    assert_eq!(app.movements(&id).await.len(), 1);
}

async fn restore_product_brings_it_back_unless_its_sku_was_taken(app: TestApp) {
    let first = app.create_product("First", "RES-1", 3, 0).await;
    let second = app.create_product("Second", "RES-2", 3, 0).await;
    for product in [&first, &second] {
        assert_no_errors(&app.graphql(DELETE, json!({ "id": id_of(product) })).await);
    }

    let restored = app.graphql(RESTORE, json!({ "id": id_of(&first) })).await;
    assert_no_errors(&restored);
    assert_eq!(restored["data"]["restoreProduct"]["deletedAt"], Value::Null);
    assert_eq!(restored["data"]["restoreProduct"]["version"], 3);
    assert_eq!(app.product(&id_of(&first)).await["sku"], "RES-1");

    app.create_product("Usurper", "res-2", 1, 0).await;
    let conflict = app.graphql(RESTORE, json!({ "id": id_of(&second) })).await;
    assert_error(&conflict, "SKU_CONFLICT");
    assert_eq!(
        app.product(&id_of(&second)).await,
        Value::Null,
        "still deleted"
    );
}

async fn mutations_on_unknown_or_deleted_products_are_not_found(app: TestApp) {
    let deleted = app.create_product("Gone", "GONE-1", 5, 0).await;
    assert_no_errors(&app.graphql(DELETE, json!({ "id": id_of(&deleted) })).await);
    let unknown = uuid::Uuid::now_v7().to_string();

    for id in [unknown.as_str(), deleted["id"].as_str().unwrap()] {
        assert_error(&app.add_stock(id, 1).await, "NOT_FOUND");
        assert_error(&app.reduce_stock(id, 1).await, "NOT_FOUND");
        assert_error(&app.graphql(DELETE, json!({ "id": id })).await, "NOT_FOUND");
        let update = app
            .graphql(UPDATE, json!({ "id": id, "input": { "name": "X" } }))
            .await;
        assert_error(&update, "NOT_FOUND");
    }
    assert_error(
        &app.graphql(RESTORE, json!({ "id": unknown })).await,
        "NOT_FOUND",
    );
}

async fn text_with_a_nul_character_is_bad_input_in_every_argument_on_both_backends(app: TestApp) {
    let nul = "A\u{0}B";
    for (query, variables) in [
        (
            "query($s: String!) { productBySku(sku: $s) { id } }",
            json!({ "s": nul }),
        ),
        (
            "query($s: String) { products(search: $s) { totalCount } }",
            json!({ "s": nul }),
        ),
        ("{ productBySku(sku: \"A\\u0000B\") { id } }", json!({})),
        (
            "query { ...F } fragment F on Query { products(search: \"\\u0000\") { totalCount } }",
            json!({}),
        ),
        (
            "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }",
            json!({ "input": { "name": "Nul", "sku": nul, "stock": 1, "reorderLevel": 0 } }),
        ),
    ] {
        let response = app.graphql(query, variables).await;
        assert_eq!(
            error_code(&response),
            Some("BAD_USER_INPUT"),
            "{query}: {response:#}"
        );
        assert!(
            response["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("NUL"),
            "{query}: {response:#}"
        );
    }
    let listed = app.graphql("{ products { totalCount } }", json!({})).await;
    assert_eq!(
        listed["data"]["products"]["totalCount"], 0,
        "nothing was created"
    );
}
