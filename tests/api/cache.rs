//! Reads from memory: `product`, `productBySku`, `productStatus` and the REST GETs come from a
//! cache that every committed change keeps current, on every instance.

use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, assert_no_errors, error_code, id_of, spawn_app, spawn_app_with, test_seed,
};

on_both_backends!(an_instance_reads_its_own_writes_at_once);

const READ: &str = "query($id: ID!, $sku: String!) {
    product(id: $id) { name sku stock version }
    productBySku(sku: $sku) { name sku stock version }
    productStatus(id: $id) { stock status } }";

async fn read(app: &TestApp, id: &str, sku: &str) -> Value {
    let response = app.graphql(READ, json!({ "id": id, "sku": sku })).await;
    assert_no_errors(&response);
    response["data"].clone()
}

async fn rename(app: &TestApp, id: &str, name: &str) {
    let response = app
        .graphql(
            "mutation($id: ID!, $name: String!) { updateProduct(id: $id, input: { name: $name }) { id } }",
            json!({ "id": id, "name": name }),
        )
        .await;
    assert_no_errors(&response);
}

async fn an_instance_reads_its_own_writes_at_once(app: TestApp) {
    let id = id_of(&app.create_product("Cached", "CACHE-1", 100, 5).await);
    for round in 0..30 {
        // Read first, so the product is cached; then each change must show on the next read.
        read(&app, &id, "CACHE-1").await;
        let name = format!("Cached {round}");
        rename(&app, &id, &name).await;
        let after = read(&app, &id, "cache-1").await;
        assert_eq!(after["product"]["name"], name);
        assert_eq!(after["productBySku"]["name"], name);
        app.reduce_stock(&id, 1).await;
        let after = read(&app, &id, "CACHE-1").await;
        assert_eq!(after["product"]["stock"], 99 - round);
        assert_eq!(after["productStatus"]["stock"], 99 - round);
        let rest = app
            .rest(reqwest::Method::GET, &format!("/products/{id}"), None)
            .await;
        assert_eq!(rest.body["stock"], 99 - round);
    }
    // Deleted, the product reads as missing at once; restored, it is back.
    let deleted = app
        .graphql(
            "mutation($id: ID!) { deleteProduct(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_no_errors(&deleted);
    let gone = read(&app, &id, "CACHE-1").await;
    assert_eq!(gone["product"], Value::Null);
    assert_eq!(gone["productBySku"], Value::Null);
    let restored = app
        .graphql(
            "mutation($id: ID!) { restoreProduct(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_no_errors(&restored);
    assert_eq!(read(&app, &id, "CACHE-1").await["product"]["stock"], 70);
    // A SKU moved to another product is found under its new owner.
    let response = app
        .graphql(
            "mutation($id: ID!) { updateProduct(id: $id, input: { sku: \"CACHE-2\" }) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_no_errors(&response);
    let other = id_of(&app.create_product("Other", "CACHE-1", 3, 0).await);
    let moved = read(&app, &other, "CACHE-1").await;
    assert_eq!(moved["productBySku"]["name"], "Other");
    assert_eq!(
        read(&app, &id, "CACHE-2").await["productBySku"]["name"],
        "Cached 29"
    );
}

/// Two instances on one PostgreSQL database: once a change's event has reached the other
/// instance, that instance never reads the product as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_never_reads_a_change_older_than_the_events_it_has_seen() {
    let first = spawn_app(Backend::Postgres).await;
    let second = first.spawn_another_instance().await;
    let id = id_of(&first.create_product("Shared", "SHARED-1", 1000, 0).await);
    let mut seen = Box::pin(second.services().events().subscribe());
    for round in 0..40 {
        // The second instance caches the product as it is now.
        read(&second, &id, "SHARED-1").await;
        let name = format!("Shared {round}");
        if round % 2 == 0 {
            rename(&first, &id, &name).await;
        } else {
            first.reduce_stock(&id, 1).await;
        }
        let version = 2 + round;
        // Wait until the change's event has reached the second instance.
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), seen.next())
                .await
                .expect("the event arrives")
                .expect("the stream stays open")
                .expect("no event is lost");
            if event.product.id.to_string() == id && event.product.version >= version {
                break;
            }
        }
        let after = read(&second, &id, "SHARED-1").await;
        assert_eq!(
            after["product"]["version"], version,
            "round {round}: {after}"
        );
        assert_eq!(after["productBySku"]["version"], version, "round {round}");
    }
}

/// The same random changes on a server with the cache and one without: every read answers
/// the same.
async fn cache_on_and_off_answer_alike(backend: Backend) {
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let cached = spawn_app(backend).await;
    let uncached = spawn_app_with(backend, &["--cache-capacity", "0"]).await;
    let mut products: Vec<(String, String)> = Vec::new();
    for step in 0..120 {
        let choice = if products.is_empty() {
            0
        } else {
            rng.random_range(0..7)
        };
        let target = if products.is_empty() {
            0
        } else {
            rng.random_range(0..products.len())
        };
        let quantity = rng.random_range(1..20);
        let mut answers = Vec::new();
        for (index, app) in [&cached, &uncached].into_iter().enumerate() {
            let answer = match choice {
                0 => {
                    let sku = format!("RND-{step}");
                    let created = app.create_product("Random", &sku, 50, 10).await;
                    if index == 0 {
                        products.push((String::new(), sku.clone()));
                    }
                    let id = id_of(&created);
                    if index == 0 {
                        products.last_mut().unwrap().0 = id.clone();
                    }
                    json!(null)
                }
                _ => {
                    // Each app has its own ids: look the product up by its SKU there.
                    let sku = &products[target].1;
                    let id = app
                        .graphql(
                            "query($sku: String!) { productBySku(sku: $sku) { id } }",
                            json!({ "sku": sku }),
                        )
                        .await["data"]["productBySku"]["id"]
                        .as_str()
                        .map(str::to_owned);
                    let Some(id) = id else {
                        answers.push(json!("missing"));
                        continue;
                    };
                    match choice {
                        1 => {
                            let reply = app.reduce_stock(&id, quantity).await;
                            json!([reply["data"]["reduceStock"]["newStock"], error_code(&reply)])
                        }
                        2 => {
                            let reply = app.add_stock(&id, quantity).await;
                            json!([reply["data"]["addStock"]["newStock"], error_code(&reply)])
                        }
                        3 => {
                            rename(app, &id, &format!("Name {step}")).await;
                            json!(null)
                        }
                        4 => app
                            .graphql(
                                "mutation($id: ID!, $level: Int!) { updateProduct(id: $id, input: { reorderLevel: $level }) { id } }",
                                json!({ "id": id, "level": quantity }),
                            )
                            .await["errors"]
                            .clone(),
                        5 => app
                            .graphql(
                                "mutation($id: ID!) { reserveStock(productId: $id, quantity: 2, ttlSeconds: 600) { quantity } }",
                                json!({ "id": id }),
                            )
                            .await["data"]
                            .clone(),
                        _ => read(app, &id, sku).await,
                    }
                }
            };
            let reads = match products.get(target) {
                Some((_, sku)) => {
                    app.graphql(
                        "query($sku: String!) { productBySku(sku: $sku) { name sku stock reserved available reorderLevel status version } }",
                        json!({ "sku": sku }),
                    )
                    .await["data"]
                        .clone()
                }
                None => json!(null),
            };
            answers.push(json!([answer, reads]));
        }
        assert_eq!(
            answers[0], answers[1],
            "step {step} (STOCKROOM_TEST_SEED={seed} replays it)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_on_and_off_answer_alike_on_sqlite() {
    cache_on_and_off_answer_alike(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_on_and_off_answer_alike_on_postgres() {
    cache_on_and_off_answer_alike(Backend::Postgres).await;
}
