//! The REST facade: same services, the documented bodies and status codes.

use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{RestResponse, TestApp, assert_no_errors, assert_rest_error, id_of};
use crate::stock::assert_chained;

on_both_backends!(
    a_json_array_is_not_a_request_body_and_changes_nothing,
    post_products_creates_and_returns_201_with_the_product_as_graphql_shows_it,
    post_products_refuses_invalid_input_with_400_and_creates_nothing,
    post_products_with_a_taken_sku_in_either_case_is_409,
    add_and_reduce_answer_the_seed_body,
    reducing_beyond_the_stock_is_400_with_the_seed_message_and_changes_nothing,
    zero_negative_and_mistyped_quantities_are_400_and_change_nothing,
    unknown_deleted_and_malformed_products_are_404,
    status_reports_low_stock_when_the_reorder_level_exceeds_the_stock,
    updated_at_moves_on_every_stock_change,
    adding_past_the_stock_cap_is_refused_and_changes_nothing,
    malformed_bodies_and_wrong_content_types_get_the_documented_body,
    unknown_paths_and_methods_get_the_documented_body,
    a_hundred_concurrent_reductions_of_one_against_stock_30_let_exactly_30_succeed,
    changes_through_rest_and_graphql_share_one_ledger,
);

async fn create(app: &TestApp, body: Value) -> RestResponse {
    app.rest(Method::POST, "/products", Some(body)).await
}

async fn change(app: &TestApp, id: &str, action: &str, quantity: Value) -> RestResponse {
    app.rest(
        Method::PUT,
        &format!("/products/{id}/{action}"),
        Some(json!({ "quantity": quantity })),
    )
    .await
}

async fn created_id(app: &TestApp, sku: &str, stock: i64, reorder_level: i64) -> String {
    let response = create(
        app,
        json!({ "name": "Widget", "sku": sku, "stock": stock, "reorderLevel": reorder_level }),
    )
    .await;
    assert_eq!(response.status, 201, "{:#}", response.body);
    id_of(&response.body)
}

async fn get_product(app: &TestApp, id: &str) -> RestResponse {
    app.rest(Method::GET, &format!("/products/{id}"), None)
        .await
}

async fn post_products_creates_and_returns_201_with_the_product_as_graphql_shows_it(app: TestApp) {
    let response = create(
        &app,
        json!({ "name": " Widget ", "sku": "REST-1", "stock": 10, "reorderLevel": 3 }),
    )
    .await;

    assert_eq!(response.status, 201);
    let product = &response.body;
    assert_eq!(product["name"], "Widget");
    assert_eq!(product["sku"], "REST-1");
    assert_eq!(product["stock"], 10);
    assert_eq!(product["reorderLevel"], 3);
    assert_eq!(product["status"], "IN_STOCK");
    assert_eq!(product["version"], 1);
    assert_eq!(product["deletedAt"], Value::Null);
    // Field for field, format for format, what GraphQL shows.
    assert_eq!(&app.product(&id_of(product)).await, product);
    assert_eq!(get_product(&app, &id_of(product)).await.body, *product);
}

async fn post_products_refuses_invalid_input_with_400_and_creates_nothing(app: TestApp) {
    let cases = [
        json!({ "sku": "A-1", "stock": 1, "reorderLevel": 0 }),
        json!({ "name": "", "sku": "A-1", "stock": 1, "reorderLevel": 0 }),
        json!({ "name": "Widget", "stock": 1, "reorderLevel": 0 }),
        json!({ "name": "Widget", "sku": "  ", "stock": 1, "reorderLevel": 0 }),
        json!({ "name": "Widget", "sku": "A-1", "stock": -1, "reorderLevel": 0 }),
        json!({ "name": "Widget", "sku": "A-1", "stock": 1, "reorderLevel": -1 }),
        json!({ "name": "Widget", "sku": "A-1", "stock": 1.5, "reorderLevel": 0 }),
        json!({ "name": "Widget", "sku": "A-1", "stock": "7", "reorderLevel": 0 }),
        json!({ "name": "Widget", "sku": "A-1", "stock": 2_147_483_648_i64, "reorderLevel": 0 }),
        json!({ "name": "Widget", "sku": "A-1", "stock": 1, "reorderLevel": 0, "colour": "blue" }),
        json!({ "name": 7, "sku": "A-1" }),
        json!([]),
    ];
    for body in cases {
        let response = create(&app, body.clone()).await;
        assert_rest_error(&response, 400, "BAD_USER_INPUT");
        assert!(
            !response.body["message"]
                .as_str()
                .unwrap()
                .contains("Failed to deserialize"),
            "{body}"
        );
    }
    let listed = app.graphql("{ products { totalCount } }", json!({})).await;
    assert_eq!(listed["data"]["products"]["totalCount"], 0);
}

async fn post_products_with_a_taken_sku_in_either_case_is_409(app: TestApp) {
    created_id(&app, "Dup-1", 1, 0).await;

    for sku in ["Dup-1", "DUP-1", "dup-1"] {
        let response = create(
            &app,
            json!({ "name": "Again", "sku": sku, "stock": 1, "reorderLevel": 0 }),
        )
        .await;
        assert_rest_error(&response, 409, "SKU_CONFLICT");
    }
}

async fn add_and_reduce_answer_the_seed_body(app: TestApp) {
    let id = created_id(&app, "SEED-1", 10, 2).await;

    let added = change(&app, &id, "add", json!(5)).await;
    let reduced = change(&app, &id, "reduce", json!(12)).await;

    assert_eq!(added.status, 200);
    assert_eq!(
        added.body,
        json!({ "success": true, "productId": id, "newStock": 15 })
    );
    assert_eq!(reduced.status, 200);
    assert_eq!(
        reduced.body,
        json!({ "success": true, "productId": id, "newStock": 3 })
    );
}

async fn reducing_beyond_the_stock_is_400_with_the_seed_message_and_changes_nothing(app: TestApp) {
    let id = created_id(&app, "SHORT-1", 3, 0).await;
    let before = get_product(&app, &id).await.body;

    let response = change(&app, &id, "reduce", json!(4)).await;

    assert_rest_error(&response, 400, "INSUFFICIENT_STOCK");
    assert_eq!(response.body["message"], "Not enough stock available");
    assert_eq!(get_product(&app, &id).await.body, before);
}

async fn zero_negative_and_mistyped_quantities_are_400_and_change_nothing(app: TestApp) {
    let id = created_id(&app, "QTY-1", 10, 0).await;
    let before = get_product(&app, &id).await.body;

    for action in ["add", "reduce"] {
        for quantity in [
            json!(0),
            json!(-3),
            json!(1.5),
            json!("2"),
            json!(null),
            json!(2_147_483_648_i64),
        ] {
            let response = change(&app, &id, action, quantity.clone()).await;
            assert_rest_error(&response, 400, "BAD_USER_INPUT");
        }
        let missing = app
            .rest(
                Method::PUT,
                &format!("/products/{id}/{action}"),
                Some(json!({})),
            )
            .await;
        assert_rest_error(&missing, 400, "BAD_USER_INPUT");
    }
    assert_eq!(get_product(&app, &id).await.body, before);
    assert_eq!(app.movements(&id).await.len(), 1);
}

async fn unknown_deleted_and_malformed_products_are_404(app: TestApp) {
    let deleted = created_id(&app, "GONE-1", 5, 0).await;
    let response = app
        .graphql(
            "mutation($id: ID!) { deleteProduct(id: $id) { id } }",
            json!({ "id": deleted }),
        )
        .await;
    assert_no_errors(&response);
    let unknown = uuid::Uuid::now_v7().to_string();

    for id in [unknown.as_str(), deleted.as_str(), "not-a-uuid"] {
        assert_rest_error(&get_product(&app, id).await, 404, "NOT_FOUND");
        let status = app
            .rest(Method::GET, &format!("/products/{id}/status"), None)
            .await;
        assert_rest_error(&status, 404, "NOT_FOUND");
        assert_rest_error(&change(&app, id, "add", json!(1)).await, 404, "NOT_FOUND");
        assert_rest_error(
            &change(&app, id, "reduce", json!(1)).await,
            404,
            "NOT_FOUND",
        );
    }
}

async fn status_reports_low_stock_when_the_reorder_level_exceeds_the_stock(app: TestApp) {
    let low = created_id(&app, "LOW-1", 3, 10).await;
    let fine = created_id(&app, "FINE-1", 30, 10).await;

    let low_status = app
        .rest(Method::GET, &format!("/products/{low}/status"), None)
        .await;
    let fine_status = app
        .rest(Method::GET, &format!("/products/{fine}/status"), None)
        .await;

    assert_eq!(low_status.status, 200);
    assert_eq!(
        low_status.body,
        json!({ "sku": "LOW-1", "stock": 3, "reorderLevel": 10, "status": "LOW_STOCK" })
    );
    assert_eq!(fine_status.body["status"], "IN_STOCK");
}

async fn updated_at_moves_on_every_stock_change(app: TestApp) {
    let id = created_id(&app, "TIME-1", 10, 0).await;
    let mut previous = get_product(&app, &id).await.body["updatedAt"]
        .as_str()
        .unwrap()
        .to_owned();

    for action in ["add", "reduce", "add", "reduce"] {
        assert_eq!(change(&app, &id, action, json!(1)).await.status, 200);
        let current = get_product(&app, &id).await.body["updatedAt"]
            .as_str()
            .unwrap()
            .to_owned();
        let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
        assert!(
            parse(&current) > parse(&previous),
            "{action}: {current} <= {previous}"
        );
        previous = current;
    }
}

async fn adding_past_the_stock_cap_is_refused_and_changes_nothing(app: TestApp) {
    let id = created_id(&app, "CAP-1", i64::from(i32::MAX) - 1, 0).await;
    let before = get_product(&app, &id).await.body;

    let response = change(&app, &id, "add", json!(2)).await;

    assert_rest_error(&response, 400, "STOCK_LIMIT_EXCEEDED");
    assert_eq!(get_product(&app, &id).await.body, before);
}

async fn malformed_bodies_and_wrong_content_types_get_the_documented_body(app: TestApp) {
    let id = created_id(&app, "RAW-1", 10, 0).await;
    let cases = [
        (
            Method::POST,
            "/products".to_owned(),
            "application/json",
            "{\"name\": ",
        ),
        (
            Method::POST,
            "/products".to_owned(),
            "text/plain",
            "{\"name\":\"W\",\"sku\":\"X\"}",
        ),
        (
            Method::PUT,
            format!("/products/{id}/reduce"),
            "application/json",
            "quantity=1",
        ),
        (
            Method::PUT,
            format!("/products/{id}/add"),
            "application/x-www-form-urlencoded",
            "quantity=1",
        ),
        (
            Method::PUT,
            format!("/products/{id}/add"),
            "application/json",
            "",
        ),
    ];
    for (method, path, content_type, body) in cases {
        let response = app.rest_raw(method, &path, content_type, body).await;
        assert_rest_error(&response, 400, "BAD_USER_INPUT");
    }
    assert_eq!(get_product(&app, &id).await.body["stock"], 10);
}

async fn unknown_paths_and_methods_get_the_documented_body(app: TestApp) {
    let missing = app.rest(Method::GET, "/nowhere", None).await;
    assert_rest_error(&missing, 404, "NOT_FOUND");

    let wrong_method = app.rest(Method::DELETE, "/products", None).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.body["error"], true);
}

async fn a_hundred_concurrent_reductions_of_one_against_stock_30_let_exactly_30_succeed(
    app: TestApp,
) {
    let id = created_id(&app, "RUSH-1", 30, 0).await;

    let responses = join_all((0..100).map(|_| change(&app, &id, "reduce", json!(1)))).await;

    let ok = responses.iter().filter(|r| r.status == 200).count();
    let short = responses
        .iter()
        .filter(|r| r.status == 400 && r.body["message"] == "Not enough stock available")
        .count();
    assert_eq!((ok, short), (30, 70));
    assert_eq!(get_product(&app, &id).await.body["stock"], 0);
    assert_chained(&app.movements(&id).await, 0);
}

async fn changes_through_rest_and_graphql_share_one_ledger(app: TestApp) {
    let id = created_id(&app, "BOTH-1", 20, 0).await;

    for round in 0..5 {
        assert_eq!(
            change(&app, &id, "reduce", json!(3)).await.status,
            200,
            "round {round}"
        );
        assert_no_errors(&app.add_stock(&id, 1).await);
        assert_no_errors(&app.reduce_stock(&id, 1).await);
        assert_eq!(
            change(&app, &id, "add", json!(2)).await.status,
            200,
            "round {round}"
        );
    }

    let rest_view = get_product(&app, &id).await.body;
    assert_eq!(rest_view["stock"], 15);
    assert_eq!(rest_view["version"], 21);
    assert_eq!(app.product(&id).await, rest_view);
    let movements = app.movements(&id).await;
    assert_eq!(movements.len(), 21);
    assert_chained(&movements, 15);
}

async fn a_json_array_is_not_a_request_body_and_changes_nothing(app: TestApp) {
    let id = id_of(&app.create_product("Arrays", "ARR-1", 10, 0).await);

    // serde's derived structs would read these as the fields in order.
    let add = app
        .rest(
            Method::PUT,
            &format!("/products/{id}/add"),
            Some(json!([5])),
        )
        .await;
    assert_rest_error(&add, 400, "BAD_USER_INPUT");
    let create = app
        .rest(Method::POST, "/products", Some(json!(["n", "ARR-2", 5, 1])))
        .await;
    assert_rest_error(&create, 400, "BAD_USER_INPUT");
    assert!(
        create.body["message"]
            .as_str()
            .unwrap()
            .contains("JSON object"),
        "{:#}",
        create.body
    );

    let fraction = app
        .rest(
            Method::PUT,
            &format!("/products/{id}/add"),
            Some(json!({ "quantity": 1.5 })),
        )
        .await;
    assert_rest_error(&fraction, 400, "BAD_USER_INPUT");
    assert!(
        fraction.body["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid request body: quantity:"),
        "{:#}",
        fraction.body
    );
    assert_eq!(app.product(&id).await["stock"], 10);
    let created = app
        .graphql("{ productBySku(sku: \"ARR-2\") { id } }", json!({}))
        .await;
    assert_eq!(
        created["data"]["productBySku"],
        Value::Null,
        "nothing was created"
    );
}
