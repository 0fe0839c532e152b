//! Concurrent stock changes: stock never goes below zero, no update is lost, and exactly as
//! many reductions succeed as the stock allows. These fail if the row lock (PostgreSQL
//! `SELECT ... FOR UPDATE`) or `BEGIN IMMEDIATE` (SQLite) is removed. Unkeyed reductions of one
//! product are coalesced into shared transactions; the tests with additions racing them, and
//! with two server instances, are the ones that still need the database's lock.

use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::helpers::{TestApp, assert_no_errors, error_code, id_of, test_seed};
use crate::stock::assert_chained;

on_both_backends!(
    two_hundred_concurrent_reductions_of_one_against_stock_50_let_exactly_50_succeed,
    two_hundred_concurrent_keyed_reductions_which_are_never_batched_let_exactly_50_succeed,
    concurrent_adds_and_reductions_of_random_quantities_lose_no_update,
);

async fn two_hundred_concurrent_reductions_of_one_against_stock_50_let_exactly_50_succeed(
    app: TestApp,
) {
    let product = app.create_product("Hot item", "HOT-1", 50, 5).await;
    let id = id_of(&product);

    let responses = join_all((0..200).map(|_| app.reduce_stock(&id, 1))).await;

    let succeeded = responses
        .iter()
        .filter(|r| r.get("errors").is_none())
        .count();
    let refused = responses
        .iter()
        .filter(|r| error_code(r) == Some("INSUFFICIENT_STOCK"))
        .count();
    let other: Vec<_> = responses
        .iter()
        .filter(|r| r.get("errors").is_some() && error_code(r) != Some("INSUFFICIENT_STOCK"))
        .collect();
    assert!(other.is_empty(), "unexpected errors: {other:#?}");
    assert_eq!((succeeded, refused), (50, 150));

    // Every success saw a distinct stock level: 49, 48, ..., 0.
    let mut new_stocks: Vec<i64> = responses
        .iter()
        .filter_map(|r| r["data"]["reduceStock"]["newStock"].as_i64())
        .collect();
    new_stocks.sort_unstable();
    assert_eq!(new_stocks, (0..50).collect::<Vec<_>>());

    let current = app.product(&id).await;
    assert_eq!(current["stock"], 0);
    assert_eq!(current["version"], 51);
    let movements = app.movements(&id).await;
    assert_eq!(movements.len(), 51);
    assert_eq!(
        movements
            .iter()
            .map(|m| m["delta"].as_i64().unwrap())
            .sum::<i64>(),
        0
    );
    assert_chained(&movements, 0);
}

/// Keyed reductions each run in their own transaction, so here only the database's lock stands
/// between them (on PostgreSQL `SELECT ... FOR UPDATE`, on SQLite `BEGIN IMMEDIATE`).
async fn two_hundred_concurrent_keyed_reductions_which_are_never_batched_let_exactly_50_succeed(
    app: TestApp,
) {
    let product = app
        .create_product("Keyed hot item", "HOT-KEY-1", 50, 5)
        .await;
    let id = id_of(&product);
    let mutation = "mutation($id: ID!, $key: String!) {
        reduceStock(id: $id, quantity: 1, idempotencyKey: $key) { newStock } }";

    let responses = join_all((0..200).map(|index| {
        app.graphql(
            mutation,
            serde_json::json!({ "id": id, "key": format!("order-{index}") }),
        )
    }))
    .await;

    let mut new_stocks = Vec::new();
    for response in &responses {
        match error_code(response) {
            None => new_stocks.push(
                response["data"]["reduceStock"]["newStock"]
                    .as_i64()
                    .unwrap(),
            ),
            Some("INSUFFICIENT_STOCK") => {}
            Some(_) => panic!("unexpected answer: {response:#}"),
        }
    }
    new_stocks.sort_unstable();
    assert_eq!(new_stocks, (0..50).collect::<Vec<_>>());
    let current = app.product(&id).await;
    assert_eq!(
        (current["stock"].as_i64(), current["version"].as_i64()),
        (Some(0), Some(51))
    );
    let movements = app.movements(&id).await;
    assert_eq!(movements.len(), 51);
    assert_chained(&movements, 0);
}

async fn concurrent_adds_and_reductions_of_random_quantities_lose_no_update(app: TestApp) {
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let initial = 100;
    let product = app.create_product("Mixed", "MIX-1", initial, 10).await;
    let id = id_of(&product);
    let changes: Vec<i64> = (0..300)
        .map(|_| {
            let quantity = rng.random_range(1..=25);
            if rng.random_bool(0.55) {
                -quantity
            } else {
                quantity
            }
        })
        .collect();

    let responses = join_all(changes.iter().map(|&delta| {
        let app = &app;
        let id = &id;
        async move {
            if delta < 0 {
                (delta, app.reduce_stock(id, -delta).await)
            } else {
                (delta, app.add_stock(id, delta).await)
            }
        }
    }))
    .await;

    let mut applied = 0;
    let mut successes = 0;
    for (delta, response) in &responses {
        match error_code(response) {
            None => {
                assert_no_errors(response);
                let data = &response["data"];
                let change = data.get("reduceStock").unwrap_or(&data["addStock"]);
                assert!(change["newStock"].as_i64().unwrap() >= 0);
                applied += delta;
                successes += 1;
            }
            Some("INSUFFICIENT_STOCK") if *delta < 0 => {}
            Some(_) => panic!("seed {seed}: unexpected error for {delta}: {response:#}"),
        }
    }
    let stock = app.product(&id).await["stock"].as_i64().unwrap();
    assert_eq!(stock, initial + applied, "seed {seed}");
    let movements = app.movements(&id).await;
    assert_eq!(movements.len(), successes + 1, "seed {seed}");
    assert_chained(&movements, stock);
}

on_both_backends!(
    many_concurrent_reductions_of_mixed_quantities_are_answered_in_a_consistent_order
);

/// Drives the coalescing path hard: hundreds of reductions of different sizes at one product,
/// with additions racing them. Every success must be a step of one consistent history.
async fn many_concurrent_reductions_of_mixed_quantities_are_answered_in_a_consistent_order(
    app: TestApp,
) {
    let seed = test_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let product = app.create_product("Flash sale", "FLASH-1", 1_000, 0).await;
    let id = id_of(&product);
    let requests: Vec<(bool, i64)> = (0..400)
        .map(|_| (rng.random_bool(0.1), rng.random_range(1..=12)))
        .collect();

    let responses = join_all(requests.iter().map(|&(add, quantity)| {
        let (app, id) = (&app, &id);
        async move {
            let response = if add {
                app.add_stock(id, quantity).await
            } else {
                app.reduce_stock(id, quantity).await
            };
            (add, quantity, response)
        }
    }))
    .await;

    let mut applied = 0;
    let mut successes = 0;
    for (add, quantity, response) in &responses {
        match error_code(response) {
            None => {
                let data = &response["data"];
                let change = data.get("reduceStock").unwrap_or(&data["addStock"]);
                let movement = &change["movement"];
                let delta = if *add { *quantity } else { -quantity };
                assert_eq!(movement["delta"].as_i64(), Some(delta), "seed {seed}");
                assert_eq!(change["newStock"], movement["stockAfter"], "seed {seed}");
                applied += delta;
                successes += 1;
            }
            Some("INSUFFICIENT_STOCK") => {
                assert!(!add, "seed {seed}: an addition was refused");
                let available = response["errors"][0]["extensions"]["available"]
                    .as_i64()
                    .unwrap();
                assert!(
                    available < *quantity,
                    "seed {seed}: refused {quantity} with {available} available"
                );
            }
            Some(other) => panic!("seed {seed}: unexpected {other}: {response:#}"),
        }
    }
    let stock = app.product(&id).await["stock"].as_i64().unwrap();
    assert_eq!(stock, 1_000 + applied, "seed {seed}");
    let movements = app.movements(&id).await;
    assert_eq!(movements.len(), successes + 1, "seed {seed}");
    assert_chained(&movements, stock);
    // Each success's answer is one step of that history.
    let steps: std::collections::HashSet<(i64, i64)> = movements
        .iter()
        .map(|m| {
            (
                m["stockBefore"].as_i64().unwrap(),
                m["stockAfter"].as_i64().unwrap(),
            )
        })
        .collect();
    for (_, _, response) in &responses {
        if error_code(response).is_none() {
            let data = &response["data"];
            let movement = &data.get("reduceStock").unwrap_or(&data["addStock"])["movement"];
            let step = (
                movement["stockBefore"].as_i64().unwrap(),
                movement["stockAfter"].as_i64().unwrap(),
            );
            assert!(
                steps.contains(&step),
                "seed {seed}: {step:?} is not in the ledger"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reductions_split_across_two_instances_still_take_exactly_the_stock() {
    let instance_a = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await;
    let instance_b = instance_a.spawn_another_instance().await;
    let id = id_of(&instance_a.create_product("Shared", "TWO-1", 100, 0).await);

    let responses = join_all((0..300).map(|i| {
        let app = if i % 2 == 0 { &instance_a } else { &instance_b };
        let id = &id;
        async move { app.reduce_stock(id, 1).await }
    }))
    .await;

    let succeeded = responses
        .iter()
        .filter(|r| r.get("errors").is_none())
        .count();
    let refused = responses
        .iter()
        .filter(|r| error_code(r) == Some("INSUFFICIENT_STOCK"))
        .count();
    assert_eq!((succeeded, refused), (100, 200));
    assert_eq!(instance_b.product(&id).await["stock"], 0);
    assert_chained(&instance_a.movements(&id).await, 0);
}
