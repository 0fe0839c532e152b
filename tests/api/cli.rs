//! `stockroom import` and `stockroom export`: the real binary against a real server.

use serde_json::json;

use crate::helpers::{TestApp, assert_no_errors};

on_both_backends!(
    import_uploads_a_file_prints_the_summary_and_exits_by_the_outcome,
    export_downloads_the_inventory_and_the_ledger,
);

/// Runs the binary with `arguments`; its exit code and standard output.
async fn stockroom(arguments: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_stockroom"))
        .args(arguments)
        .env_remove("DATABASE_URL")
        .output()
        .await
        .expect("the binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn stock_of(app: &TestApp, sku: &str) -> serde_json::Value {
    let response = app
        .graphql(
            "query($sku: String!) { productBySku(sku: $sku) { name stock } }",
            json!({ "sku": sku }),
        )
        .await;
    assert_no_errors(&response);
    response["data"]["productBySku"].clone()
}

async fn import_uploads_a_file_prints_the_summary_and_exits_by_the_outcome(app: TestApp) {
    app.create_product("Kept", "KEEP-1", 5, 1).await;
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("stock.csv");
    std::fs::write(
        &file,
        "sku,name,on_hand\nKEEP-1,,9\nNEW-1,New one,4\nMISSING,,1\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();

    // A dry run writes nothing; a failed row under the default policy commits nothing: exit 1.
    let (code, out, err) =
        stockroom(&["import", path, "--server", &app.address, "--dry-run"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert!(out.contains("NOT_FOUND"), "{out}");
    assert_eq!(stock_of(&app, "KEEP-1").await["stock"], 5);

    let report = folder.path().join("report.csv");
    let (code, out, err) = stockroom(&[
        "import",
        path,
        "--server",
        &app.address,
        "--error-policy",
        "reject-failed-rows",
        "--report",
        report.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "a row failed: {out}{err}");
    for line in [
        "rows                3",
        "created             1",
        "updated             1",
        "failed              1",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    let written = std::fs::read_to_string(&report).unwrap();
    assert!(
        written.starts_with("sku,name,on_hand,status,error_code,error\n"),
        "{written}"
    );
    assert!(
        written.contains("MISSING,,1,FAILED,NOT_FOUND,"),
        "{written}"
    );
    assert_eq!(stock_of(&app, "KEEP-1").await["stock"], 9);
    assert_eq!(stock_of(&app, "NEW-1").await["stock"], 4);

    // Everything applies: exit 0.
    std::fs::write(&file, "sku,on_hand\nKEEP-1,10\n").unwrap();
    let (code, out, err) = stockroom(&["import", path, "--server", &app.address]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("committed"), "{out}");

    // A file the server refuses, a server that is not there: exit 2 with the reason.
    std::fs::write(&file, "sku,colour\nKEEP-1,red\n").unwrap();
    let (code, _, err) = stockroom(&["import", path, "--server", &app.address]).await;
    assert_eq!(code, 2);
    assert!(err.contains("unknown column 'colour'"), "{err}");
    let (code, _, err) = stockroom(&["import", path, "--server", "http://127.0.0.1:9"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach"), "{err}");
}

async fn export_downloads_the_inventory_and_the_ledger(app: TestApp) {
    app.create_product("Bolt, \"zinc\"", "EXP-1", 7, 2).await;
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("inventory.csv");
    let (code, out, err) = stockroom(&[
        "export",
        "inventory",
        "--server",
        &app.address,
        "-o",
        file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "sku,name,reorder_level,location,on_hand,lot,expires_on\nEXP-1,\"Bolt, \"\"zinc\"\"\",2,MAIN,7,,\n"
    );
    let (code, out, _) = stockroom(&["export", "movements", "--server", &app.address]).await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("movement_id,created_at,sku,kind"));
    assert!(lines[1].contains(",EXP-1,INITIAL,7,"), "{out}");
    let (code, _, err) = stockroom(&[
        "export",
        "movements",
        "--server",
        &app.address,
        "--from",
        "someday",
    ])
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("from must be"), "{err}");
}
