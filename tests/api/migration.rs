//! The locations-and-lots migration on a database filled by the schema before it: every
//! product's stock moves to `MAIN` and the ledger still verifies.

use chrono::{Duration, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value as DbValue};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, fresh_database, run_verify, start_process};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    existing_stock_moves_to_main_and_the_ledger_still_verifies(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    existing_stock_moves_to_main_and_the_ledger_still_verifies(Backend::Postgres).await;
}

async fn existing_stock_moves_to_main_and_the_ledger_still_verifies(backend: Backend) {
    let (url, _folder) = fresh_database(backend).await;
    let url = if backend == Backend::Sqlite {
        format!("{url}?mode=rwc")
    } else {
        url
    };
    let db = sea_orm::Database::connect(&url).await.expect("connects");
    // The schema as it was before locations existed.
    Migrator::up(&db, Some(3))
        .await
        .expect("the first three migrations");
    let backend = db.get_database_backend();
    let p = |n: usize| match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    };
    let mut products = Vec::new();
    for index in 0..3_i64 {
        let id = Uuid::now_v7();
        products.push(id);
        let created = Utc::now() - Duration::minutes(10);
        let (initial, reduced, reserved) = (20 + index, 5, index);
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO products (id, name, name_key, sku, sku_key, stock, reorder_level, version, created_at, updated_at, deleted_at, reserved) \
                 VALUES ({}, 'Old', 'old', {}, {}, {}, 0, 3, {}, {}, NULL, {})",
                p(1), p(2), p(3), p(4), p(5), p(6), p(7)
            ),
            [
                DbValue::from(id),
                format!("OLD-{index}").into(),
                format!("old-{index}").into(),
                (initial - reduced).into(),
                created.into(),
                created.into(),
                reserved.into(),
            ],
        ))
        .await
        .expect("a product of the old schema");
        for (version, kind, delta, before) in
            [(1, "INITIAL", initial, 0), (2, "REDUCE", -reduced, initial)]
        {
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "INSERT INTO stock_movements (id, product_id, kind, delta, stock_before, stock_after, product_version, reason, idempotency_key, actor, created_at) \
                     VALUES ({}, {}, {}, {}, {}, {}, {}, NULL, NULL, 'old', {})",
                    p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8)
                ),
                [
                    DbValue::from(Uuid::now_v7()),
                    id.into(),
                    kind.into(),
                    delta.into(),
                    before.into(),
                    (before + delta).into(),
                    version.into(),
                    created.into(),
                ],
            ))
            .await
            .expect("a movement of the old schema");
        }
        if reserved > 0 {
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "INSERT INTO reservations (id, product_id, quantity, status, reference, actor, expires_at, created_at, resolved_at) \
                     VALUES ({}, {}, {}, 'ACTIVE', NULL, 'old', {}, {}, NULL)",
                    p(1), p(2), p(3), p(4), p(5)
                ),
                [
                    DbValue::from(Uuid::now_v7()),
                    id.into(),
                    reserved.into(),
                    (Utc::now() + Duration::hours(1)).into(),
                    created.into(),
                ],
            ))
            .await
            .expect("a reservation of the old schema");
        }
    }
    db.close().await.ok();

    // The server migrates on start.
    let server = start_process(&url, &[]).await;
    let app = TestApp::client_for(&server.address, &url);
    let (code, output) = run_verify(&url).await;
    assert_eq!(code, 0, "{output}");
    for (index, id) in products.iter().enumerate() {
        let view = app
            .graphql(
                "query($id: ID!) { product(id: $id) { stock reserved available
                   stockByLocation { location { code } stock reserved }
                   movements(first: 5) { nodes { kind allocations { location { code } quantity } } } } }",
                json!({ "id": id }),
            )
            .await;
        let product = &view["data"]["product"];
        let (stock, reserved) = (15 + index as i64, index as i64);
        assert_eq!(product["stock"], stock, "{view}");
        assert_eq!(
            product["stockByLocation"],
            json!([{ "location": { "code": "MAIN" }, "stock": stock, "reserved": reserved }])
        );
        assert_eq!(
            product["movements"]["nodes"][0]["allocations"],
            json!([{ "location": { "code": "MAIN" }, "quantity": -5 }])
        );
    }
    // And it keeps working: a reduction after the migration takes from MAIN.
    let reduced = app
        .graphql(
            "mutation($id: ID!) { reduceStock(id: $id, quantity: 2) { newStock } }",
            json!({ "id": products[2] }),
        )
        .await;
    assert_eq!(reduced["data"]["reduceStock"]["newStock"], 15, "{reduced}");
    let (code, output) = run_verify(&url).await;
    assert_eq!(code, 0, "{output}");
}
