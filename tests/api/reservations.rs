//! Reservations: hold stock for a checkout, then commit, release, or let it expire.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, assert_error, assert_no_errors, error_code, id_of, spawn_app_with,
};

on_both_backends!(
    reserved_units_cannot_be_reduced_and_commit_takes_them_from_stock,
    a_released_reservation_gives_its_units_back,
    an_expired_reservation_gives_its_units_back_on_the_next_change,
    a_hundred_concurrent_reservations_against_thirty_available_let_exactly_thirty_succeed,
    a_racing_commit_and_release_resolve_a_reservation_exactly_once,
    a_retried_reservation_with_its_key_holds_units_once,
    invalid_reservations_are_refused_and_change_nothing,
);

const RESERVE: &str = "mutation($id: ID!, $quantity: Int!, $ttl: Int, $key: String) {
    reserveStock(productId: $id, quantity: $quantity, ttlSeconds: $ttl, reference: \"cart-7\", idempotencyKey: $key) {
        id productId quantity status reference expiresAt createdAt resolvedAt } }";
const COMMIT: &str = "mutation($id: ID!) { commitReservation(id: $id) { id status resolvedAt } }";
const RELEASE: &str = "mutation($id: ID!) { releaseReservation(id: $id) { id status resolvedAt } }";
const AVAILABILITY: &str =
    "query($id: ID!) { product(id: $id) { stock reserved available status } }";
const VERIFY: &str = "{ verifyLedger { ok mismatches { sku } } }";

async fn reserve(app: &TestApp, id: &str, quantity: i64, ttl: Option<i64>) -> Value {
    app.graphql(
        RESERVE,
        json!({ "id": id, "quantity": quantity, "ttl": ttl }),
    )
    .await
}

async fn availability(app: &TestApp, id: &str) -> Value {
    let response = app.graphql(AVAILABILITY, json!({ "id": id })).await;
    assert_no_errors(&response);
    response["data"]["product"].clone()
}

async fn assert_ledger_verifies(app: &TestApp) {
    let report = app.graphql(VERIFY, json!({})).await;
    assert_eq!(
        report["data"]["verifyLedger"],
        json!({ "ok": true, "mismatches": [] }),
        "{report}"
    );
}

async fn reserved_units_cannot_be_reduced_and_commit_takes_them_from_stock(app: TestApp) {
    let id = id_of(&app.create_product("Held", "RES-1", 10, 5).await);

    let reserved = reserve(&app, &id, 7, None).await;
    assert_no_errors(&reserved);
    let reservation = &reserved["data"]["reserveStock"];
    assert_eq!(reservation["status"], "ACTIVE");
    assert_eq!(reservation["quantity"], 7);
    assert_eq!(reservation["reference"], "cart-7");
    assert_eq!(
        availability(&app, &id).await,
        json!({ "stock": 10, "reserved": 7, "available": 3, "status": "LOW_STOCK" })
    );

    let short = app.reduce_stock(&id, 4).await;
    assert_error(&short, "INSUFFICIENT_STOCK");
    assert_eq!(short["errors"][0]["extensions"]["available"], 3);

    let committed = app
        .graphql(COMMIT, json!({ "id": reservation["id"] }))
        .await;
    assert_no_errors(&committed);
    assert_eq!(
        committed["data"]["commitReservation"]["status"],
        "COMMITTED"
    );
    assert_eq!(
        availability(&app, &id).await,
        json!({ "stock": 3, "reserved": 0, "available": 3, "status": "LOW_STOCK" })
    );
    let movements = app.movements(&id).await;
    assert_eq!(movements[0]["kind"], "RESERVATION_COMMIT");
    assert_eq!(movements[0]["delta"], -7);

    let release_after_commit = app
        .graphql(RELEASE, json!({ "id": reservation["id"] }))
        .await;
    assert_error(&release_after_commit, "RESERVATION_NOT_ACTIVE");
    assert!(
        release_after_commit["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("COMMITTED")
    );
    let commit_again = app
        .graphql(COMMIT, json!({ "id": reservation["id"] }))
        .await;
    assert_error(&commit_again, "RESERVATION_NOT_ACTIVE");
    assert_eq!(availability(&app, &id).await["stock"], 3);
    assert_ledger_verifies(&app).await;
}

async fn a_released_reservation_gives_its_units_back(app: TestApp) {
    let id = id_of(&app.create_product("Returned", "RES-2", 10, 0).await);
    let reservation = reserve(&app, &id, 6, None).await["data"]["reserveStock"]["id"].clone();

    let released = app.graphql(RELEASE, json!({ "id": reservation })).await;

    assert_no_errors(&released);
    assert_eq!(released["data"]["releaseReservation"]["status"], "RELEASED");
    assert_eq!(availability(&app, &id).await["available"], 10);
    assert_no_errors(&app.reduce_stock(&id, 10).await);
    assert_eq!(
        app.movements(&id).await.len(),
        2,
        "a release writes no movement"
    );
    assert_ledger_verifies(&app).await;
}

async fn an_expired_reservation_gives_its_units_back_on_the_next_change(app: TestApp) {
    let id = id_of(&app.create_product("Lapsed", "RES-3", 10, 0).await);
    let reservation = reserve(&app, &id, 8, Some(1)).await["data"]["reserveStock"]["id"].clone();
    assert_error(&app.reduce_stock(&id, 3).await, "INSUFFICIENT_STOCK");

    tokio::time::sleep(Duration::from_millis(1300)).await;

    assert_no_errors(&app.reduce_stock(&id, 10).await);
    let status = app
        .graphql(
            "query($id: ID!) { reservation(id: $id) { status resolvedAt } }",
            json!({ "id": reservation }),
        )
        .await;
    assert_eq!(status["data"]["reservation"]["status"], "EXPIRED");
    assert_error(
        &app.graphql(COMMIT, json!({ "id": reservation })).await,
        "RESERVATION_NOT_ACTIVE",
    );
    assert_eq!(
        availability(&app, &id).await,
        json!({ "stock": 0, "reserved": 0, "available": 0, "status": "LOW_STOCK" })
    );
    assert_ledger_verifies(&app).await;
}

async fn a_hundred_concurrent_reservations_against_thirty_available_let_exactly_thirty_succeed(
    app: TestApp,
) {
    let id = id_of(&app.create_product("Popular", "RES-4", 40, 0).await);
    assert_no_errors(&reserve(&app, &id, 10, None).await); // 30 left available

    let responses = join_all((0..100).map(|_| reserve(&app, &id, 1, None))).await;

    let held = responses
        .iter()
        .filter(|r| r.get("errors").is_none())
        .count();
    let short = responses
        .iter()
        .filter(|r| error_code(r) == Some("INSUFFICIENT_STOCK"))
        .count();
    assert_eq!((held, short), (30, 70));
    assert_eq!(
        availability(&app, &id).await,
        json!({ "stock": 40, "reserved": 40, "available": 0, "status": "LOW_STOCK" })
    );
    assert_ledger_verifies(&app).await;
}

async fn a_racing_commit_and_release_resolve_a_reservation_exactly_once(app: TestApp) {
    let id = id_of(&app.create_product("Contested", "RES-5", 100, 0).await);
    for round in 0..10 {
        let reservation = reserve(&app, &id, 2, None).await["data"]["reserveStock"]["id"].clone();

        let (commit, release) = tokio::join!(
            app.graphql(COMMIT, json!({ "id": reservation })),
            app.graphql(RELEASE, json!({ "id": reservation })),
        );

        let winners = [&commit, &release]
            .iter()
            .filter(|r| r.get("errors").is_none())
            .count();
        assert_eq!(winners, 1, "round {round}: {commit} {release}");
        let loser = if commit.get("errors").is_some() {
            &commit
        } else {
            &release
        };
        assert_error(loser, "RESERVATION_NOT_ACTIVE");
    }
    let product = availability(&app, &id).await;
    assert_eq!(product["reserved"], 0);
    assert_ledger_verifies(&app).await;
}

async fn a_retried_reservation_with_its_key_holds_units_once(app: TestApp) {
    let id = id_of(&app.create_product("Checkout", "RES-6", 10, 0).await);
    let variables = json!({ "id": id, "quantity": 4, "key": "checkout-9" });

    let responses = join_all((0..10).map(|_| app.graphql(RESERVE, variables.clone()))).await;

    for response in &responses {
        assert_no_errors(response);
        assert_eq!(response, &responses[0]);
    }
    assert_eq!(availability(&app, &id).await["reserved"], 4);
}

async fn invalid_reservations_are_refused_and_change_nothing(app: TestApp) {
    let id = id_of(&app.create_product("Strict", "RES-7", 10, 0).await);
    let unknown = uuid::Uuid::now_v7().to_string();

    assert_error(&reserve(&app, &id, 0, None).await, "BAD_USER_INPUT");
    assert_error(&reserve(&app, &id, -2, None).await, "BAD_USER_INPUT");
    assert_error(&reserve(&app, &id, 1, Some(0)).await, "BAD_USER_INPUT");
    assert_error(&reserve(&app, &id, 11, None).await, "INSUFFICIENT_STOCK");
    assert_error(&reserve(&app, &unknown, 1, None).await, "NOT_FOUND");
    assert_error(&reserve(&app, "nope", 1, None).await, "BAD_USER_INPUT");
    assert_error(
        &app.graphql(COMMIT, json!({ "id": unknown })).await,
        "BAD_USER_INPUT",
    );
    assert_eq!(availability(&app, &id).await["reserved"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sweep_expires_reservations_without_any_other_change() {
    let app = spawn_app_with(
        Backend::Postgres,
        &["--reservation-sweep-interval", "100ms"],
    )
    .await;
    let id = id_of(&app.create_product("Idle", "RES-8", 10, 0).await);
    assert_no_errors(&reserve(&app, &id, 5, Some(1)).await);

    tokio::time::sleep(Duration::from_millis(1600)).await;

    assert_eq!(availability(&app, &id).await["reserved"], 0);
    assert_ledger_verifies(&app).await;
}
