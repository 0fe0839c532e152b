//! Locations and lots: stock per (product, location, lot), FEFO, transfers, write-offs, expiry.

use std::time::Duration;

use chrono::NaiveDate;
use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_error, assert_no_errors, assert_rest_error, error_code, id_of, run_verify,
};
use crate::ws::{Protocol, WsClient, settle_events, wait_for_subscribers};

on_both_backends!(
    locations_are_created_looked_up_and_archived_only_when_empty,
    reductions_take_locations_by_priority_and_lots_first_expiring_first,
    racing_reductions_across_three_locations_and_five_lots_take_exactly_what_was_available_in_fefo_order,
    racing_transfers_and_reductions_create_or_lose_no_unit,
    a_committed_reservation_takes_exactly_the_lot_it_held,
    bad_location_and_lot_input_gets_its_code_and_changes_nothing,
    the_rest_stock_view_shows_each_location_and_its_lots,
    movements_can_be_listed_by_location_and_lot,
    per_location_stock_and_allocations_have_stable_distinct_ids,
);

on_both_backends!(with_args ["--lot-expiry-interval", "100ms"] =>
    a_lot_past_its_date_is_never_available_fires_lot_expired_once_and_can_be_written_off,
);

const CREATE_LOCATION: &str = "mutation($code: String!, $priority: Int) {
    createLocation(input: { code: $code, name: $code, priority: $priority }) {
        id code name priority createdAt archivedAt } }";
const ADD: &str = "mutation($id: ID!, $quantity: Int!, $location: ID, $lot: LotInput) {
    addStock(id: $id, quantity: $quantity, locationId: $location, lot: $lot) {
        newStock movement { kind allocations { location { code } lot quantity stockBefore stockAfter } } } }";
const REDUCE: &str = "mutation($id: ID!, $quantity: Int!, $location: ID) {
    reduceStock(id: $id, quantity: $quantity, locationId: $location) {
        newStock movement { kind quantity allocations { location { code } lot quantity stockBefore stockAfter } } } }";
const TRANSFER: &str = "mutation($id: ID!, $from: ID!, $to: ID!, $quantity: Int!, $lot: String) {
    transferStock(productId: $id, fromLocationId: $from, toLocationId: $to, quantity: $quantity, lotCode: $lot) {
        newStock movement { kind quantity allocations { location { code } lot quantity } } } }";
const WRITE_OFF: &str = "mutation($id: ID!, $location: ID!, $lot: String, $quantity: Int!, $reason: String!) {
    writeOffStock(productId: $id, locationId: $location, lotCode: $lot, quantity: $quantity, reason: $reason) {
        newStock movement { kind quantity reason allocations { lot quantity } } } }";
const STOCK_VIEW: &str = "query($id: ID!) { product(id: $id) {
    stock reserved available expired version status
    stockByLocation { location { code } stock reserved available expired }
    lots(includeEmpty: true) { code expiresOn stock expired location { code } } } }";
const VERIFY: &str =
    "{ verifyLedger { ok mismatches { sku } bucketMismatches movementMismatches } }";

async fn create_location(app: &TestApp, code: &str, priority: i64) -> String {
    let response = app
        .graphql(
            CREATE_LOCATION,
            json!({ "code": code, "priority": priority }),
        )
        .await;
    assert_no_errors(&response);
    response["data"]["createLocation"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn main_location(app: &TestApp) -> String {
    let response = app
        .graphql(
            "{ locationByCode(code: \"main\") { id priority } }",
            json!({}),
        )
        .await;
    assert_eq!(
        response["data"]["locationByCode"]["priority"], 0,
        "{response}"
    );
    response["data"]["locationByCode"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn add_lot(
    app: &TestApp,
    id: &str,
    quantity: i64,
    location: &str,
    lot: Option<(&str, Option<&str>)>,
) -> Value {
    let lot = lot.map(|(code, expires_on)| json!({ "code": code, "expiresOn": expires_on }));
    app.graphql(
        ADD,
        json!({ "id": id, "quantity": quantity, "location": location, "lot": lot }),
    )
    .await
}

async fn stock_view(app: &TestApp, id: &str) -> Value {
    let response = app.graphql(STOCK_VIEW, json!({ "id": id })).await;
    assert_no_errors(&response);
    response["data"]["product"].clone()
}

async fn assert_ledger_verifies(app: &TestApp) {
    let report = app.graphql(VERIFY, json!({})).await;
    assert_eq!(
        report["data"]["verifyLedger"],
        json!({ "ok": true, "mismatches": [], "bucketMismatches": 0, "movementMismatches": 0 }),
        "{report}"
    );
    let (code, output) = run_verify(&app.database_url).await;
    assert_eq!(code, 0, "{output}");
}

fn day(offset: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(offset)).to_string()
}

async fn locations_are_created_looked_up_and_archived_only_when_empty(app: TestApp) {
    let main = main_location(&app).await;
    let store = create_location(&app, "Store-1", 5).await;
    let duplicate = app
        .graphql(CREATE_LOCATION, json!({ "code": "STORE-1", "priority": 1 }))
        .await;
    assert_error(&duplicate, "BAD_USER_INPUT");
    let blank = app
        .graphql(CREATE_LOCATION, json!({ "code": "  ", "priority": 1 }))
        .await;
    assert_error(&blank, "BAD_USER_INPUT");
    let long = app
        .graphql(
            CREATE_LOCATION,
            json!({ "code": "x".repeat(33), "priority": 1 }),
        )
        .await;
    assert_error(&long, "BAD_USER_INPUT");

    let listed = app
        .graphql("{ locations { code priority } }", json!({}))
        .await;
    assert_eq!(
        listed["data"]["locations"],
        json!([{ "code": "MAIN", "priority": 0 }, { "code": "Store-1", "priority": 5 }])
    );
    let renamed = app
        .graphql(
            "mutation($id: ID!) { updateLocation(id: $id, input: { name: \"Corner store\", priority: 2 }) { name priority } }",
            json!({ "id": store }),
        )
        .await;
    assert_eq!(
        renamed["data"]["updateLocation"],
        json!({ "name": "Corner store", "priority": 2 })
    );

    let id = id_of(&app.create_product("Kept", "LOC-1", 0, 0).await);
    assert_no_errors(&add_lot(&app, &id, 4, &store, None).await);
    const ARCHIVE: &str = "mutation($id: ID!) { archiveLocation(id: $id) { code archivedAt } }";
    let refused = app.graphql(ARCHIVE, json!({ "id": store })).await;
    assert_error(&refused, "LOCATION_NOT_EMPTY");
    assert_error(
        &app.graphql(ARCHIVE, json!({ "id": main })).await,
        "BAD_USER_INPUT",
    );

    let moved = app
        .graphql(
            TRANSFER,
            json!({ "id": id, "from": store, "to": main, "quantity": 4 }),
        )
        .await;
    assert_no_errors(&moved);
    let archived = app.graphql(ARCHIVE, json!({ "id": store })).await;
    assert_no_errors(&archived);
    assert!(archived["data"]["archiveLocation"]["archivedAt"].is_string());
    let listed = app.graphql("{ locations { code } }", json!({})).await;
    assert_eq!(listed["data"]["locations"], json!([{ "code": "MAIN" }]));
    let all = app
        .graphql("{ locations(includeArchived: true) { code } }", json!({}))
        .await;
    assert_eq!(all["data"]["locations"].as_array().unwrap().len(), 2);
    let by_node = app
        .graphql(
            "query($id: ID!) { node(id: $id) { __typename ... on Location { code } } }",
            json!({ "id": store }),
        )
        .await;
    assert_eq!(
        by_node["data"]["node"],
        json!({ "__typename": "Location", "code": "Store-1" })
    );

    // An archived location takes no stock.
    assert_error(&add_lot(&app, &id, 1, &store, None).await, "BAD_USER_INPUT");
    assert_eq!(stock_view(&app, &id).await["stock"], 4);
    assert_ledger_verifies(&app).await;
}

async fn reductions_take_locations_by_priority_and_lots_first_expiring_first(app: TestApp) {
    let main = main_location(&app).await;
    let store = create_location(&app, "STORE", 10).await;
    let id = id_of(&app.create_product("Milk", "MILK-1", 2, 0).await);
    assert_no_errors(&add_lot(&app, &id, 3, &main, Some(("L-LATE", Some(&day(30))))).await);
    assert_no_errors(&add_lot(&app, &id, 2, &main, Some(("L-SOON", Some(&day(3))))).await);
    assert_no_errors(&add_lot(&app, &id, 5, &store, Some(("L-FIRST", Some(&day(1))))).await);

    // MAIN first (priority 0): SOON, then LATE, then the lot-less units; then STORE.
    let taken = app
        .graphql(REDUCE, json!({ "id": id, "quantity": 8 }))
        .await;
    assert_no_errors(&taken);
    let allocations = &taken["data"]["reduceStock"]["movement"]["allocations"];
    let parts: Vec<(String, Value, i64)> = allocations
        .as_array()
        .unwrap()
        .iter()
        .map(|part| {
            (
                part["location"]["code"].as_str().unwrap().to_owned(),
                part["lot"].clone(),
                part["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut sorted = parts.clone();
    sorted.sort_by_key(|(code, lot, _)| (code.clone(), lot.to_string()));
    assert_eq!(
        sorted,
        [
            ("MAIN".to_owned(), json!("L-LATE"), -3),
            ("MAIN".to_owned(), json!("L-SOON"), -2),
            ("MAIN".to_owned(), json!(null), -2),
            ("STORE".to_owned(), json!("L-FIRST"), -1),
        ]
    );
    assert_eq!(taken["data"]["reduceStock"]["newStock"], 4);

    // With a location: only from there.
    let from_main = app
        .graphql(REDUCE, json!({ "id": id, "quantity": 1, "location": main }))
        .await;
    assert_error(&from_main, "INSUFFICIENT_STOCK");
    let view = stock_view(&app, &id).await;
    assert_eq!(
        view["stockByLocation"],
        json!([
            { "location": { "code": "MAIN" }, "stock": 0, "reserved": 0, "available": 0, "expired": 0 },
            { "location": { "code": "STORE" }, "stock": 4, "reserved": 0, "available": 4, "expired": 0 },
        ])
    );
    assert_ledger_verifies(&app).await;
}

async fn racing_reductions_across_three_locations_and_five_lots_take_exactly_what_was_available_in_fefo_order(
    app: TestApp,
) {
    let main = main_location(&app).await;
    let east = create_location(&app, "EAST", 1).await;
    let west = create_location(&app, "WEST", 2).await;
    let id = id_of(&app.create_product("Yogurt", "YOG-1", 0, 0).await);
    // Five lots over three locations, and an expired one that must never be taken.
    let lots = [
        (&main, "M-B", 6, Some(day(20))),
        (&main, "M-A", 5, Some(day(2))),
        (&east, "E-A", 7, Some(day(1))),
        (&east, "E-N", 4, None),
        (&west, "W-A", 8, Some(day(9))),
    ];
    for (location, code, quantity, expires_on) in &lots {
        assert_no_errors(
            &add_lot(
                &app,
                &id,
                *quantity,
                location,
                Some((code, expires_on.as_deref())),
            )
            .await,
        );
    }
    assert_no_errors(&add_lot(&app, &id, 3, &west, Some(("W-OLD", Some(&day(-1))))).await);
    let available = 30;
    assert_eq!(stock_view(&app, &id).await["available"], available);

    // 60 clients race for 30 units, one unit each.
    let attempts = join_all((0..60).map(|_| {
        let app = &app;
        let id = &id;
        async move {
            app.graphql(REDUCE, json!({ "id": id, "quantity": 1 }))
                .await
        }
    }))
    .await;
    let succeeded = attempts
        .iter()
        .filter(|response| response.get("errors").is_none())
        .count();
    for response in &attempts {
        if response.get("errors").is_some() {
            assert_eq!(
                error_code(response),
                Some("INSUFFICIENT_STOCK"),
                "{response}"
            );
        }
    }
    assert_eq!(succeeded, available as usize);

    // The ledger, in commit order, took lot after lot in FEFO order.
    let expected: Vec<&str> = std::iter::repeat_n("M-A", 5)
        .chain(std::iter::repeat_n("M-B", 6))
        .chain(std::iter::repeat_n("E-A", 7))
        .chain(std::iter::repeat_n("E-N", 4))
        .chain(std::iter::repeat_n("W-A", 8))
        .collect();
    let history = app
        .graphql(
            "query($id: ID!) { stockMovements(productId: $id, first: 100) { nodes { kind allocations { lot quantity } } } }",
            json!({ "id": id }),
        )
        .await;
    let mut taken: Vec<String> = history["data"]["stockMovements"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|movement| movement["kind"] == "REDUCE")
        .map(|movement| {
            let parts = movement["allocations"].as_array().unwrap();
            assert_eq!(parts.len(), 1, "{movement}");
            assert_eq!(parts[0]["quantity"], -1);
            parts[0]["lot"].as_str().unwrap().to_owned()
        })
        .collect();
    taken.reverse(); // oldest first
    assert_eq!(taken, expected);
    let view = stock_view(&app, &id).await;
    assert_eq!(
        (view["stock"].clone(), view["expired"].clone()),
        (json!(3), json!(3))
    );
    for lot in view["lots"].as_array().unwrap() {
        let expected = if lot["code"] == "W-OLD" { 3 } else { 0 };
        assert_eq!(lot["stock"], expected, "{lot}");
    }
    assert_ledger_verifies(&app).await;
}

async fn racing_transfers_and_reductions_create_or_lose_no_unit(app: TestApp) {
    let main = main_location(&app).await;
    let store = create_location(&app, "STORE", 1).await;
    let id = id_of(&app.create_product("Tea", "TEA-1", 40, 0).await);
    assert_no_errors(&add_lot(&app, &id, 20, &store, Some(("T-1", Some(&day(40))))).await);

    let work = (0..60).map(|round| {
        let app = &app;
        let (id, main, store) = (&id, &main, &store);
        async move {
            let response = match round % 3 {
                0 => {
                    app.graphql(
                        TRANSFER,
                        json!({ "id": id, "from": main, "to": store, "quantity": 2 }),
                    )
                    .await
                }
                1 => {
                    app.graphql(
                        TRANSFER,
                        json!({ "id": id, "from": store, "to": main, "quantity": 3 }),
                    )
                    .await
                }
                _ => {
                    app.graphql(REDUCE, json!({ "id": id, "quantity": 2 }))
                        .await
                }
            };
            (round % 3, response)
        }
    });
    let outcomes = join_all(work).await;
    let mut reduced = 0;
    for (kind, response) in &outcomes {
        match error_code(response) {
            None if *kind == 2 => reduced += 2,
            None => {}
            Some(code) => assert_eq!(code, "INSUFFICIENT_STOCK", "{response}"),
        }
    }
    let view = stock_view(&app, &id).await;
    assert_eq!(view["stock"], 60 - reduced);
    let by_location: i64 = view["stockByLocation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["stock"].as_i64().unwrap())
        .sum();
    assert_eq!(by_location, 60 - reduced);
    assert_ledger_verifies(&app).await;
}

async fn a_committed_reservation_takes_exactly_the_lot_it_held(app: TestApp) {
    let main = main_location(&app).await;
    let id = id_of(&app.create_product("Cheese", "CHZ-1", 0, 0).await);
    assert_no_errors(&add_lot(&app, &id, 5, &main, Some(("C-1", Some(&day(5))))).await);
    assert_no_errors(&add_lot(&app, &id, 5, &main, Some(("C-2", Some(&day(9))))).await);
    let reserved = app
        .graphql(
            "mutation($id: ID!) { reserveStock(productId: $id, quantity: 3) { id status } }",
            json!({ "id": id }),
        )
        .await;
    assert_no_errors(&reserved);
    let reservation = reserved["data"]["reserveStock"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A lot that expires sooner arrives after the reservation: FEFO would pick it now, but the
    // commit must take what was held.
    assert_no_errors(&add_lot(&app, &id, 5, &main, Some(("C-0", Some(&day(1))))).await);
    assert_eq!(stock_view(&app, &id).await["available"], 12);

    let committed = app
        .graphql(
            "mutation($id: ID!) { commitReservation(id: $id) { status } }",
            json!({ "id": reservation }),
        )
        .await;
    assert_no_errors(&committed);
    let history = app
        .graphql(
            "query($id: ID!) { stockMovements(productId: $id, first: 1) { nodes { kind quantity allocations { lot quantity } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        history["data"]["stockMovements"]["nodes"][0],
        json!({ "kind": "RESERVATION_COMMIT", "quantity": 3, "allocations": [{ "lot": "C-1", "quantity": -3 }] })
    );
    assert_ledger_verifies(&app).await;
}

async fn bad_location_and_lot_input_gets_its_code_and_changes_nothing(app: TestApp) {
    let main = main_location(&app).await;
    let store = create_location(&app, "STORE", 1).await;
    let closed = create_location(&app, "CLOSED", 2).await;
    assert_no_errors(
        &app.graphql(
            "mutation($id: ID!) { archiveLocation(id: $id) { id } }",
            json!({ "id": closed }),
        )
        .await,
    );
    let id = id_of(&app.create_product("Eggs", "EGG-1", 5, 0).await);
    assert_no_errors(&add_lot(&app, &id, 4, &store, Some(("E-1", Some(&day(10))))).await);
    let before = stock_view(&app, &id).await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            ADD,
            json!({ "id": id, "quantity": 1, "location": unknown }),
            "BAD_USER_INPUT",
        ),
        (
            ADD,
            json!({ "id": id, "quantity": 1, "location": closed }),
            "BAD_USER_INPUT",
        ),
        (
            ADD,
            json!({ "id": id, "quantity": 1, "location": "not-a-uuid" }),
            "BAD_USER_INPUT",
        ),
        (
            ADD,
            json!({ "id": id, "quantity": 1, "location": main, "lot": { "code": "E-1", "expiresOn": day(11) } }),
            "BAD_USER_INPUT",
        ),
        (
            ADD,
            json!({ "id": id, "quantity": 1, "location": main, "lot": { "code": "E-1" } }),
            "BAD_USER_INPUT",
        ),
        (
            ADD,
            json!({ "id": id, "quantity": 1, "lot": { "code": " " } }),
            "BAD_USER_INPUT",
        ),
        (
            ADD,
            json!({ "id": id, "quantity": 0, "location": store }),
            "BAD_USER_INPUT",
        ),
        (
            REDUCE,
            json!({ "id": id, "quantity": -1 }),
            "BAD_USER_INPUT",
        ),
        (
            REDUCE,
            json!({ "id": id, "quantity": 1, "location": unknown }),
            "BAD_USER_INPUT",
        ),
        (
            REDUCE,
            json!({ "id": id, "quantity": 1, "location": closed }),
            "BAD_USER_INPUT",
        ),
        (
            REDUCE,
            json!({ "id": id, "quantity": 6, "location": main }),
            "INSUFFICIENT_STOCK",
        ),
        (
            TRANSFER,
            json!({ "id": id, "from": main, "to": main, "quantity": 1 }),
            "BAD_USER_INPUT",
        ),
        (
            TRANSFER,
            json!({ "id": id, "from": main, "to": closed, "quantity": 1 }),
            "BAD_USER_INPUT",
        ),
        (
            TRANSFER,
            json!({ "id": id, "from": unknown, "to": main, "quantity": 1 }),
            "BAD_USER_INPUT",
        ),
        (
            TRANSFER,
            json!({ "id": id, "from": main, "to": store, "quantity": 0 }),
            "BAD_USER_INPUT",
        ),
        (
            TRANSFER,
            json!({ "id": id, "from": main, "to": store, "quantity": 6 }),
            "INSUFFICIENT_STOCK",
        ),
        (
            TRANSFER,
            json!({ "id": id, "from": store, "to": main, "quantity": 1, "lot": "NOPE" }),
            "INSUFFICIENT_STOCK",
        ),
        (
            WRITE_OFF,
            json!({ "id": id, "location": store, "lot": "E-1", "quantity": 5, "reason": "dropped" }),
            "INSUFFICIENT_STOCK",
        ),
        (
            WRITE_OFF,
            json!({ "id": id, "location": store, "lot": "E-1", "quantity": -2, "reason": "dropped" }),
            "BAD_USER_INPUT",
        ),
        (
            WRITE_OFF,
            json!({ "id": id, "location": store, "lot": "E-1", "quantity": 1, "reason": "  " }),
            "BAD_USER_INPUT",
        ),
        (
            WRITE_OFF,
            json!({ "id": id, "location": store, "lot": "NOPE", "quantity": 1, "reason": "x" }),
            "BAD_USER_INPUT",
        ),
        (
            WRITE_OFF,
            json!({ "id": id, "location": unknown, "quantity": 1, "reason": "x" }),
            "BAD_USER_INPUT",
        ),
    ];
    for (mutation, variables, code) in cases {
        let response = app.graphql(mutation, variables.clone()).await;
        assert_eq!(error_code(&response), Some(code), "{variables}: {response}");
    }
    assert_eq!(stock_view(&app, &id).await, before);
    assert_ledger_verifies(&app).await;
}

async fn the_rest_stock_view_shows_each_location_and_its_lots(app: TestApp) {
    let store = create_location(&app, "STORE", 1).await;
    let id = id_of(&app.create_product("Jam", "JAM-1", 3, 0).await);
    assert_no_errors(&add_lot(&app, &id, 2, &store, Some(("J-1", Some("2031-01-31")))).await);

    let response = app
        .rest(reqwest::Method::GET, &format!("/products/{id}/stock"), None)
        .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    let body = &response.body;
    assert_eq!(
        (body["stock"].clone(), body["available"].clone()),
        (json!(5), json!(5))
    );
    let locations = body["locations"].as_array().unwrap();
    assert_eq!(locations.len(), 2);
    assert_eq!(locations[0]["code"], "MAIN");
    assert_eq!(locations[0]["stock"], 3);
    assert_eq!(locations[1]["code"], "STORE");
    assert_eq!(
        locations[1]["lots"],
        json!([{ "id": locations[1]["lots"][0]["id"], "code": "J-1", "expiresOn": "2031-01-31", "stock": 2, "expired": false }])
    );
    let missing = app
        .rest(
            reqwest::Method::GET,
            &format!("/products/{}/stock", uuid::Uuid::now_v7()),
            None,
        )
        .await;
    assert_rest_error(&missing, 404, "NOT_FOUND");
}

async fn movements_can_be_listed_by_location_and_lot(app: TestApp) {
    let main = main_location(&app).await;
    let store = create_location(&app, "STORE", 1).await;
    let id = id_of(&app.create_product("Oil", "OIL-1", 1, 0).await);
    assert_no_errors(&add_lot(&app, &id, 2, &store, Some(("O-1", None))).await);
    assert_no_errors(&add_lot(&app, &id, 2, &store, Some(("O-2", None))).await);
    const LIST: &str = "query($location: ID, $lot: String) {
        stockMovements(locationId: $location, lotCode: $lot, first: 10) { totalCount nodes { kind quantity } } }";

    let at_store = app.graphql(LIST, json!({ "location": store })).await;
    assert_eq!(
        at_store["data"]["stockMovements"]["totalCount"], 2,
        "{at_store}"
    );
    let at_main = app.graphql(LIST, json!({ "location": main })).await;
    assert_eq!(
        at_main["data"]["stockMovements"]["nodes"],
        json!([{ "kind": "INITIAL", "quantity": 1 }])
    );
    let of_lot = app.graphql(LIST, json!({ "lot": "O-2" })).await;
    assert_eq!(of_lot["data"]["stockMovements"]["totalCount"], 1);
}

async fn a_lot_past_its_date_is_never_available_fires_lot_expired_once_and_can_be_written_off(
    app: TestApp,
) {
    let today: NaiveDate = "2030-03-10".parse().unwrap();
    app.services().clock().set_today(Some(today));
    let main = main_location(&app).await;
    let id = id_of(&app.create_product("Salad", "SAL-1", 0, 4).await);
    assert_no_errors(&add_lot(&app, &id, 6, &main, Some(("S-1", Some("2030-03-10")))).await);
    assert_no_errors(&add_lot(&app, &id, 5, &main, Some(("S-2", Some("2030-03-20")))).await);
    // Good through its date: still available today.
    assert_eq!(stock_view(&app, &id).await["available"], 11);
    settle_events(&app).await;
    let mut client = WsClient::connect(&app, Protocol::TransportWs).await;
    client
        .subscribe(
            "lots",
            "subscription($ids: [ID!]) { lotExpired(productIds: $ids) { code expiresOn stock expired product { sku expired available } location { code } } }",
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

    // The next day the background check notices, once.
    app.services()
        .clock()
        .set_today(Some(today + chrono::Duration::days(1)));
    let expired = client.next_data("lotExpired").await;
    assert_eq!(
        expired,
        json!({ "code": "S-1", "expiresOn": "2030-03-10", "stock": 6, "expired": true,
                "product": { "sku": "SAL-1", "expired": 6, "available": 5 }, "location": { "code": "MAIN" } })
    );
    // Available 5 <= reorder level 4? No: 5 > 4, so no lowStock yet.
    tokio::time::sleep(Duration::from_millis(400)).await;

    let view = stock_view(&app, &id).await;
    assert_eq!(
        (
            view["stock"].clone(),
            view["available"].clone(),
            view["expired"].clone()
        ),
        (json!(11), json!(5), json!(6))
    );
    assert_error(
        &app.graphql(REDUCE, json!({ "id": id, "quantity": 6 }))
            .await,
        "INSUFFICIENT_STOCK",
    );
    let taken = app
        .graphql(REDUCE, json!({ "id": id, "quantity": 1 }))
        .await;
    assert_no_errors(&taken);
    assert_eq!(
        taken["data"]["reduceStock"]["movement"]["allocations"][0]["lot"],
        "S-2"
    );
    let low = client.next_data("lowStock").await;
    assert_eq!(low, json!({ "stock": 10, "crossedThreshold": true }));

    let written_off = app
        .graphql(
            WRITE_OFF,
            json!({ "id": id, "location": main, "lot": "S-1", "quantity": 6, "reason": "expired" }),
        )
        .await;
    assert_no_errors(&written_off);
    assert_eq!(
        written_off["data"]["writeOffStock"]["movement"],
        json!({ "kind": "WRITE_OFF", "quantity": 6, "reason": "expired", "allocations": [{ "lot": "S-1", "quantity": -6 }] })
    );
    let view = stock_view(&app, &id).await;
    assert_eq!(
        (
            view["stock"].clone(),
            view["available"].clone(),
            view["expired"].clone()
        ),
        (json!(4), json!(4), json!(0))
    );
    // Once per lot: no second lotExpired, only the lowStock of the write-off.
    let next = client.next_data("lowStock").await;
    assert_eq!(next["stock"], 4);
    assert!(client.next(Duration::from_millis(400)).await.is_none());
    assert_ledger_verifies(&app).await;
}

/// Client caches key objects by `id`: a product's per-location entries and a movement's
/// allocations have ids that are distinct from each other and from every other product's, and
/// the same on every read (and, for a location entry, across changes of its stock).
async fn per_location_stock_and_allocations_have_stable_distinct_ids(app: TestApp) {
    const IDS: &str = "query($id: ID!) { product(id: $id) {
        stockByLocation { id location { code } stock }
        movements(first: 10) { edges { node { allocations { id lot } } } } } }";
    let main = main_location(&app).await;
    let store = create_location(&app, "STORE", 1).await;
    let first = id_of(&app.create_product("Tea", "TEA-1", 0, 0).await);
    let second = id_of(&app.create_product("Coffee", "COF-1", 0, 0).await);
    for id in [&first, &second] {
        for (location, lot) in [(&main, "L-A"), (&main, "L-B"), (&store, "L-A")] {
            let added = add_lot(&app, id, 2, location, Some((lot, None))).await;
            assert_no_errors(&added);
        }
    }
    // One reduction over two lots in MAIN: one movement with two allocations.
    let taken = app
        .graphql(
            REDUCE,
            json!({ "id": first, "quantity": 3, "location": main }),
        )
        .await;
    assert_no_errors(&taken);

    let read = |id: String| {
        let app = &app;
        async move {
            let response = app.graphql(IDS, json!({ "id": id })).await;
            assert_no_errors(&response);
            response["data"]["product"].clone()
        }
    };
    let ids_of = |product: &Value| -> (Vec<String>, Vec<String>) {
        let locations = product["stockByLocation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["id"].as_str().unwrap().to_owned())
            .collect();
        let allocations = product["movements"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|edge| edge["node"]["allocations"].as_array().unwrap().clone())
            .map(|allocation| allocation["id"].as_str().unwrap().to_owned())
            .collect();
        (locations, allocations)
    };
    let (first_locations, first_allocations) = ids_of(&read(first.clone()).await);
    let (second_locations, second_allocations) = ids_of(&read(second.clone()).await);
    assert_eq!(first_locations.len(), 2);
    assert_eq!(
        first_allocations.len(),
        6,
        "the initial stock, three additions and a reduction over two lots"
    );
    let mut every: Vec<&String> = first_locations
        .iter()
        .chain(&first_allocations)
        .chain(&second_locations)
        .chain(&second_allocations)
        .chain([&first, &second, &main, &store])
        .collect();
    let count = every.len();
    every.sort();
    every.dedup();
    assert_eq!(every.len(), count, "ids are distinct: {every:?}");

    // Another change of stock in MAIN: the entry keeps its id, the earlier allocations theirs.
    let added = add_lot(&app, &first, 1, &main, Some(("L-A", None))).await;
    assert_no_errors(&added);
    let (again_locations, again_allocations) = ids_of(&read(first.clone()).await);
    assert_eq!(again_locations, first_locations);
    assert!(
        first_allocations
            .iter()
            .all(|id| again_allocations.contains(id)),
        "{first_allocations:?} then {again_allocations:?}"
    );
}
