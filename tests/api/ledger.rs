//! The ledger is append-only and verifiable: `verifyLedger` and `stockroom verify`.

use std::process::Command;

use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::helpers::{TestApp, assert_error, assert_no_errors, id_of};

on_both_backends!(
    the_database_refuses_to_update_or_delete_a_movement,
    verify_finds_nothing_wrong_after_normal_use_and_reports_a_tampered_product,
    verify_as_of_rebuilds_past_stock_from_the_ledger,
);

async fn the_database_refuses_to_update_or_delete_a_movement(app: TestApp) {
    let id = id_of(&app.create_product("Ledger", "AO-1", 10, 0).await);
    let database = sea_orm::Database::connect(&app.database_url).await.unwrap();

    let update = database
        .execute_unprepared("UPDATE stock_movements SET delta = 1000")
        .await;
    let delete = database
        .execute_unprepared("DELETE FROM stock_movements")
        .await;

    assert!(update.unwrap_err().to_string().contains("append-only"));
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    assert_eq!(app.movements(&id).await.len(), 1);
}

fn run_verify(app: &TestApp, extra: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_stockroom"))
        .args(["verify", "--database-url", &app.database_url])
        .args(extra)
        .env_remove("DATABASE_URL")
        .output()
        .expect("stockroom verify runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (
        output.status.code().unwrap_or(-1),
        stdout + &String::from_utf8_lossy(&output.stderr),
    )
}

const VERIFY: &str = "{ verifyLedger { ok productsChecked mismatches { sku stock ledgerStock reserved activeReserved } } }";

async fn verify_finds_nothing_wrong_after_normal_use_and_reports_a_tampered_product(app: TestApp) {
    let kept = id_of(&app.create_product("Kept", "VER-1", 10, 0).await);
    let tampered = id_of(&app.create_product("Tampered", "VER-2", 10, 0).await);
    assert_no_errors(&app.reduce_stock(&kept, 4).await);
    assert_no_errors(&app.add_stock(&tampered, 5).await);

    let clean = app.graphql(VERIFY, json!({})).await;
    assert_no_errors(&clean);
    assert_eq!(clean["data"]["verifyLedger"]["ok"], true);
    assert_eq!(clean["data"]["verifyLedger"]["productsChecked"], 2);
    let (code, output) = tokio::task::block_in_place(|| run_verify(&app, &[]));
    assert_eq!(code, 0, "{output}");

    // Someone edits stock behind the service's back.
    let database = sea_orm::Database::connect(&app.database_url).await.unwrap();
    database
        .execute_unprepared("UPDATE products SET stock = stock + 7 WHERE sku = 'VER-2'")
        .await
        .unwrap();

    let dirty = app.graphql(VERIFY, json!({})).await;
    assert_eq!(dirty["data"]["verifyLedger"]["ok"], false);
    assert_eq!(
        dirty["data"]["verifyLedger"]["mismatches"],
        json!([{ "sku": "VER-2", "stock": 22, "ledgerStock": 15, "reserved": 0, "activeReserved": 0 }])
    );
    let (code, output) = tokio::task::block_in_place(|| run_verify(&app, &[]));
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("MISMATCH") && output.contains("VER-2"),
        "{output}"
    );
    assert!(!output.contains("VER-1"), "{output}");
}

async fn verify_as_of_rebuilds_past_stock_from_the_ledger(app: TestApp) {
    let id = id_of(&app.create_product("History", "ASOF-1", 10, 0).await);
    assert_no_errors(&app.reduce_stock(&id, 3).await);
    let location = app
        .graphql(
            "mutation { createLocation(input: { code: \"SHELF\", name: \"Shelf\" }) { id } }",
            json!({}),
        )
        .await;
    assert_no_errors(&location);
    let added = app
        .graphql(
            "mutation($id: ID!, $at: ID!) { addStock(id: $id, quantity: 4, locationId: $at, lot: { code: \"L-1\", expiresOn: \"2099-12-31\" }) { newStock } }",
            json!({ "id": id, "at": location["data"]["createLocation"]["id"] }),
        )
        .await;
    assert_no_errors(&added);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_no_errors(&app.reduce_stock(&id, 5).await);

    let (code, output) = tokio::task::block_in_place(|| run_verify(&app, &["--as-of", &between]));

    assert_eq!(code, 0, "{output}");
    assert!(output.contains(&format!("{id}\tASOF-1\t11")), "{output}");
    assert!(
        output.contains(&format!("{id}\tASOF-1\tMAIN\t-\t7")),
        "{output}"
    );
    assert!(
        output.contains(&format!("{id}\tASOF-1\tSHELF\tL-1\t4")),
        "{output}"
    );
    assert_eq!(app.product(&id).await["stock"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_may_verify_the_ledger() {
    let app = crate::helpers::spawn_secured_app(crate::helpers::Backend::Sqlite).await;
    let manager = app.with_token(Some(crate::helpers::token(
        stockroom::domain::Role::Manager,
        "m",
    )));
    assert_error(&manager.graphql(VERIFY, json!({})).await, "FORBIDDEN");
    let admin = app.with_token(Some(crate::helpers::token(
        stockroom::domain::Role::Admin,
        "a",
    )));
    assert_no_errors(&admin.graphql(VERIFY, json!({})).await);
}
