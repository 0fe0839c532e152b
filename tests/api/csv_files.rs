//! CSV import and export: `POST /imports/inventory`, `GET /exports/inventory.csv`,
//! `GET /exports/movements.csv`.

use serde_json::{Value, json};
use stockroom::domain::Role;

use crate::helpers::{TestApp, assert_no_errors, id_of, token};

on_both_backends!(
    an_import_creates_updates_and_counts_and_its_csv_report_names_each_row,
    a_broken_file_is_refused_naming_line_and_column_and_changes_nothing,
    bad_rows_fail_alone_under_reject_failed_rows_and_fail_the_file_under_reject_everything,
    a_dry_run_import_answers_what_the_import_answers_and_writes_nothing,
    an_exported_inventory_imported_again_changes_nothing,
    the_movements_export_lists_each_allocation_within_the_range,
    an_import_racing_reductions_and_a_sync_loses_no_unit,
);

on_both_backends!(with_args ["--max-import-bytes", "2000", "--max-import-rows", "6", "--max-sync-rows", "3"] =>
    files_past_the_size_and_row_limits_are_refused_and_change_nothing,
);

on_both_backends!(secured:
    viewers_export_and_managers_import,
);

/// A reply: status, content type and body text.
struct Reply {
    status: u16,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("JSON: {}", self.text))
    }
}

async fn upload(app: &TestApp, query: &str, csv: &[u8], accept: &str) -> Reply {
    let mut request = app
        .client
        .post(format!("{}/imports/inventory{query}", app.address))
        .header("content-type", "text/csv")
        .header("accept", accept)
        .body(csv.to_vec());
    if let Some(token) = &app.token {
        request = request.bearer_auth(token);
    }
    reply(request.send().await.expect("the upload is sent")).await
}

async fn import(app: &TestApp, query: &str, csv: &str) -> Value {
    let reply = upload(app, query, csv.as_bytes(), "application/json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

async fn download(app: &TestApp, path: &str) -> Reply {
    let mut request = app.client.get(format!("{}{path}", app.address));
    if let Some(token) = &app.token {
        request = request.bearer_auth(token);
    }
    reply(request.send().await.expect("the request is sent")).await
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("a body");
    Reply {
        status,
        content_type,
        text,
    }
}

const STATE: &str = "query($sku: String!) { productBySku(sku: $sku) {
    id name reorderLevel stock reserved version
    stockByLocation { location { code } stock }
    lots(includeEmpty: true) { code expiresOn stock location { code } } } }";

async fn by_sku(app: &TestApp, sku: &str) -> Value {
    let response = app.graphql(STATE, json!({ "sku": sku })).await;
    assert_no_errors(&response);
    response["data"]["productBySku"].clone()
}

async fn create_location(app: &TestApp, code: &str) {
    let response = app
        .graphql(
            "mutation($code: String!) { createLocation(input: { code: $code, name: $code }) { id } }",
            json!({ "code": code }),
        )
        .await;
    assert_no_errors(&response);
}

/// Everything a test's products are, to compare before and after.
async fn snapshot(app: &TestApp, skus: &[&str]) -> Vec<Value> {
    let mut all = Vec::new();
    for sku in skus {
        let product = by_sku(app, sku).await;
        let movements = match product["id"].as_str() {
            Some(id) => app.movements(id).await.len(),
            None => 0,
        };
        all.push(json!({ "product": product, "movements": movements }));
    }
    all
}

async fn an_import_creates_updates_and_counts_and_its_csv_report_names_each_row(app: TestApp) {
    app.create_product("Old name", "KEEP-1", 5, 1).await;
    create_location(&app, "WH-2").await;
    // A spreadsheet's export: a byte-order mark, CRLF line ends, other names for the columns,
    // quoted fields with commas, quotes and a line break, and a blank last line.
    let file = "\u{feff}SKU,Product Name,Reorder Point,Warehouse,Qty,Batch,Expiry\r\n\
        KEEP-1,\"Bolt, M8 \"\"zinc\"\"\",3,,12,,\r\n\
        new-1,\"Milk, semi-skimmed\",,WH-2,40,L-7,2031-01-31\r\n\
        new-1,,,,2,,\r\n\
        KEEP-1,,,,,,\r\n\
        BAD-1,\"two\r\nlines\",,,1,,\r\n\
        \r\n";
    let reply = upload(
        &app,
        "?errorPolicy=REJECT_FAILED_ROWS",
        file.as_bytes(),
        "text/csv",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply.content_type.starts_with("text/csv"),
        "{}",
        reply.content_type
    );
    let mut report = csv::Reader::from_reader(reply.text.as_bytes());
    assert_eq!(
        report.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "SKU",
            "Product Name",
            "Reorder Point",
            "Warehouse",
            "Qty",
            "Batch",
            "Expiry",
            "status",
            "error_code",
            "error"
        ]
    );
    let rows: Vec<Vec<String>> = report
        .records()
        .map(|record| record.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(rows[0][1], "Bolt, M8 \"zinc\"");
    let statuses: Vec<&str> = rows.iter().map(|row| row[7].as_str()).collect();
    assert_eq!(
        statuses,
        ["UPDATED", "CREATED", "UPDATED", "UNCHANGED", "FAILED"]
    );
    // The failed row, as written (its line break kept), with its code and why.
    assert_eq!(rows[4][1], "two\r\nlines");
    assert_eq!(rows[4][8], "BAD_USER_INPUT");
    assert_eq!(
        rows[4][9],
        "line 6, column 2 (name): name must not contain control characters"
    );

    let kept = by_sku(&app, "KEEP-1").await;
    assert_eq!(kept["name"], "Bolt, M8 \"zinc\"");
    assert_eq!(kept["reorderLevel"], 3);
    assert_eq!(kept["stock"], 12);
    let created = by_sku(&app, "NEW-1").await;
    assert_eq!(created["name"], "Milk, semi-skimmed");
    assert_eq!(created["stock"], 42);
    assert_eq!(
        created["lots"],
        json!([{ "code": "L-7", "expiresOn": "2031-01-31", "stock": 40, "location": { "code": "WH-2" } }])
    );
    let kinds: Vec<Value> = app
        .movements(id_of(&created).as_str())
        .await
        .iter()
        .rev()
        .map(|m| json!([m["kind"], m["delta"], m["reason"]]))
        .collect();
    assert_eq!(
        kinds,
        [
            json!(["INITIAL", 0, null]),
            json!(["ADJUSTMENT", 40, "csv-import"]),
            json!(["ADJUSTMENT", 2, "csv-import"]),
        ]
    );

    // The JSON answer: counts, and the failed rows (none).
    let again = import(
        &app,
        "?source=nightly",
        "sku,on_hand\nKEEP-1,12\nKEEP-1,13\n",
    )
    .await;
    assert_eq!(
        again,
        json!({ "summary": { "rows": 2, "created": 0, "updated": 1, "unchanged": 1, "failed": 0,
                              "committed": true, "dryRun": false, "transactions": 1 },
                "rows": [] })
    );
    let last = app.movements(id_of(&kept).as_str()).await;
    assert_eq!(last[0]["reason"], "nightly");
}

async fn a_broken_file_is_refused_naming_line_and_column_and_changes_nothing(app: TestApp) {
    app.create_product("Kept", "KEEP-1", 5, 1).await;
    let before = snapshot(&app, &["KEEP-1"]).await;
    let cases: [(&[u8], &str); 7] = [
        (b"", "line 1"),
        (
            b"sku,on_hand,colour\nKEEP-1,1,red\n",
            "line 1, column 3: unknown column 'colour'",
        ),
        (b"name,on_hand\nX,1\n", "no sku column"),
        (
            b"sku,qty,on_hand\nKEEP-1,1,2\n",
            "column 3: column 'on_hand' appears twice",
        ),
        (
            b"sku,on_hand\nKEEP-1,1\nKEEP-1,\"2\nKEEP-1,3\n",
            "line 3: a quoted field is not closed",
        ),
        (
            b"sku,name,on_hand\nKEEP-1,ok,1\nKEEP-1,\xff\xfe,2\n",
            "line 3, column 2: the text is not UTF-8",
        ),
        (b"sku,on_hand\nKEEP-1,1\n", ""),
    ];
    for (file, expected) in cases {
        let reply = upload(
            &app,
            "?errorPolicy=REJECT_FAILED_ROWS",
            file,
            "application/json",
        )
        .await;
        if expected.is_empty() {
            // The last one is fine: the refusals before it changed nothing.
            assert_eq!(reply.status, 200, "{}", reply.text);
            continue;
        }
        assert_eq!(reply.status, 400, "{}", reply.text);
        let body = reply.json();
        assert_eq!(body["code"], "BAD_USER_INPUT");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{message:?} should say {expected:?}"
        );
        assert_eq!(snapshot(&app, &["KEEP-1"]).await, before);
    }
    // A quote inside an unquoted field is a character like any other, not a broken file.
    let inch = import(&app, "", "sku,name\nKEEP-1,Pipe 5\" steel\n").await;
    assert_eq!(inch["summary"]["updated"], 1, "{inch}");
    assert_eq!(by_sku(&app, "KEEP-1").await["name"], "Pipe 5\" steel");
    // Old spreadsheets end lines with a lone CR: lines are still counted right, and each row
    // of the report keeps its own outcome.
    let cr = "sku,on_hand\rKEEP-1,abc\rNOPE-1,3\rKEEP-1,2\r";
    let reply = upload(
        &app,
        "?errorPolicy=REJECT_FAILED_ROWS",
        cr.as_bytes(),
        "application/json",
    )
    .await;
    let lines: Vec<(u64, &str)> = reply.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["line"].as_u64().unwrap(),
                row["code"].as_str().unwrap().to_owned().leak() as &str,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [(2, "BAD_USER_INPUT"), (3, "NOT_FOUND")],
        "{}",
        reply.text
    );
    let report = upload(
        &app,
        "?errorPolicy=REJECT_FAILED_ROWS",
        cr.as_bytes(),
        "text/csv",
    )
    .await;
    assert_eq!(report.status, 200);
    let codes: Vec<String> = csv::Reader::from_reader(report.text.as_bytes())
        .records()
        .map(|record| record.unwrap()[3].to_owned())
        .collect();
    assert_eq!(codes, ["BAD_USER_INPUT", "NOT_FOUND", ""]);
    // Dates outside years 1 to 9999 fail their row, as everywhere else.
    let dated = import(
        &app,
        "?errorPolicy=REJECT_FAILED_ROWS",
        "sku,on_hand,lot,expires_on\nKEEP-1,1,L0,0000-01-01\nKEEP-1,1,L9,+999-01-01\n",
    )
    .await;
    assert_eq!(dated["summary"]["failed"], 2, "{dated:#}");
    // Not CSV at all.
    let json_body = app
        .client
        .post(format!("{}/imports/inventory", app.address))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
}

/// A file whose rows each fail for one reason, between good ones.
const MIXED: &str = "sku,name,reorder_level,location,on_hand,lot,expires_on
GOOD-1,,,,10,,
GOOD-1,,,,abc,,
GOOD-1,,,,-4,,
GOOD-1,,,NOWHERE,1,,
GOOD-1,,,,1
NO-SUCH,,,,1,,
GOOD-1,,,,2,,
GOOD-1,,x1,,,,
GOOD-1,,,,1,L-1,2031-02-30
GOOD-1,,,,1,,2031-01-01
NEW-9,Nine,2,,5,,
NEW-9,,,,7,,
";

async fn bad_rows_fail_alone_under_reject_failed_rows_and_fail_the_file_under_reject_everything(
    app: TestApp,
) {
    let id = id_of(&app.create_product("Good", "GOOD-1", 10, 0).await);
    let reserved = app
        .graphql(
            "mutation($id: ID!) { reserveStock(productId: $id, quantity: 4, ttlSeconds: 3600) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_no_errors(&reserved);
    let before = snapshot(&app, &["GOOD-1", "NEW-9"]).await;

    let everything = import(&app, "", MIXED).await;
    assert_eq!(everything["summary"]["committed"], false);
    assert_eq!(snapshot(&app, &["GOOD-1", "NEW-9"]).await, before);

    let failed_rows = import(&app, "?errorPolicy=REJECT_FAILED_ROWS", MIXED).await;
    let failures: Vec<(u64, &str, &str)> = failed_rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["line"].as_u64().unwrap(),
                row["code"].as_str().unwrap(),
                row["error"].as_str().unwrap(),
            )
        })
        .collect();
    let expected: [(u64, &str, &str); 8] = [
        (
            3,
            "BAD_USER_INPUT",
            "line 3, column 5 (on_hand): 'abc' is not a whole number",
        ),
        (
            4,
            "BAD_USER_INPUT",
            "line 4, column 5 (on_hand): -4 is outside 0 to",
        ),
        (
            5,
            "BAD_USER_INPUT",
            "line 5, column 4 (location): no location has the code 'NOWHERE'",
        ),
        (
            6,
            "BAD_USER_INPUT",
            "line 6: the row has 5 fields, the header has 7",
        ),
        (
            7,
            "NOT_FOUND",
            "line 7: no product has the SKU 'NO-SUCH'; give a name to create it",
        ),
        (
            8,
            "INSUFFICIENT_STOCK",
            "line 8, column 5 (on_hand): Not enough stock available",
        ),
        (
            9,
            "BAD_USER_INPUT",
            "line 9, column 3 (reorder_level): 'x1' is not a whole number",
        ),
        (
            10,
            "BAD_USER_INPUT",
            "line 10, column 7 (expires_on): '2031-02-30' is not a date",
        ),
    ];
    assert_eq!(failures.len(), expected.len() + 1, "{failed_rows:#}");
    for ((line, code, error), (want_line, want_code, want_error)) in failures.iter().zip(expected) {
        assert_eq!((*line, *code), (want_line, want_code), "{error}");
        assert!(
            error.starts_with(want_error),
            "{error:?} should start {want_error:?}"
        );
    }
    assert_eq!(failures[8].0, 11, "an expiry date without a lot");
    assert_eq!(
        failed_rows["summary"],
        json!({ "rows": 12, "created": 1, "updated": 1, "unchanged": 1, "failed": 9,
                "committed": true, "dryRun": false, "transactions": 1 })
    );
    // Reservations survive: the count of 2 below the 4 reserved failed.
    let good = by_sku(&app, "GOOD-1").await;
    assert_eq!(good["stock"], 10);
    assert_eq!(good["reserved"], 4);
    let new = by_sku(&app, "NEW-9").await;
    assert_eq!(
        new["stock"], 7,
        "duplicate rows apply in order: the last count wins"
    );
    assert_eq!(new["name"], "Nine");
    assert_eq!(new["reorderLevel"], 2);
}

async fn a_dry_run_import_answers_what_the_import_answers_and_writes_nothing(app: TestApp) {
    app.create_product("Good", "GOOD-1", 10, 0).await;
    let before = snapshot(&app, &["GOOD-1", "NEW-9"]).await;
    let dry = import(&app, "?dryRun=true&errorPolicy=REJECT_FAILED_ROWS", MIXED).await;
    assert_eq!(dry["summary"]["dryRun"], true);
    assert_eq!(snapshot(&app, &["GOOD-1", "NEW-9"]).await, before);
    let real = import(&app, "?errorPolicy=REJECT_FAILED_ROWS", MIXED).await;
    let mut expected = dry.clone();
    expected["summary"]["dryRun"] = json!(false);
    assert_eq!(real, expected);
    assert_ne!(snapshot(&app, &["GOOD-1", "NEW-9"]).await, before);
}

async fn an_exported_inventory_imported_again_changes_nothing(app: TestApp) {
    create_location(&app, "WH-2").await;
    let first = id_of(&app.create_product("Bolt, \"zinc\"", "EXP-1", 9, 2).await);
    app.create_product("Milk, fresh", "EXP-2", 0, 0).await;
    let received = app
        .graphql(
            "mutation($id: ID!) { syncStock(input: { source: \"setup\", rows: [
                { sku: \"EXP-2\", locationCode: \"WH-2\", onHand: 6, lot: { code: \"L1\", expiresOn: \"2031-03-01\" } },
                { sku: \"EXP-2\", onHand: 3, lot: { code: \"L2\" } } ] }) { failed }
              reserveStock(productId: $id, quantity: 2, ttlSeconds: 3600) { id } }",
            json!({ "id": first }),
        )
        .await;
    assert_no_errors(&received);
    let before = snapshot(&app, &["EXP-1", "EXP-2"]).await;

    let export = download(&app, "/exports/inventory.csv").await;
    assert_eq!(export.status, 200);
    assert!(export.content_type.starts_with("text/csv"));
    let mut lines = csv::Reader::from_reader(export.text.as_bytes());
    assert_eq!(
        lines.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "sku",
            "name",
            "reorder_level",
            "location",
            "on_hand",
            "lot",
            "expires_on"
        ]
    );
    let records: Vec<Vec<String>> = lines
        .records()
        .map(|record| record.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        records,
        [
            vec!["EXP-1", "Bolt, \"zinc\"", "2", "MAIN", "9", "", ""],
            vec!["EXP-2", "Milk, fresh", "0", "MAIN", "0", "", ""],
            vec!["EXP-2", "Milk, fresh", "0", "WH-2", "6", "L1", "2031-03-01"],
            vec!["EXP-2", "Milk, fresh", "0", "MAIN", "3", "L2", ""],
        ]
    );

    let again = import(&app, "", &export.text).await;
    assert_eq!(again["summary"]["unchanged"], 4, "{again:#}");
    assert_eq!(again["summary"]["failed"], 0);
    assert_eq!(snapshot(&app, &["EXP-1", "EXP-2"]).await, before);
}

async fn the_movements_export_lists_each_allocation_within_the_range(app: TestApp) {
    create_location(&app, "WH-2").await;
    let start = chrono::Utc::now();
    let id = id_of(&app.create_product("Led", "MOV-1", 10, 0).await);
    let location = app
        .graphql("{ locationByCode(code: \"WH-2\") { id } }", json!({}))
        .await["data"]["locationByCode"]["id"]
        .clone();
    let main = app
        .graphql("{ locationByCode(code: \"MAIN\") { id } }", json!({}))
        .await["data"]["locationByCode"]["id"]
        .clone();
    let moved = app
        .graphql(
            "mutation($id: ID!, $from: ID!, $to: ID!) { transferStock(productId: $id, fromLocationId: $from, toLocationId: $to, quantity: 4, reason: \"rebalance, north\") { newStock } }",
            json!({ "id": id, "from": main, "to": location }),
        )
        .await;
    assert_no_errors(&moved);

    let export = download(
        &app,
        &format!(
            "/exports/movements.csv?from={}",
            start.format("%Y-%m-%dT%H:%M:%S%.6fZ")
        ),
    )
    .await;
    assert_eq!(export.status, 200, "{}", export.text);
    let mut lines = csv::Reader::from_reader(export.text.as_bytes());
    let headers: Vec<String> = lines.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(headers[0], "movement_id");
    let column = |name: &str| headers.iter().position(|header| header == name).unwrap();
    let records: Vec<csv::StringRecord> = lines.records().map(Result::unwrap).collect();
    let mine: Vec<(String, String, String, String)> = records
        .iter()
        .filter(|record| &record[column("sku")] == "MOV-1")
        .map(|record| {
            (
                record[column("kind")].to_owned(),
                record[column("location")].to_owned(),
                record[column("quantity")].to_owned(),
                record[column("reason")].to_owned(),
            )
        })
        .collect();
    let mut mine = mine;
    mine.sort();
    let mut expected = expected_movements();
    expected.sort();
    assert_eq!(mine, expected);

    // Nothing before the start; a bad bound is a 400.
    let empty = download(&app, "/exports/movements.csv?to=2000-01-01").await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.text.lines().count(), 1, "the header only");
    let bad = download(&app, "/exports/movements.csv?from=yesterday").await;
    assert_eq!(bad.status, 400);
}

fn expected_movements() -> Vec<(String, String, String, String)> {
    vec![
        ("INITIAL".into(), "MAIN".into(), "10".into(), String::new()),
        (
            "TRANSFER".into(),
            "MAIN".into(),
            "-4".into(),
            "rebalance, north".into(),
        ),
        (
            "TRANSFER".into(),
            "WH-2".into(),
            "4".into(),
            "rebalance, north".into(),
        ),
    ]
}

async fn files_past_the_size_and_row_limits_are_refused_and_change_nothing(app: TestApp) {
    app.create_product("Kept", "KEEP-1", 5, 1).await;
    let before = snapshot(&app, &["KEEP-1"]).await;
    let mut big = String::from("sku,on_hand\n");
    while big.len() <= 2000 {
        big.push_str("KEEP-1,1\n");
    }
    let reply = upload(
        &app,
        "?errorPolicy=REJECT_FAILED_ROWS",
        big.as_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(reply.json()["error"], true);
    // Without a length up front (a streamed upload), the limit still holds.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .as_bytes()
        .chunks(100)
        .map(|chunk| Ok(chunk.to_vec()))
        .collect();
    let streamed = app
        .client
        .post(format!(
            "{}/imports/inventory?errorPolicy=REJECT_FAILED_ROWS",
            app.address
        ))
        .header("content-type", "text/csv")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
    assert_eq!(snapshot(&app, &["KEEP-1"]).await, before);

    let seven =
        "sku,on_hand\nKEEP-1,1\nKEEP-1,2\nKEEP-1,3\nKEEP-1,4\nKEEP-1,5\nKEEP-1,6\nKEEP-1,7\n";
    let reply = upload(
        &app,
        "?errorPolicy=REJECT_FAILED_ROWS",
        seven.as_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("at most 6 rows (the file has 7)")
    );
    // One transaction (REJECT_EVERYTHING, or a dry run) takes at most --max-sync-rows.
    let four = "sku,on_hand\nKEEP-1,1\nKEEP-1,2\nKEEP-1,3\nKEEP-1,4\n";
    for query in ["", "?dryRun=true&errorPolicy=REJECT_FAILED_ROWS"] {
        let reply = upload(&app, query, four.as_bytes(), "application/json").await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("one transaction and takes at most 3 rows"),
            "{message}"
        );
    }
    assert_eq!(snapshot(&app, &["KEEP-1"]).await, before);
    let ok = import(&app, "?errorPolicy=REJECT_FAILED_ROWS", four).await;
    assert_eq!(ok["summary"]["updated"], 4);
    assert_eq!(by_sku(&app, "KEEP-1").await["stock"], 4);
}

async fn viewers_export_and_managers_import(app: TestApp) {
    let admin = app.with_token(Some(token(Role::Admin, "admin")));
    admin.create_product("Kept", "KEEP-1", 5, 1).await;
    for (role, export_status, import_status) in [
        (None, 401, 401),
        (Some(Role::Viewer), 200, 403),
        (Some(Role::Manager), 200, 200),
        (Some(Role::Admin), 200, 200),
    ] {
        let caller = app.with_token(role.map(|role| token(role, "someone")));
        for path in ["/exports/inventory.csv", "/exports/movements.csv"] {
            assert_eq!(
                download(&caller, path).await.status,
                export_status,
                "{role:?} {path}"
            );
        }
        let reply = upload(&caller, "", b"sku,on_hand\nKEEP-1,5\n", "application/json").await;
        assert_eq!(reply.status, import_status, "{role:?}: {}", reply.text);
    }
}

async fn an_import_racing_reductions_and_a_sync_loses_no_unit(app: TestApp) {
    const PRODUCTS: usize = 300;
    let skus: Vec<String> = (0..PRODUCTS).map(|n| format!("RACE-{n:03}")).collect();
    let mut ids = Vec::with_capacity(PRODUCTS);
    for chunk in skus.chunks(50) {
        let created = futures::future::join_all(
            chunk
                .iter()
                .map(|sku| app.create_product("Racer", sku, 100, 0)),
        )
        .await;
        ids.extend(created.iter().map(id_of));
    }
    let mut file = String::from("sku,on_hand\n");
    for sku in &skus {
        file.push_str(&format!("{sku},50\n"));
    }
    let sales: Vec<Value> = skus
        .iter()
        .rev()
        .map(|sku| json!({ "sku": sku, "delta": -1 }))
        .collect();
    let sync = app.graphql(
        "mutation($input: SyncStockInput!) { syncStock(input: $input) { committed applied } }",
        json!({ "input": { "source": "sales", "rows": sales } }),
    );
    let reductions =
        futures::future::join_all(ids.iter().step_by(3).map(|id| app.reduce_stock(id, 2)));
    let (imported, synced, reductions) = tokio::join!(
        import(&app, "?errorPolicy=REJECT_FAILED_ROWS", &file),
        sync,
        reductions
    );
    assert_eq!(imported["summary"]["updated"], PRODUCTS, "{imported:#}");
    assert_no_errors(&synced);
    assert_eq!(synced["data"]["syncStock"]["applied"], PRODUCTS);
    for response in &reductions {
        assert_no_errors(response);
    }
    // Each product ends at its count (50) less whatever came after it: the sale (1) and, for
    // every third product, the reduction (2).
    for (index, id) in ids.iter().enumerate().step_by(7) {
        let stock = app.product(id).await["stock"].as_i64().unwrap();
        let possible: &[i64] = if index % 3 == 0 {
            &[50, 49, 48, 47]
        } else {
            &[50, 49]
        };
        assert!(possible.contains(&stock), "{}: {stock}", skus[index]);
    }
    let verified = app.graphql("{ verifyLedger { ok } }", json!({})).await;
    assert_eq!(verified["data"]["verifyLedger"]["ok"], true, "{verified:#}");
}
