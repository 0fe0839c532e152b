//! Whole-system invariants under load: after thousands of random concurrent operations, and
//! after the server is killed mid-load, every unit is accounted for.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::Mutex;

use crate::helpers::{
    TestApp, assert_no_errors, create_postgres_database, id_of, start_process, test_seed,
};
use crate::stock::assert_chained;

const RESERVE: &str = "mutation($id: ID!, $quantity: Int!) {
    reserveStock(productId: $id, quantity: $quantity, ttlSeconds: 60) { id } }";
const RESOLVE_COMMIT: &str = "mutation($id: ID!) { commitReservation(id: $id) { id } }";
const RESOLVE_RELEASE: &str = "mutation($id: ID!) { releaseReservation(id: $id) { id } }";

/// Every product's ledger chains, stock and reserved are in bounds, and `verifyLedger` agrees.
async fn assert_every_invariant(app: &TestApp, products: &[String], seed: u64) {
    let report = app
        .graphql(
            "{ verifyLedger { ok productsChecked mismatches { sku } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        report["data"]["verifyLedger"]["ok"], true,
        "seed {seed}: {report}"
    );
    for id in products {
        let product = app.product(id).await;
        let (stock, reserved) = (
            product["stock"].as_i64().unwrap(),
            product["reserved"].as_i64().unwrap(),
        );
        assert!(
            stock >= 0 && (0..=stock).contains(&reserved),
            "seed {seed}: {product}"
        );
        assert_chained(&app.movements(id).await, stock);
    }
}

on_both_backends!(thousands_of_random_concurrent_operations_keep_every_invariant);

async fn thousands_of_random_concurrent_operations_keep_every_invariant(app: TestApp) {
    let seed = test_seed();
    let mut products = Vec::new();
    for index in 0..4 {
        products.push(id_of(
            &app.create_product("Random", &format!("RND-{index}"), 200, 20)
                .await,
        ));
    }
    let active: Arc<Mutex<Vec<Value>>> = Arc::default();
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();

    let workers = (0..20u64).map(|worker| {
        let (app, products, active, unexpected) =
            (&app, &products, active.clone(), unexpected.clone());
        async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(worker));
            for _ in 0..100 {
                let id = &products[rng.random_range(0..products.len())];
                let quantity = rng.random_range(1..=15);
                let response = match rng.random_range(0..5) {
                    0 => app.add_stock(id, quantity).await,
                    1 => app.reduce_stock(id, quantity).await,
                    2 => {
                        let response = app
                            .graphql(RESERVE, json!({ "id": id, "quantity": quantity }))
                            .await;
                        if let Some(reservation) = response["data"]["reserveStock"]["id"].as_str() {
                            active.lock().await.push(json!(reservation));
                        }
                        response
                    }
                    choice => {
                        let Some(reservation) = active.lock().await.pop() else {
                            continue;
                        };
                        let document = if choice == 3 {
                            RESOLVE_COMMIT
                        } else {
                            RESOLVE_RELEASE
                        };
                        app.graphql(document, json!({ "id": reservation })).await
                    }
                };
                let code = response["errors"][0]["extensions"]["code"].as_str();
                if !matches!(code, None | Some("INSUFFICIENT_STOCK")) {
                    unexpected.lock().await.push(response.to_string());
                }
            }
        }
    });
    join_all(workers).await;

    assert!(
        unexpected.lock().await.is_empty(),
        "seed {seed}: {:?}",
        unexpected.lock().await
    );
    assert_every_invariant(&app, &products, seed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_mid_load_and_a_restart_verify_finds_every_acknowledged_change() {
    let seed = test_seed();
    let database_url = create_postgres_database().await;
    let server = start_process(&database_url, &[]).await;
    let client = reqwest::Client::new();
    let app = TestApp::client_for(&server.address, &database_url);
    let mut products = Vec::new();
    for index in 0..3 {
        products.push(id_of(
            &app.create_product("Crash", &format!("CRASH-{index}"), 100_000, 0)
                .await,
        ));
    }
    // A second location holding two dated lots of each product: the load also reduces from
    // lots there and transfers units between the two locations.
    let created = app
        .graphql(
            "mutation { createLocation(input: { code: \"STORE\", name: \"Store\", priority: 1 }) { id } }",
            json!({}),
        )
        .await;
    assert_no_errors(&created);
    let store = created["data"]["createLocation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let main = app
        .graphql("{ locationByCode(code: \"MAIN\") { id } }", json!({}))
        .await["data"]["locationByCode"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for id in &products {
        for (code, expires_on) in [("LOT-A", "2099-01-31"), ("LOT-B", "2099-06-30")] {
            let added = app
                .graphql(
                    "mutation($id: ID!, $store: ID!, $code: String!, $on: Date) {
                       addStock(id: $id, quantity: 50000, locationId: $store, lot: { code: $code, expiresOn: $on }) { newStock } }",
                    json!({ "id": id, "store": store, "code": code, "on": expires_on }),
                )
                .await;
            assert_no_errors(&added);
        }
    }

    // Workers run until the server dies under them, remembering every success they were told.
    let acknowledged_movements: Arc<Mutex<HashSet<String>>> = Arc::default();
    let acknowledged_reservations: Arc<Mutex<HashSet<String>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let workers: Vec<_> = (0..16u64)
        .map(|worker| {
            let (app, products) = (app.clone_for_worker(&client), products.clone());
            let (movements, reservations) = (acknowledged_movements.clone(), acknowledged_reservations.clone());
            let (main, store) = (main.clone(), store.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(worker));
                while Instant::now() < deadline {
                    let id = &products[rng.random_range(0..products.len())];
                    let choice = rng.random_range(0..10);
                    if choice < 7 {
                        let (document, variables, field) = match choice {
                            0..4 => (
                                "mutation($id: ID!) { reduceStock(id: $id, quantity: 1) { movement { id } } }",
                                json!({ "id": id }),
                                "reduceStock",
                            ),
                            4..5 => (
                                "mutation($id: ID!, $at: ID) { reduceStock(id: $id, quantity: 1, locationId: $at) { movement { id } } }",
                                json!({ "id": id, "at": store }),
                                "reduceStock",
                            ),
                            _ => {
                                let (from, to) = if rng.random_bool(0.5) { (&main, &store) } else { (&store, &main) };
                                (
                                    "mutation($id: ID!, $from: ID!, $to: ID!) { transferStock(productId: $id, fromLocationId: $from, toLocationId: $to, quantity: 2) { movement { id } } }",
                                    json!({ "id": id, "from": from, "to": to }),
                                    "transferStock",
                                )
                            }
                        };
                        let Ok(response) = app.try_graphql(document, variables).await else { return };
                        if let Some(movement) = response["data"][field]["movement"]["id"].as_str() {
                            movements.lock().await.insert(movement.to_owned());
                        }
                    } else {
                        let Ok(response) = app.try_graphql(RESERVE, json!({ "id": id, "quantity": 1 })).await else { return };
                        if let Some(reservation) = response["data"]["reserveStock"]["id"].as_str() {
                            reservations.lock().await.insert(reservation.to_owned());
                        }
                    }
                }
            })
        })
        .collect();

    // Kill once the load is well under way (a busy machine gets there later, not never).
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while acknowledged_movements.lock().await.len() <= 60
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut server = server;
    server.child.start_kill().expect("SIGKILL");
    server.child.wait().await.unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    let movements = acknowledged_movements.lock().await.clone();
    let reservations = acknowledged_reservations.lock().await.clone();
    println!(
        "killed mid-load after {} acknowledged reductions and transfers and {} reservations",
        movements.len(),
        reservations.len()
    );
    assert!(
        movements.len() > 50,
        "the load ran before the kill ({} reductions and transfers)",
        movements.len()
    );

    // Restart on the same database, then check the books.
    let restarted = start_process(&database_url, &[]).await;
    let verify = Command::new(env!("CARGO_BIN_EXE_stockroom"))
        .args(["verify", "--database-url", &database_url])
        .env_remove("DATABASE_URL")
        .output()
        .await
        .unwrap();
    assert!(
        verify.status.success(),
        "seed {seed}: {}",
        String::from_utf8_lossy(&verify.stdout)
    );

    let app = TestApp::client_for(&restarted.address, &database_url);
    let mut recorded = HashSet::new();
    for id in &products {
        for movement in app.movements(id).await {
            recorded.insert(movement["id"].as_str().unwrap().to_owned());
        }
    }
    let missing: Vec<_> = movements.difference(&recorded).collect();
    assert!(
        missing.is_empty(),
        "seed {seed}: acknowledged but not in the ledger: {missing:?}"
    );
    for reservation in &reservations {
        let found = app
            .graphql(
                "query($id: ID!) { reservation(id: $id) { id } }",
                json!({ "id": reservation }),
            )
            .await;
        assert_no_errors(&found);
        assert_eq!(
            found["data"]["reservation"]["id"],
            reservation.as_str(),
            "seed {seed}"
        );
    }
    assert_every_invariant(&app, &products, seed).await;
}
