//! Concurrent stock changes: stock never goes below zero, no update is lost, and exactly as
//! many reductions succeed as the stock allows. These fail if the row lock (PostgreSQL
//! `SELECT ... FOR UPDATE`) or `BEGIN IMMEDIATE` (SQLite) is removed.

use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::helpers::{TestApp, assert_no_errors, error_code, id_of};
use crate::stock::assert_chained;

on_both_backends!(
    two_hundred_concurrent_reductions_of_one_against_stock_50_let_exactly_50_succeed,
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

async fn concurrent_adds_and_reductions_of_random_quantities_lose_no_update(app: TestApp) {
    let seed: u64 = std::env::var("STOCKROOM_TEST_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed: {seed} (rerun with STOCKROOM_TEST_SEED={seed})");
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
