//! Relay pagination of products and movements, search and filters.

use std::collections::HashSet;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, assert_no_errors, id_of, spawn_app_with};

on_both_backends!(
    walking_every_page_sees_each_product_once_in_a_stable_order_while_others_are_inserted,
    paging_backward_with_last_and_before_sees_the_same_items_in_the_same_order,
    page_size_defaults_to_20_and_is_capped_at_100,
    malformed_cursors_and_negative_page_sizes_are_bad_input,
    search_matches_name_or_sku_in_any_case_and_treats_wildcards_literally,
    status_filter_returns_only_products_with_that_status,
    movements_page_newest_first_with_cursors,
);

const PAGE: &str = "query($first: Int, $after: String, $search: String, $status: StockStatus) {
    products(first: $first, after: $after, search: $search, status: $status) {
        totalCount edges { cursor node { id name sku status } }
        nodes { id } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

async fn create_many(app: &TestApp, prefix: &str, count: usize) -> Vec<String> {
    futures::stream::iter(0..count)
        .map(|i| async move {
            id_of(
                &app.create_product(&format!("{prefix} {i}"), &format!("{prefix}-{i}"), 10, 1)
                    .await,
            )
        })
        .buffered(8)
        .collect()
        .await
}

async fn page(app: &TestApp, variables: Value) -> Value {
    let response = app.graphql(PAGE, variables).await;
    assert_no_errors(&response);
    response["data"]["products"].clone()
}

async fn walking_every_page_sees_each_product_once_in_a_stable_order_while_others_are_inserted(
    app: TestApp,
) {
    let originals: HashSet<String> = create_many(&app, "P", 300).await.into_iter().collect();

    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let products = page(&app, json!({ "first": 37, "after": after })).await;
        let edges = products["edges"].as_array().unwrap();
        assert_eq!(products["nodes"].as_array().unwrap().len(), edges.len());
        for edge in edges {
            seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        if pages == 2 {
            // New products arrive between pages; they must not disturb the walk.
            create_many(&app, "LATE", 20).await;
        }
        if !products["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            assert_eq!(
                products["pageInfo"]["endCursor"],
                edges.last().unwrap()["cursor"]
            );
            break;
        }
        after = products["pageInfo"]["endCursor"].clone();
    }

    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a product was seen twice");
    assert!(
        originals.iter().all(|id| unique.contains(id)),
        "a product was skipped"
    );
    assert_eq!(seen.len(), 320, "late products come at the end, in order");
    let mut sorted = seen.clone();
    sorted.sort_by_key(|id| uuid::Uuid::parse_str(id).unwrap());
    assert_eq!(seen, sorted, "the order is creation (id) order");
}

async fn page_size_defaults_to_20_and_is_capped_at_100(app: TestApp) {
    create_many(&app, "S", 120).await;

    let default = page(&app, json!({})).await;
    assert_eq!(default["edges"].as_array().unwrap().len(), 20);
    assert_eq!(default["totalCount"], 120);
    assert_eq!(default["pageInfo"]["hasNextPage"], true);
    assert_eq!(default["pageInfo"]["hasPreviousPage"], false);

    let capped = page(&app, json!({ "first": 1000 })).await;
    assert_eq!(capped["edges"].as_array().unwrap().len(), 100);

    let empty = page(&app, json!({ "first": 0 })).await;
    assert_eq!(empty["edges"], json!([]));
    assert_eq!(empty["pageInfo"]["endCursor"], Value::Null);
}

async fn malformed_cursors_and_negative_page_sizes_are_bad_input(app: TestApp) {
    for variables in [
        json!({ "after": "definitely-not-a-cursor" }),
        json!({ "after": "" }),
        json!({ "first": -1 }),
    ] {
        assert_error(&app.graphql(PAGE, variables).await, "BAD_USER_INPUT");
    }
}

async fn search_matches_name_or_sku_in_any_case_and_treats_wildcards_literally(app: TestApp) {
    app.create_product("Blue Widget", "BW-1", 5, 0).await;
    app.create_product("Red gadget", "RG-1", 5, 0).await;
    app.create_product("Éclair tin", "ET-1", 5, 0).await;
    app.create_product("50% off bin", "PCT_1", 5, 0).await;

    let names = |products: &Value| -> Vec<String> {
        products["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].to_string())
            .collect()
    };
    let count = |products: &Value| products["totalCount"].as_u64().unwrap();

    assert_eq!(count(&page(&app, json!({ "search": "WIDGET" })).await), 1);
    assert_eq!(count(&page(&app, json!({ "search": "rg-" })).await), 1);
    assert_eq!(count(&page(&app, json!({ "search": "ÉCLAIR" })).await), 1);
    assert_eq!(count(&page(&app, json!({ "search": "%" })).await), 1);
    assert_eq!(count(&page(&app, json!({ "search": "_" })).await), 1);
    assert_eq!(count(&page(&app, json!({ "search": "nothing" })).await), 0);
    let all = page(&app, json!({ "search": "  " })).await;
    assert_eq!(count(&all), 4, "blank search matches everything");
    assert_eq!(names(&all).len(), 4);
}

async fn status_filter_returns_only_products_with_that_status(app: TestApp) {
    app.create_product("Plenty", "ST-1", 50, 5).await;
    app.create_product("Low", "ST-2", 5, 5).await;
    app.create_product("Empty", "ST-3", 0, 1).await;

    let low = page(&app, json!({ "status": "LOW_STOCK" })).await;
    let in_stock = page(&app, json!({ "status": "IN_STOCK" })).await;

    assert_eq!(low["totalCount"], 2);
    assert!(
        low["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["status"] == "LOW_STOCK")
    );
    assert_eq!(in_stock["totalCount"], 1);
    assert_eq!(in_stock["edges"][0]["node"]["sku"], "ST-1");
}

async fn movements_page_newest_first_with_cursors(app: TestApp) {
    let product = app.create_product("Busy", "MOV-1", 100, 0).await;
    let id = id_of(&product);
    for _ in 0..24 {
        app.reduce_stock(&id, 1).await;
    }

    let mut stock_after = Vec::new();
    let mut after = Value::Null;
    loop {
        let response = app
            .graphql(
                "query($id: ID!, $after: String) { stockMovements(productId: $id, first: 7, after: $after) {
                    totalCount nodes { stockAfter } pageInfo { hasNextPage endCursor } } }",
                json!({ "id": id, "after": after }),
            )
            .await;
        assert_no_errors(&response);
        let page = &response["data"]["stockMovements"];
        assert_eq!(page["totalCount"], 25);
        stock_after.extend(
            page["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["stockAfter"].as_i64().unwrap()),
        );
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }

    assert_eq!(
        stock_after,
        (76..=100).collect::<Vec<_>>(),
        "newest first, each once"
    );
}

/// Pages of movements of different products, each with its product: the products come in
/// batched queries, so a page of 50 costs no more statements than a page of 10 (without the
/// DataLoader it would be one statement per movement, 51 for a page of 50). The DataLoader's
/// 1 ms batching window can split a batch into a few when the machine is busy; the bound allows
/// that, never one per movement.
async fn a_page_of_movements_with_their_products_takes_a_fixed_number_of_queries(backend: Backend) {
    // No background sweep during the count.
    let app = spawn_app_with(backend, &["--reservation-sweep-interval", "1h"]).await;
    for i in 0..50 {
        app.create_product(&format!("Loaded {i}"), &format!("LOAD-{i}"), 5, 0)
            .await;
    }
    for page_size in [10, 50] {
        let before = app.services().database().statements_executed();

        let response = app
            .graphql(
                "query($first: Int) { stockMovements(first: $first) { nodes { delta product { sku stock } } } }",
                json!({ "first": page_size }),
            )
            .await;

        let statements = app.services().database().statements_executed() - before;
        assert_no_errors(&response);
        let nodes = response["data"]["stockMovements"]["nodes"]
            .as_array()
            .unwrap();
        assert_eq!(nodes.len(), page_size);
        assert!(nodes.iter().all(|node| {
            node["product"]["sku"]
                .as_str()
                .unwrap()
                .starts_with("LOAD-")
        }));
        assert!(
            statements <= 10,
            "{statements} statements for a page of {page_size}: products were not batched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_movements_with_their_products_takes_a_fixed_number_of_queries_on_sqlite() {
    a_page_of_movements_with_their_products_takes_a_fixed_number_of_queries(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_movements_with_their_products_takes_a_fixed_number_of_queries_on_postgres() {
    a_page_of_movements_with_their_products_takes_a_fixed_number_of_queries(Backend::Postgres)
        .await;
}

/// Every page of `query`'s connection `field`, paging backward from the end with `last` /
/// `before`: the items in listing order, and the number of pages.
async fn walk_backward(app: &TestApp, query: &str, field: &str, variables: Value) -> Vec<String> {
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut before = Value::Null;
    loop {
        let mut variables = variables.clone();
        variables["before"] = before.clone();
        let response = app.graphql(query, variables).await;
        assert_no_errors(&response);
        let page = &response["data"][field];
        let ids: Vec<String> = page["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|node| node["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(page["pageInfo"]["hasNextPage"], !before.is_null());
        pages.push(ids);
        if !page["pageInfo"]["hasPreviousPage"].as_bool().unwrap() {
            break;
        }
        before = page["pageInfo"]["startCursor"].clone();
    }
    pages.into_iter().rev().flatten().collect()
}

async fn paging_backward_with_last_and_before_sees_the_same_items_in_the_same_order(app: TestApp) {
    create_many(&app, "B", 45).await;
    let forward = app
        .graphql("{ products(first: 100) { nodes { id } } }", json!({}))
        .await;
    let forward: Vec<String> = forward["data"]["products"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["id"].as_str().unwrap().to_owned())
        .collect();

    let backward = walk_backward(
        &app,
        "query($before: String) { products(last: 10, before: $before) {
            nodes { id } pageInfo { hasNextPage hasPreviousPage startCursor } } }",
        "products",
        json!({}),
    )
    .await;
    assert_eq!(backward, forward);

    // The ledger too, newest first: backward from the oldest end gives the same order.
    let id = forward[0].clone();
    for _ in 0..12 {
        assert_no_errors(&app.add_stock(&id, 1).await);
    }
    let newest_first: Vec<String> = app
        .movements(&id)
        .await
        .iter()
        .map(|movement| movement["id"].as_str().unwrap().to_owned())
        .collect();
    let ledger = walk_backward(
        &app,
        "query($id: ID!, $before: String) { stockMovements(productId: $id, last: 5, before: $before) {
            nodes { id } pageInfo { hasNextPage hasPreviousPage startCursor } } }",
        "stockMovements",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(ledger, newest_first);

    let mixed = app
        .graphql(
            "{ products(first: 2, last: 2) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_error(&mixed, "BAD_USER_INPUT");
}

/// On PostgreSQL a search for a fragment is answered through the trigram indexes on the folded
/// name and SKU (not by reading every row): after 300,000 products are loaded (fewer, and PostgreSQL rightly prefers to read the table), the server's
/// search finds the right ones and PostgreSQL counts scans of both indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_on_postgres_is_served_by_the_trigram_indexes() {
    use sea_orm::ConnectionTrait;
    let app = crate::helpers::spawn_app(Backend::Postgres).await;
    let database = sea_orm::Database::connect(&app.database_url).await.unwrap();
    database
        .execute_unprepared(
            "INSERT INTO products (id, name, name_key, sku, sku_key, stock, reorder_level, version, created_at, updated_at, reserved) \
             SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(n::bigint), 12, '0'))::uuid, 'Bench ' || n, 'bench ' || n, \
                    'TG-' || n, 'tg-' || n, 5, 1, 1, now(), now(), 0 \
             FROM generate_series(1, 300000) AS n; \
             ANALYZE products",
        )
        .await
        .unwrap();
    let scans = |index: &'static str| {
        let database = database.clone();
        async move {
            let row = database
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!(
                        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = '{index}'"
                    ),
                ))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("the migration creates {index}"));
            row.try_get::<i64>("", "idx_scan").unwrap()
        }
    };
    let before = (
        scans("products_name_key_trgm").await,
        scans("products_sku_key_trgm").await,
    );
    // Statistics reach the view a moment after the statement: search until they show.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let found = page(&app, json!({ "search": "Ch 4711", "first": 50 })).await;
        let skus: HashSet<String> = found["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|edge| edge["node"]["sku"].as_str().unwrap().to_owned())
            .collect();
        // "Bench 4711" and "Bench 47110" to "Bench 47119" (not "Bench 14711": "ch 14711").
        let expected: HashSet<String> = std::iter::once("TG-4711".to_owned())
            .chain((47110..=47119).map(|n| format!("TG-{n}")))
            .collect();
        assert_eq!(skus, expected);
        let after = (
            scans("products_name_key_trgm").await,
            scans("products_sku_key_trgm").await,
        );
        if after.0 > before.0 && after.1 > before.1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scan of the trigram indexes was counted: the search read the table instead"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
