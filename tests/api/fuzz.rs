//! Random input at the mutations: whatever comes in, the answer is a documented error code (never
//! `INTERNAL`), the server never panics, and stock always equals the sum of the ledger.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app};

/// The documented codes for these mutations' refusals.
const DOCUMENTED_CODES: [&str; 6] = [
    "BAD_USER_INPUT",
    "GRAPHQL_VALIDATION_FAILED",
    "NOT_FOUND",
    "SKU_CONFLICT",
    "INSUFFICIENT_STOCK",
    "STOCK_LIMIT_EXCEEDED",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9 -]{0,20}",
        any::<String>(),      // unicode, control characters, NUL
        "\\PC{0,300}",        // printable unicode, incl. combining marks and emoji
        "[a-z]{10000,10240}", // 10 KB
        Just("   ".to_owned()),
        Just("a\u{0}b".to_owned()),
    ]
}

fn number() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0),
        Just(-1),
        Just(1),
        Just(i64::from(i32::MIN)),
        Just(i64::from(i32::MAX)),
        -1000i64..1000,
        any::<i32>().prop_map(i64::from),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    sku: String,
    stock: i64,
    reorder_level: i64,
    changes: Vec<(bool, i64)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        text(),
        text(),
        number(),
        number(),
        prop::collection::vec((any::<bool>(), number()), 0..8),
    )
        .prop_map(|(name, sku, stock, reorder_level, changes)| Case {
            name,
            sku,
            stock,
            reorder_level,
            changes,
        })
}

fn check(response: &Value, what: &str) -> Result<(), TestCaseError> {
    if let Some(errors) = response.get("errors") {
        let code = errors[0]["extensions"]["code"].as_str().unwrap_or("<none>");
        prop_assert!(
            DOCUMENTED_CODES.contains(&code),
            "{what} answered {code}: {response}"
        );
    }
    Ok(())
}

async fn run_case(app: &TestApp, case: &Case, sku_suffix: usize) -> Result<(), TestCaseError> {
    // A suffix keeps valid SKUs from colliding across cases (collisions are tested elsewhere).
    let sku = if case.sku.trim().is_empty() {
        case.sku.clone()
    } else {
        format!("{}#{sku_suffix}", case.sku)
    };
    let created = app
        .try_create_product(json!({ "name": case.name, "sku": sku, "stock": case.stock, "reorderLevel": case.reorder_level }))
        .await;
    check(&created, "createProduct")?;
    let Some(id) = created["data"]["createProduct"]["id"].as_str() else {
        return Ok(());
    };
    for (add, quantity) in &case.changes {
        let response = if *add {
            app.add_stock(id, *quantity).await
        } else {
            app.reduce_stock(id, *quantity).await
        };
        check(&response, if *add { "addStock" } else { "reduceStock" })?;
    }
    let stock = app.product(id).await["stock"].as_i64().unwrap();
    let ledger: i64 = app
        .movements(id)
        .await
        .iter()
        .map(|m| m["delta"].as_i64().unwrap())
        .sum();
    prop_assert_eq!(stock, ledger);
    prop_assert!(stock >= 0);
    Ok(())
}

fn fuzz(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(spawn_app(backend));
    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&case(), |case| {
            let suffix = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            runtime.block_on(run_case(&app, &case, suffix))
        })
        .unwrap();
}

#[test]
fn random_input_gets_only_documented_errors_and_keeps_the_ledger_whole_on_sqlite() {
    fuzz(Backend::Sqlite);
}

#[test]
fn random_input_gets_only_documented_errors_and_keeps_the_ledger_whole_on_postgres() {
    fuzz(Backend::Postgres);
}
