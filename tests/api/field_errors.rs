//! Field errors as the GraphQL specification has them: a failed nullable field is `null`, a
//! failed non-null field nulls its nearest nullable parent, an error about one argument names it
//! in `extensions.field`, and a broken document is a document error, never a user error.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, id_of};

on_both_backends!(
    a_failed_non_null_field_nulls_its_nearest_nullable_parent,
    errors_about_one_argument_name_it_in_extensions_field,
    integers_past_32_bits_are_document_errors_and_run_nothing,
    a_mutation_selected_twice_under_one_key_runs_once,
);

async fn a_failed_non_null_field_nulls_its_nearest_nullable_parent(app: TestApp) {
    let product = id_of(&app.create_product("Spec", "SPEC-1", 5, 0).await);
    let movement = app.movements(&product).await[0]["id"].clone();

    // `movements(first: -1)` fails; it is non-null, so its Product goes, and `nodes` holds
    // nullable items: that item is null, the other stays.
    let response = app
        .graphql(
            "query($ids: [ID!]!) { nodes(ids: $ids) { id
                ... on Product { movements(first: -1) { totalCount } } } }",
            json!({ "ids": [product, movement] }),
        )
        .await;
    assert_error(&response, "BAD_USER_INPUT");
    assert_eq!(
        response["data"],
        json!({ "nodes": [null, { "id": movement }] })
    );
    assert_eq!(
        response["errors"][0]["path"],
        json!(["nodes", 0, "movements"])
    );

    // Non-null all the way up (products, edges, node, movements): `data` itself is null.
    let response = app
        .graphql(
            "{ products(first: 5) { edges { node { id movements(last: -1) { totalCount } } } } }",
            json!({}),
        )
        .await;
    assert_error(&response, "BAD_USER_INPUT");
    assert_eq!(response["data"], Value::Null);

    // A failed nullable root field is present as null beside the ones that succeeded.
    let response = app
        .graphql(
            "query($id: ID!) { good: product(id: $id) { sku } bad: product(id: \"nope\") { sku } }",
            json!({ "id": product }),
        )
        .await;
    assert_error(&response, "BAD_USER_INPUT");
    assert_eq!(
        response["data"],
        json!({ "good": { "sku": "SPEC-1" }, "bad": null })
    );
    assert_eq!(response["errors"][0]["path"], json!(["bad"]));
}

async fn errors_about_one_argument_name_it_in_extensions_field(app: TestApp) {
    let product = id_of(&app.create_product("Field", "FIELD-1", 5, 0).await);
    let cases = [
        (
            "mutation { createProduct(input: { name: \"A\", sku: \" \" }) { id } }".to_owned(),
            json!(["input", "sku"]),
        ),
        (
            "mutation { createProduct(input: { name: \"\", sku: \"F-2\" }) { id } }".to_owned(),
            json!(["input", "name"]),
        ),
        (
            "mutation { createProduct(input: { name: \"A\", sku: \"F-3\", stock: -1 }) { id } }"
                .to_owned(),
            json!(["input", "stock"]),
        ),
        (
            format!(
                "mutation {{ updateProduct(id: \"{product}\", input: {{ reorderLevel: -1 }}) {{ id }} }}"
            ),
            json!(["input", "reorderLevel"]),
        ),
        (
            format!(
                "mutation {{ addStock(id: \"{product}\", quantity: 0) {{ product {{ id }} }} }}"
            ),
            json!(["quantity"]),
        ),
        (
            format!(
                "mutation {{ reserveStock(productId: \"{product}\", quantity: 1, ttlSeconds: 0) {{ id }} }}"
            ),
            json!(["ttlSeconds"]),
        ),
        (
            "mutation { reserveStock(productId: \"x\", quantity: 1) { id } }".to_owned(),
            json!(["productId"]),
        ),
        ("{ product(id: \"x\") { id } }".to_owned(), json!(["id"])),
        (
            format!(
                "mutation {{ commitReservation(id: \"{}\") {{ id }} }}",
                uuid::Uuid::now_v7()
            ),
            json!(["id"]),
        ),
        (
            format!("mutation {{ updateProduct(id: \"{product}\", input: {{}}) {{ id }} }}"),
            json!(["input"]),
        ),
        (
            "{ products(after: \"garbage\") { totalCount } }".to_owned(),
            json!(["after"]),
        ),
        (
            "{ products(last: -1) { totalCount } }".to_owned(),
            json!(["last"]),
        ),
    ];
    for (query, field) in cases {
        let response = app.graphql(&query, json!({})).await;
        assert_error(&response, "BAD_USER_INPUT");
        assert_eq!(
            response["errors"][0]["extensions"]["field"], field,
            "{query}"
        );
    }
    // Nothing was created or changed by any of them.
    let product = app.product(&product).await;
    assert_eq!(
        (product["stock"].clone(), product["version"].clone()),
        (json!(5), json!(1))
    );
    let count = app.graphql("{ products { totalCount } }", json!({})).await;
    assert_eq!(count["data"]["products"]["totalCount"], json!(1));
}

async fn integers_past_32_bits_are_document_errors_and_run_nothing(app: TestApp) {
    let product = id_of(&app.create_product("Int", "INT-1", 5, 0).await);
    // The first mutation would run if the second's number were caught only when it ran.
    let literal = format!(
        "mutation {{ a: addStock(id: \"{product}\", quantity: 1) {{ product {{ stock }} }}
                     b: addStock(id: \"{product}\", quantity: 99999999999) {{ product {{ stock }} }} }}"
    );
    let in_variable =
        "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }";
    for (query, variables) in [
        (literal.as_str(), json!({})),
        (
            in_variable,
            json!({ "input": { "name": "Big", "sku": "BIG-1", "stock": 4294967296_i64 } }),
        ),
    ] {
        let response = app.graphql(query, variables).await;
        assert_error(&response, "GRAPHQL_VALIDATION_FAILED");
        assert_eq!(response["data"], Value::Null, "{response}");
    }
    assert_eq!(app.product(&product).await["stock"], json!(5));
    assert!(app.movements(&product).await.len() == 1);

    // Only declared variables are coerced; an integer is a valid `ID` input (and a bad id).
    let response = app
        .graphql(
            "{ products { totalCount } }",
            json!({ "sentAt": 1_732_345_678_901_i64 }),
        )
        .await;
    assert_eq!(
        response["data"]["products"]["totalCount"],
        json!(1),
        "{response}"
    );
    let response = app
        .graphql(
            "query($id: ID!) { product(id: $id) { id } }",
            json!({ "id": 99_999_999_999_i64 }),
        )
        .await;
    assert_error(&response, "BAD_USER_INPUT");

    for (query, code) in [
        ("{ products { nope } }", "GRAPHQL_VALIDATION_FAILED"),
        (
            "{ products(first: \"ten\") { totalCount } }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
        ("{ products { totalCount }", "GRAPHQL_PARSE_FAILED"),
    ] {
        assert_error(&app.graphql(query, json!({})).await, code);
    }
}

async fn a_mutation_selected_twice_under_one_key_runs_once(app: TestApp) {
    let product = id_of(&app.create_product("Twice", "TWICE-1", 5, 0).await);
    // The specification merges the two selections into one field: one change, both selections.
    let response = app
        .graphql(
            "mutation($id: ID!) { a: addStock(id: $id, quantity: 1) { newStock }
                                 a: addStock(id: $id, quantity: 1) { product { sku } } }",
            json!({ "id": product }),
        )
        .await;
    assert_eq!(
        response["data"],
        json!({ "a": { "newStock": 6, "product": { "sku": "TWICE-1" } } }),
        "{response}"
    );
    assert_eq!(app.product(&product).await["stock"], json!(6));

    // Through a fragment, or with directives, the repeat cannot be folded: refused, not run.
    for query in [
        "mutation($id: ID!) { a: addStock(id: $id, quantity: 1) { newStock } ...More }
         fragment More on Mutation { a: addStock(id: $id, quantity: 1) { newStock } }",
        "mutation($id: ID!) { a: addStock(id: $id, quantity: 1) { newStock }
                             a: addStock(id: $id, quantity: 1) @include(if: true) { newStock } }",
    ] {
        let response = app.graphql(query, json!({ "id": product })).await;
        assert_error(&response, "GRAPHQL_VALIDATION_FAILED");
        assert_eq!(response["data"], Value::Null);
    }
    assert_eq!(app.product(&product).await["stock"], json!(6));
}
