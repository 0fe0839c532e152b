//! Warehouse sync (`syncStock`, `POST /products/bulk-update`): counts and changes in bulk,
//! stale rows, both error policies, dry runs that equal the real run, idempotent retries, and
//! overlapping syncs racing reductions.

use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, assert_error, assert_no_errors, assert_rest_error, id_of, spawn_app,
};
use crate::ws::{Protocol, WsClient, settle_events, wait_for_subscribers};

on_both_backends!(
    counts_set_on_hand_and_deltas_change_it_each_row_reported,
    a_sequence_not_newer_than_the_last_applied_is_stale_and_changes_nothing,
    reject_everything_applies_nothing_when_a_row_fails,
    reject_failed_rows_applies_the_good_rows_and_reports_the_others,
    a_bad_call_is_refused_as_a_whole_and_changes_nothing,
    a_dry_run_writes_nothing_sends_nothing_and_answers_what_the_real_run_answers,
    a_retried_sync_with_its_key_replays_its_result_and_changes_nothing_again,
    the_rest_bulk_update_takes_the_same_input_and_answers_the_same_result,
    two_syncs_over_the_same_500_products_in_opposite_order_racing_reductions_both_commit,
    sequences_are_kept_per_lot_and_sources_ignore_case,
    out_of_range_dates_and_sequences_fail_their_row_on_both_transports,
    a_dry_run_with_a_used_key_answers_what_the_retry_answers,
    the_same_call_over_graphql_and_rest_is_one_request_for_its_key,
);

on_both_backends!(with_args ["--max-sync-rows", "3"] =>
    more_rows_than_the_configured_maximum_are_refused,
);

const SYNC: &str = "mutation($input: SyncStockInput!) { syncStock(input: $input) {
    committed dryRun applied unchanged stale failed
    rows { index sku locationCode status code message stockBefore stockAfter crossedThreshold } } }";

const STATE: &str = "query($id: ID!) { product(id: $id) {
    stock reserved expired version status
    stockByLocation { location { code } stock reserved }
    lots(includeEmpty: true) { code expiresOn stock location { code } } } }";

async fn sync(app: &TestApp, input: Value) -> Value {
    let response = app.graphql(SYNC, json!({ "input": input })).await;
    assert_no_errors(&response);
    response["data"]["syncStock"].clone()
}

async fn state(app: &TestApp, id: &str) -> Value {
    let response = app.graphql(STATE, json!({ "id": id })).await;
    assert_no_errors(&response);
    response["data"]["product"].clone()
}

async fn create_location(app: &TestApp, code: &str) -> String {
    let response = app
        .graphql(
            "mutation($code: String!) { createLocation(input: { code: $code, name: $code, priority: 5 }) { id } }",
            json!({ "code": code }),
        )
        .await;
    assert_no_errors(&response);
    response["data"]["createLocation"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn verify(app: &TestApp) {
    let response = app
        .graphql(
            "{ verifyLedger { ok mismatches { sku } bucketMismatches movementMismatches } }",
            json!({}),
        )
        .await;
    assert_no_errors(&response);
    assert_eq!(response["data"]["verifyLedger"]["ok"], true, "{response:#}");
}

/// The statuses of a result's rows, in order.
fn statuses(result: &Value) -> Vec<&str> {
    result["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["status"].as_str().unwrap())
        .collect()
}

async fn counts_set_on_hand_and_deltas_change_it_each_row_reported(app: TestApp) {
    let id = id_of(&app.create_product("Bolt", "BOLT-1", 10, 5).await);
    create_location(&app, "WH-2").await;

    let result = sync(
        &app,
        json!({ "source": "erp", "rows": [
            { "sku": "bolt-1", "onHand": 40, "reason": "cycle count" },
            { "sku": "BOLT-1", "locationCode": "wh-2", "onHand": 7,
              "lot": { "code": "L1", "expiresOn": "2031-01-31" } },
            { "sku": "BOLT-1", "delta": -36 },
            { "sku": "BOLT-1", "locationCode": "WH-2", "delta": 3,
              "lot": { "code": "L1", "expiresOn": "2031-01-31" } },
            { "sku": "BOLT-1", "onHand": 4 },
            { "sku": "BOLT-1", "delta": 0 },
        ] }),
    )
    .await;
    assert_eq!(
        result,
        json!({ "committed": true, "dryRun": false, "applied": 4, "unchanged": 2, "stale": 0, "failed": 0,
            "rows": [
                { "index": 0, "sku": "bolt-1", "locationCode": "MAIN", "status": "APPLIED", "code": null, "message": null,
                  "stockBefore": 10, "stockAfter": 40, "crossedThreshold": false },
                { "index": 1, "sku": "BOLT-1", "locationCode": "wh-2", "status": "APPLIED", "code": null, "message": null,
                  "stockBefore": 0, "stockAfter": 7, "crossedThreshold": false },
                { "index": 2, "sku": "BOLT-1", "locationCode": "MAIN", "status": "APPLIED", "code": null, "message": null,
                  "stockBefore": 40, "stockAfter": 4, "crossedThreshold": false },
                { "index": 3, "sku": "BOLT-1", "locationCode": "WH-2", "status": "APPLIED", "code": null, "message": null,
                  "stockBefore": 7, "stockAfter": 10, "crossedThreshold": false },
                { "index": 4, "sku": "BOLT-1", "locationCode": "MAIN", "status": "UNCHANGED", "code": null, "message": null,
                  "stockBefore": 4, "stockAfter": 4, "crossedThreshold": false },
                { "index": 5, "sku": "BOLT-1", "locationCode": "MAIN", "status": "UNCHANGED", "code": null, "message": null,
                  "stockBefore": 4, "stockAfter": 4, "crossedThreshold": false },
            ] })
    );
    let after = state(&app, &id).await;
    assert_eq!(after["stock"], 14);
    assert_eq!(after["version"], 5, "one version per applied row");

    // Each applied row is one movement: ADJUSTMENT for counts, ADD/REDUCE for deltas, the
    // source as the reason's prefix.
    let movements = app.movements(&id).await;
    let newest_four: Vec<(Value, Value, Value)> = movements[..4]
        .iter()
        .rev()
        .map(|m| (m["kind"].clone(), m["delta"].clone(), m["reason"].clone()))
        .collect();
    assert_eq!(
        newest_four,
        vec![
            (json!("ADJUSTMENT"), json!(30), json!("erp: cycle count")),
            (json!("ADJUSTMENT"), json!(7), json!("erp")),
            (json!("REDUCE"), json!(-36), json!("erp")),
            (json!("ADD"), json!(3), json!("erp")),
        ]
    );

    // A count down to the reorder level crosses it, and says so.
    let crossing = sync(
        &app,
        json!({ "source": "erp", "rows": [{ "sku": "BOLT-1", "locationCode": "WH-2",
            "lot": { "code": "L1", "expiresOn": "2031-01-31" }, "onHand": 1 }] }),
    )
    .await;
    assert_eq!(crossing["rows"][0]["crossedThreshold"], true);
    assert_eq!(state(&app, &id).await["status"], "LOW_STOCK");
    verify(&app).await;
}

async fn a_sequence_not_newer_than_the_last_applied_is_stale_and_changes_nothing(app: TestApp) {
    let id = id_of(&app.create_product("Nut", "NUT-1", 0, 0).await);
    create_location(&app, "WH-2").await;
    let first = sync(
        &app,
        json!({ "source": "wh", "rows": [
            { "sku": "NUT-1", "onHand": 50, "sourceSequence": 10 },
            { "sku": "NUT-1", "locationCode": "WH-2", "onHand": 5, "sourceSequence": 3 },
        ] }),
    )
    .await;
    assert_eq!(statuses(&first), ["APPLIED", "APPLIED"]);

    // Late and repeated counts: older or equal sequences are stale, for that product and
    // location only; another source keeps its own sequences; rows without one always apply.
    let second = sync(
        &app,
        json!({ "source": "wh", "rows": [
            { "sku": "NUT-1", "onHand": 20, "sourceSequence": 9 },
            { "sku": "NUT-1", "onHand": 20, "sourceSequence": 10 },
            { "sku": "NUT-1", "locationCode": "WH-2", "onHand": 6, "sourceSequence": 4 },
            { "sku": "NUT-1", "locationCode": "WH-2", "onHand": 9, "sourceSequence": 4 },
            { "sku": "NUT-1", "delta": 1 },
        ] }),
    )
    .await;
    assert_eq!(
        statuses(&second),
        ["STALE", "STALE", "APPLIED", "STALE", "APPLIED"]
    );
    assert_eq!(second["stale"], 3);
    assert_eq!(second["rows"][0]["stockBefore"], 50);
    assert_eq!(second["rows"][0]["stockAfter"], 50);
    assert!(
        second["rows"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not newer than 10")
    );
    let other_source = sync(
        &app,
        json!({ "source": "erp", "rows": [{ "sku": "NUT-1", "onHand": 30, "sourceSequence": 1 }] }),
    )
    .await;
    assert_eq!(statuses(&other_source), ["APPLIED"]);
    let newer = sync(
        &app,
        json!({ "source": "wh", "rows": [{ "sku": "NUT-1", "onHand": 25, "sourceSequence": 11 }] }),
    )
    .await;
    assert_eq!(statuses(&newer), ["APPLIED"]);
    let after = state(&app, &id).await;
    assert_eq!(after["stock"], 25 + 6);
    verify(&app).await;
}

/// Rows that each fail for their own reason, after one good row.
fn failing_rows() -> Value {
    json!([
        { "sku": "GOOD-1", "onHand": 12 },
        { "sku": "NO-SUCH-SKU", "onHand": 1 },
        { "sku": "GOOD-1", "locationCode": "NOWHERE", "onHand": 1 },
        { "sku": "GOOD-1", "onHand": 1, "delta": 1 },
        { "sku": "GOOD-1" },
        { "sku": "GOOD-1", "onHand": -1 },
        { "sku": "GOOD-1", "onHand": 2 },
        { "sku": "GOOD-1", "delta": -13 },
        { "sku": "GOOD-1", "delta": 2147483647 },
        { "sku": "GOOD-1", "onHand": 3, "lot": { "code": "L1", "expiresOn": "2031-01-01" } },
        { "sku": "GOOD-1", "onHand": 3, "lot": { "code": "L1", "expiresOn": "2032-01-01" } },
        { "sku": "", "onHand": 3 },
        { "sku": "GOOD-1", "onHand": 3, "sourceSequence": -1 },
        { "sku": "GOOD-1", "onHand": 3, "reason": "r".repeat(600) },
        { "sku": "GOOD-1", "delta": 1 },
    ])
}

/// What each of [`failing_rows`] ends as, in order, with the code of those that fail.
const FAILING_OUTCOMES: [(&str, Option<&str>); 15] = [
    ("APPLIED", None),
    ("FAILED", Some("NOT_FOUND")),
    ("FAILED", Some("BAD_USER_INPUT")),
    ("FAILED", Some("BAD_USER_INPUT")),
    ("FAILED", Some("BAD_USER_INPUT")),
    ("FAILED", Some("BAD_USER_INPUT")),
    // 5 of the 12 units are reserved: a count below that fails.
    ("FAILED", Some("INSUFFICIENT_STOCK")),
    // Only 12 - 5 = 7 are available to a negative delta.
    ("FAILED", Some("INSUFFICIENT_STOCK")),
    ("FAILED", Some("STOCK_LIMIT_EXCEEDED")),
    ("APPLIED", None),
    ("FAILED", Some("BAD_USER_INPUT")),
    ("FAILED", Some("BAD_USER_INPUT")),
    ("FAILED", Some("BAD_USER_INPUT")),
    ("FAILED", Some("BAD_USER_INPUT")),
    ("APPLIED", None),
];

fn assert_failing_outcomes(result: &Value) {
    let outcomes: Vec<(&str, Option<&str>)> = result["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["status"].as_str().unwrap(), row["code"].as_str()))
        .collect();
    assert_eq!(outcomes, FAILING_OUTCOMES, "{result:#}");
    for row in result["rows"].as_array().unwrap() {
        if row["status"] == "FAILED" {
            let message = row["message"].as_str().unwrap();
            assert!(!message.is_empty() && !message.contains("SQL"), "{row}");
        }
    }
    assert_eq!(result["failed"], 12);
    assert_eq!(result["applied"], 3);
}

/// A product holding 5 reserved units, for the failing rows.
async fn product_with_reservation(app: &TestApp) -> String {
    let id = id_of(&app.create_product("Good", "GOOD-1", 10, 0).await);
    let reserved = app
        .graphql(
            "mutation($id: ID!) { reserveStock(productId: $id, quantity: 5, ttlSeconds: 3600) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_no_errors(&reserved);
    id
}

async fn reject_everything_applies_nothing_when_a_row_fails(app: TestApp) {
    let id = product_with_reservation(&app).await;
    let before = state(&app, &id).await;
    let movements = app.movements(&id).await.len();

    let result = sync(&app, json!({ "source": "wh", "rows": failing_rows() })).await;
    assert_eq!(result["committed"], false);
    assert_failing_outcomes(&result);
    assert_eq!(state(&app, &id).await, before);
    assert_eq!(app.movements(&id).await.len(), movements);

    // Nothing was applied, so no sequence was stored either: the same count applies later.
    let again = sync(
        &app,
        json!({ "source": "wh", "rows": [
            { "sku": "GOOD-1", "onHand": 9, "sourceSequence": 5 },
            { "sku": "NO-SUCH-SKU", "onHand": 1 },
        ] }),
    )
    .await;
    assert_eq!(again["committed"], false);
    let retried = sync(
        &app,
        json!({ "source": "wh", "rows": [{ "sku": "GOOD-1", "onHand": 9, "sourceSequence": 5 }] }),
    )
    .await;
    assert_eq!(statuses(&retried), ["APPLIED"]);
    assert_eq!(state(&app, &id).await["stock"], 9);
    assert_eq!(state(&app, &id).await["reserved"], 5);
    verify(&app).await;
}

async fn reject_failed_rows_applies_the_good_rows_and_reports_the_others(app: TestApp) {
    let id = product_with_reservation(&app).await;
    let result = sync(
        &app,
        json!({ "source": "wh", "errorPolicy": "REJECT_FAILED_ROWS", "rows": failing_rows() }),
    )
    .await;
    assert_eq!(result["committed"], true);
    assert_failing_outcomes(&result);
    let after = state(&app, &id).await;
    // 12 in the lot-less MAIN stock (+1 from the last row), 3 in lot L1: reservations survive.
    assert_eq!(after["stock"], 12 + 3 + 1);
    assert_eq!(after["reserved"], 5);
    let kinds: Vec<Value> = app.movements(&id).await[..3]
        .iter()
        .map(|m| m["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        [json!("ADD"), json!("ADJUSTMENT"), json!("ADJUSTMENT")]
    );
    verify(&app).await;
}

async fn a_bad_call_is_refused_as_a_whole_and_changes_nothing(app: TestApp) {
    let id = id_of(&app.create_product("Washer", "WASH-1", 10, 0).await);
    let before = state(&app, &id).await;
    let row = json!([{ "sku": "WASH-1", "onHand": 1 }]);
    for (input, field) in [
        (json!({ "source": "", "rows": row }), "source"),
        (json!({ "source": "   ", "rows": row }), "source"),
        (json!({ "source": "s".repeat(65), "rows": row }), "source"),
        (json!({ "source": "a\u{7}b", "rows": row }), "source"),
        (
            json!({ "source": "wh", "rows": row, "idempotencyKey": "k".repeat(201) }),
            "idempotencyKey",
        ),
    ] {
        let response = app.graphql(SYNC, json!({ "input": input })).await;
        assert_error(&response, "BAD_USER_INPUT");
        assert_eq!(
            response["errors"][0]["extensions"]["field"],
            json!(["input", field]),
            "{response:#}"
        );
        assert_eq!(response["data"]["syncStock"], Value::Null);
    }
    // Rows of the wrong shape never reach the server's rules.
    let wrong_type = app
        .graphql(
            SYNC,
            json!({ "input": { "source": "wh", "rows": [{ "sku": "WASH-1", "onHand": "many" }] } }),
        )
        .await;
    assert!(wrong_type["errors"].is_array(), "{wrong_type:#}");
    let rest = app
        .rest(
            Method::POST,
            "/products/bulk-update",
            Some(json!({ "source": "wh", "rows": [{ "sku": "WASH-1", "onHand": 1, "colour": "red" }] })),
        )
        .await;
    assert_rest_error(&rest, 400, "BAD_USER_INPUT");
    let empty = sync(&app, json!({ "source": "wh", "rows": [] })).await;
    assert_eq!(empty["committed"], true);
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(state(&app, &id).await, before);
}

async fn more_rows_than_the_configured_maximum_are_refused(app: TestApp) {
    let id = id_of(&app.create_product("Pin", "PIN-1", 10, 0).await);
    let rows: Vec<Value> = (0..4)
        .map(|n| json!({ "sku": "PIN-1", "onHand": n }))
        .collect();
    let response = app
        .graphql(SYNC, json!({ "input": { "source": "wh", "rows": rows } }))
        .await;
    assert_error(&response, "BAD_USER_INPUT");
    let message = response["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("at most 3 rows (got 4)"), "{message}");
    let rest = app
        .rest(
            Method::POST,
            "/products/bulk-update",
            Some(json!({ "source": "wh", "rows": rows })),
        )
        .await;
    assert_rest_error(&rest, 400, "BAD_USER_INPUT");
    assert_eq!(state(&app, &id).await["stock"], 10);
    let three = sync(&app, json!({ "source": "wh", "rows": &rows[..3] })).await;
    assert_eq!(three["applied"], 3);
    assert_eq!(state(&app, &id).await["stock"], 2);
}

async fn a_dry_run_writes_nothing_sends_nothing_and_answers_what_the_real_run_answers(
    app: TestApp,
) {
    let id = id_of(&app.create_product("Gear", "GEAR-1", 20, 5).await);
    let input = json!({ "source": "wh", "errorPolicy": "REJECT_FAILED_ROWS", "rows": [
        { "sku": "GEAR-1", "onHand": 3, "sourceSequence": 1 },
        { "sku": "GEAR-1", "delta": 4, "sourceSequence": 2 },
        { "sku": "NOPE", "delta": 4 },
        { "sku": "GEAR-1", "onHand": 1, "sourceSequence": 2 },
    ] });
    settle_events(&app).await;
    let mut client = WsClient::connect(&app, Protocol::TransportWs).await;
    client
        .subscribe(
            "changed",
            "subscription($ids: [ID!]) { stockChanged(productIds: $ids) { kind stockAfter } }",
            json!({ "ids": [id] }),
        )
        .await;
    client
        .subscribe(
            "low",
            "subscription($ids: [ID!]) { lowStock(productIds: $ids) { stock crossedThreshold } }",
            json!({ "ids": [id] }),
        )
        .await;
    wait_for_subscribers(&app, 2).await;
    let before = state(&app, &id).await;
    let movements = app.movements(&id).await.len();

    let mut dry_input = input.clone();
    dry_input["dryRun"] = json!(true);
    let dry = sync(&app, dry_input.clone()).await;
    assert_eq!(dry["dryRun"], true);
    assert_eq!(statuses(&dry), ["APPLIED", "APPLIED", "FAILED", "STALE"]);
    assert_eq!(state(&app, &id).await, before);
    assert_eq!(app.movements(&id).await.len(), movements);
    settle_events(&app).await;
    assert!(
        client.next(Duration::from_millis(300)).await.is_none(),
        "a dry run sends no event"
    );
    // A dry run claims no key and stores no sequence: it can be repeated, and the real run
    // still applies.
    assert_eq!(sync(&app, dry_input).await, dry);

    let real = sync(&app, input).await;
    let mut expected = dry.clone();
    expected["dryRun"] = json!(false);
    assert_eq!(real, expected);
    assert_eq!(state(&app, &id).await["stock"], 7);
    // One stockChanged per applied row, after the commit; lowStock for the crossing.
    let mut changed = Vec::new();
    let mut low = Vec::new();
    for _ in 0..3 {
        match client.next(Duration::from_secs(5)).await {
            Some(crate::ws::Delivery::Next(payload)) => {
                if let Some(event) = payload["data"].get("stockChanged") {
                    changed.push((event["kind"].clone(), event["stockAfter"].clone()));
                } else {
                    low.push(payload["data"]["lowStock"].clone());
                }
            }
            other => panic!("expected an event, got {other:?}"),
        }
    }
    assert_eq!(
        changed,
        [(json!("ADJUSTMENT"), json!(3)), (json!("ADD"), json!(7))]
    );
    assert_eq!(low, [json!({ "stock": 3, "crossedThreshold": true })]);
    client.close().await;
}

async fn a_retried_sync_with_its_key_replays_its_result_and_changes_nothing_again(app: TestApp) {
    let id = id_of(&app.create_product("Cog", "COG-1", 10, 0).await);
    let input = json!({ "source": "wh", "idempotencyKey": "sync-1", "rows": [
        { "sku": "COG-1", "delta": 5 },
    ] });
    let first = sync(&app, input.clone()).await;
    assert_eq!(statuses(&first), ["APPLIED"]);
    let again = sync(&app, input.clone()).await;
    assert_eq!(again, first);
    assert_eq!(state(&app, &id).await["stock"], 15);

    let mut other = input.clone();
    other["rows"][0]["delta"] = json!(6);
    let reused = app.graphql(SYNC, json!({ "input": other })).await;
    assert_error(&reused, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(state(&app, &id).await["stock"], 15);

    // A call that committed nothing (a failed row under REJECT_EVERYTHING) replays as well.
    let failing = json!({ "source": "wh", "idempotencyKey": "sync-2", "rows": [
        { "sku": "COG-1", "delta": 1 }, { "sku": "NOPE", "delta": 1 },
    ] });
    let refused = sync(&app, failing.clone()).await;
    assert_eq!(refused["committed"], false);
    assert_eq!(sync(&app, failing).await, refused);
    assert_eq!(state(&app, &id).await["stock"], 15);
    verify(&app).await;
}

async fn the_rest_bulk_update_takes_the_same_input_and_answers_the_same_result(app: TestApp) {
    let id = id_of(&app.create_product("Axle", "AXLE-1", 10, 0).await);
    let body = json!({ "source": "wh", "errorPolicy": "REJECT_FAILED_ROWS", "rows": [
        { "sku": "AXLE-1", "onHand": 4, "sourceSequence": 7 },
        { "sku": "MISSING", "onHand": 4 },
    ] });
    let response = app
        .rest(Method::POST, "/products/bulk-update", Some(body.clone()))
        .await;
    assert_eq!(response.status, 200, "{:#}", response.body);
    assert_eq!(response.body["committed"], true);
    assert_eq!(statuses(&response.body), ["APPLIED", "FAILED"]);
    assert_eq!(response.body["rows"][1]["code"], "NOT_FOUND");
    assert_eq!(state(&app, &id).await["stock"], 4);

    // The same over GraphQL now: the first row is stale.
    let graphql = sync(&app, body.clone()).await;
    assert_eq!(statuses(&graphql), ["STALE", "FAILED"]);

    // The key may come as a header; a retry replays.
    let keyed = json!({ "source": "wh", "rows": [{ "sku": "AXLE-1", "delta": 2 }] });
    let mut replies = Vec::new();
    for _ in 0..2 {
        let reply = app
            .client
            .post(format!("{}/products/bulk-update", app.address))
            .header("Idempotency-Key", "bulk-1")
            .json(&keyed)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        replies.push(reply.json::<Value>().await.unwrap());
    }
    assert_eq!(replies[0], replies[1]);
    assert_eq!(state(&app, &id).await["stock"], 6);
}

async fn two_syncs_over_the_same_500_products_in_opposite_order_racing_reductions_both_commit(
    app: TestApp,
) {
    const PRODUCTS: usize = 500;
    let skus: Vec<String> = (0..PRODUCTS).map(|n| format!("RACE-{n:03}")).collect();
    let mut ids = Vec::with_capacity(PRODUCTS);
    for chunk in skus.chunks(50) {
        let created = join_all(
            chunk
                .iter()
                .map(|sku| app.create_product("Racer", sku, 100, 0)),
        )
        .await;
        ids.extend(created.iter().map(id_of));
    }
    let counts: Vec<Value> = skus
        .iter()
        .map(|sku| json!({ "sku": sku, "onHand": 80 }))
        .collect();
    let deltas: Vec<Value> = skus
        .iter()
        .rev()
        .map(|sku| json!({ "sku": sku, "delta": -1 }))
        .collect();
    let first = sync(&app, json!({ "source": "count", "rows": counts }));
    let second = sync(&app, json!({ "source": "sales", "rows": deltas }));
    let reductions = join_all(ids.iter().step_by(5).map(|id| app.reduce_stock(id, 2)));
    let (first, second, reductions) = tokio::time::timeout(
        Duration::from_secs(120),
        futures::future::join3(first, second, reductions),
    )
    .await
    .expect("neither sync deadlocks");
    for result in [&first, &second] {
        assert_eq!(result["committed"], true, "{result:#}");
        assert_eq!(result["applied"], PRODUCTS);
    }
    for response in &reductions {
        assert_no_errors(response);
    }
    // Whatever order they ran in, every product ends at its count (80), less the sale (1) if it
    // came after the count, less the reduction (2) if that came after the count.
    for (index, id) in ids.iter().enumerate().step_by(25) {
        let stock = app.product(id).await["stock"].as_i64().unwrap();
        let possible: &[i64] = if index % 5 == 0 {
            &[80, 79, 78, 77]
        } else {
            &[80, 79]
        };
        assert!(possible.contains(&stock), "{}: {stock}", skus[index]);
    }
    verify(&app).await;
}

async fn sequences_are_kept_per_lot_and_sources_ignore_case(app: TestApp) {
    let id = id_of(&app.create_product("Cheese", "CHEESE-1", 0, 0).await);
    // One count file, one sequence number, three buckets of one location: all apply.
    let count = sync(
        &app,
        json!({ "source": "WH", "rows": [
            { "sku": "CHEESE-1", "lot": { "code": "A", "expiresOn": "2031-01-01" }, "onHand": 10, "sourceSequence": 7 },
            { "sku": "CHEESE-1", "lot": { "code": "B", "expiresOn": "2031-02-01" }, "onHand": 20, "sourceSequence": 7 },
            { "sku": "CHEESE-1", "onHand": 30, "sourceSequence": 7 },
        ] }),
    )
    .await;
    assert_eq!(statuses(&count), ["APPLIED", "APPLIED", "APPLIED"]);
    // A first count of another lot is not stale for having a lower number than lot A's.
    let first_of_c = sync(
        &app,
        json!({ "source": "wh", "rows": [
            { "sku": "CHEESE-1", "lot": { "code": "C" }, "onHand": 5, "sourceSequence": 3 },
            { "sku": "CHEESE-1", "lot": { "code": "A", "expiresOn": "2031-01-01" }, "onHand": 1, "sourceSequence": 7 },
            { "sku": "CHEESE-1", "onHand": 1, "sourceSequence": 6 },
        ] }),
    )
    .await;
    // `wh` is `WH`: its sequences hold.
    assert_eq!(statuses(&first_of_c), ["APPLIED", "STALE", "STALE"]);
    assert_eq!(state(&app, &id).await["stock"], 10 + 20 + 30 + 5);
}

async fn out_of_range_dates_and_sequences_fail_their_row_on_both_transports(app: TestApp) {
    let id = id_of(&app.create_product("Dated", "DTX-1", 0, 0).await);
    let body = json!({ "source": "D", "errorPolicy": "REJECT_FAILED_ROWS", "rows": [
        { "sku": "DTX-1", "delta": 5 },
        { "sku": "DTX-1", "lot": { "code": "Z2", "expiresOn": "-4714-01-01" }, "delta": 1 },
        { "sku": "DTX-1", "lot": { "code": "Z3", "expiresOn": "+20000-01-01" }, "delta": 1 },
        { "sku": "DTX-1", "delta": 1, "sourceSequence": 2147483648_i64 },
        { "sku": "DTX-1", "delta": 1, "sourceSequence": 2147483647 },
    ] });
    let response = app
        .rest(Method::POST, "/products/bulk-update", Some(body))
        .await;
    assert_eq!(response.status, 200, "{:#}", response.body);
    assert_eq!(
        statuses(&response.body),
        ["APPLIED", "FAILED", "FAILED", "FAILED", "APPLIED"]
    );
    for index in 1..4 {
        assert_eq!(response.body["rows"][index]["code"], "BAD_USER_INPUT");
    }
    assert_eq!(state(&app, &id).await["stock"], 6);
    // GraphQL takes the largest sequence REST takes, and sees it stored.
    let graphql = sync(
        &app,
        json!({ "source": "D", "rows": [{ "sku": "DTX-1", "delta": 1, "sourceSequence": 2147483647 }] }),
    )
    .await;
    assert_eq!(statuses(&graphql), ["STALE"]);
}

async fn a_dry_run_with_a_used_key_answers_what_the_retry_answers(app: TestApp) {
    let id = id_of(&app.create_product("Keyed", "KEY-1", 0, 0).await);
    let input = json!({ "source": "wh", "idempotencyKey": "k-a", "rows": [
        { "sku": "KEY-1", "onHand": 4, "sourceSequence": 1 },
    ] });
    let real = sync(&app, input.clone()).await;
    assert_eq!(statuses(&real), ["APPLIED"]);
    let mut dry_input = input.clone();
    dry_input["dryRun"] = json!(true);
    let dry = sync(&app, dry_input.clone()).await;
    let mut expected = real.clone();
    expected["dryRun"] = json!(true);
    assert_eq!(dry, expected, "the retry would replay, so the dry run does");
    dry_input["rows"][0]["onHand"] = json!(5);
    let reused = app.graphql(SYNC, json!({ "input": dry_input })).await;
    assert_error(&reused, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(state(&app, &id).await["stock"], 4);
}

async fn the_same_call_over_graphql_and_rest_is_one_request_for_its_key(app: TestApp) {
    let id = id_of(&app.create_product("Twice", "FP-1", 0, 0).await);
    let first = sync(
        &app,
        json!({ "source": "wh", "idempotencyKey": "fp", "rows": [{ "sku": "FP-1", "delta": 1 }] }),
    )
    .await;
    // The same rows over REST, SKU in other case, the default location written out.
    let again = app
        .rest(
            Method::POST,
            "/products/bulk-update",
            Some(json!({ "source": "wh", "idempotencyKey": "fp",
                         "rows": [{ "sku": "fp-1", "delta": 1, "locationCode": "main" }] })),
        )
        .await;
    assert_eq!(again.status, 200, "{:#}", again.body);
    assert_eq!(again.body["applied"], first["applied"]);
    assert_eq!(state(&app, &id).await["stock"], 1, "applied once");
}

// --- A dry run equals the real run: random states, random batches ---------------------------

#[derive(Clone, Debug)]
struct RandomRow {
    product: usize,
    location: usize,
    lot: usize,
    count: Option<i64>,
    delta: i64,
    sequence: Option<i64>,
}

#[derive(Clone, Debug)]
struct Case {
    /// Per product: the initial count of each of a few buckets and units reserved.
    initial: Vec<(Vec<i64>, i64, i64)>,
    rows: Vec<RandomRow>,
    earlier_sequences: Vec<(usize, usize, i64)>,
    reject_failed_rows: bool,
}

/// Locations the rows name: two that exist, one that does not.
const LOCATIONS: [&str; 3] = ["MAIN", "PROP-WH", "NOWHERE"];
/// Lots the rows name: none, a lot, the same code with another date (refused), a lot that
/// never expires.
const LOTS: [Option<(&str, Option<&str>)>; 4] = [
    None,
    Some(("L1", Some("2031-05-01"))),
    Some(("L1", Some("2032-05-01"))),
    Some(("L2", None)),
];

fn case() -> impl Strategy<Value = Case> {
    let product = (prop::collection::vec(0i64..20, 3), 0i64..10, 0i64..15);
    let row = (
        0usize..4,
        0usize..3,
        0usize..4,
        prop::option::of(0i64..30),
        -15i64..15,
        prop::option::of(0i64..6),
    )
        .prop_map(
            |(product, location, lot, count, delta, sequence)| RandomRow {
                product,
                location,
                lot,
                count,
                delta,
                sequence,
            },
        );
    (
        prop::collection::vec(product, 3),
        prop::collection::vec(row, 0..25),
        prop::collection::vec((0usize..3, 0usize..2, 0i64..4), 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(initial, rows, earlier_sequences, reject_failed_rows)| Case {
                initial,
                rows,
                earlier_sequences,
                reject_failed_rows,
            },
        )
}

fn row_json(row: &RandomRow, skus: &[String]) -> Value {
    // Product index 3 names no product.
    let sku = skus
        .get(row.product)
        .cloned()
        .unwrap_or_else(|| "PROP-MISSING".to_owned());
    let mut value = json!({ "sku": sku, "locationCode": LOCATIONS[row.location] });
    match row.count {
        Some(count) => value["onHand"] = json!(count),
        None => value["delta"] = json!(row.delta),
    }
    if let Some((code, expires_on)) = LOTS[row.lot] {
        value["lot"] = json!({ "code": code, "expiresOn": expires_on });
    }
    if let Some(sequence) = row.sequence {
        value["sourceSequence"] = json!(sequence);
    }
    value
}

/// The case's products as the API shows them, and their ledger lengths.
async fn snapshot(app: &TestApp, ids: &[String]) -> Vec<(Value, usize)> {
    let mut all = Vec::new();
    for id in ids {
        all.push((state(app, id).await, app.movements(id).await.len()));
    }
    all
}

async fn run_case(app: &TestApp, case: &Case, number: usize) -> Result<(), TestCaseError> {
    let skus: Vec<String> = (0..3).map(|n| format!("PROP-{number}-{n}")).collect();
    let mut ids = Vec::new();
    for (sku, (buckets, reorder_level, reserved)) in skus.iter().zip(&case.initial) {
        let id = id_of(&app.create_product("Prop", sku, 0, *reorder_level).await);
        let setup = sync(
            app,
            json!({ "source": "setup", "rows": [
                { "sku": sku, "onHand": buckets[0] },
                { "sku": sku, "locationCode": "PROP-WH", "onHand": buckets[1] },
                { "sku": sku, "lot": { "code": "L1", "expiresOn": "2031-05-01" }, "onHand": buckets[2] },
            ] }),
        )
        .await;
        prop_assert_eq!(&setup["committed"], &json!(true));
        if *reserved > 0 && *reserved <= buckets.iter().sum::<i64>() {
            let response = app
                .graphql(
                    "mutation($id: ID!, $quantity: Int!) { reserveStock(productId: $id, quantity: $quantity, ttlSeconds: 3600) { id } }",
                    json!({ "id": id, "quantity": reserved }),
                )
                .await;
            assert_no_errors(&response);
        }
        ids.push(id);
    }
    for (product, location, sequence) in &case.earlier_sequences {
        let earlier = sync(
            app,
            json!({ "source": "prop", "rows": [{ "sku": skus[*product],
                "locationCode": LOCATIONS[*location], "delta": 0, "sourceSequence": sequence }] }),
        )
        .await;
        prop_assert_eq!(&earlier["committed"], &json!(true));
    }
    let input = json!({
        "source": "prop",
        "errorPolicy": if case.reject_failed_rows { "REJECT_FAILED_ROWS" } else { "REJECT_EVERYTHING" },
        "rows": case.rows.iter().map(|row| row_json(row, &skus)).collect::<Vec<_>>(),
    });
    let before = snapshot(app, &ids).await;

    let mut events = Box::pin(app.services().events().subscribe());
    let mut dry_input = input.clone();
    dry_input["dryRun"] = json!(true);
    let dry = sync(app, dry_input).await;
    prop_assert_eq!(&dry["dryRun"], &json!(true));
    prop_assert_eq!(&snapshot(app, &ids).await, &before, "the dry run wrote");
    // A marker change after the dry run: every event committed before it arrives first.
    let marker = format!("PROP-MARKER-{number}");
    app.create_product("Marker", &marker, 0, 0).await;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("the marker's event arrives")
            .expect("the event stream stays open")
            .expect("no event is lost");
        if event.product.sku == marker {
            break;
        }
        prop_assert!(
            !skus.contains(&event.product.sku),
            "the dry run sent an event for {}",
            event.product.sku
        );
    }

    let real = sync(app, input).await;
    let mut expected = dry;
    expected["dryRun"] = json!(false);
    prop_assert_eq!(&real, &expected);
    if real["committed"] == false {
        prop_assert_eq!(
            &snapshot(app, &ids).await,
            &before,
            "an uncommitted call wrote"
        );
    }
    Ok(())
}

fn dry_runs_equal_real_runs(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(async {
        let app = spawn_app(backend).await;
        create_location(&app, "PROP-WH").await;
        app
    });
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&case(), |case| {
            let number = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            runtime.block_on(run_case(&app, &case, number))
        })
        .unwrap();
    runtime.block_on(verify(&app));
}

#[test]
fn a_dry_run_answers_what_the_real_run_answers_on_random_states_and_batches_on_sqlite() {
    dry_runs_equal_real_runs(Backend::Sqlite);
}

#[test]
fn a_dry_run_answers_what_the_real_run_answers_on_random_states_and_batches_on_postgres() {
    dry_runs_equal_real_runs(Backend::Postgres);
}
