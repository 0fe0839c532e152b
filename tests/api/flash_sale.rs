//! A flash sale: ten thousand clients each send one reduction at the same moment, each over its
//! own connection, to the real binary running as its own process. Every answer must be right:
//! exactly as many successes as there are units, `INSUFFICIENT_STOCK` for the rest, no other
//! answer, and a ledger that verifies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, fresh_database, id_of, run_verify, start_process};

const UNITS: i64 = 6_000;
const CLIENTS: usize = 10_000;

/// One flash sale at a time: each holds ten thousand sockets, and two at once would pass the
/// open-file limit of a test process.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

mod ten_thousand_concurrent_reductions_of_one_against_6000_units_let_exactly_6000_succeed {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        flash_sale(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        flash_sale(Backend::Postgres).await;
    }
}

async fn flash_sale(backend: Backend) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (database_url, _folder) = fresh_database(backend).await;
    // Every client waits its turn, however loaded the machine: this test is about the answers,
    // not their latency.
    let server = start_process(&database_url, &["--request-timeout", "120s"]).await;
    let app = TestApp::client_for(&server.address, &database_url);
    let id = id_of(&app.create_product("Flash sale", "FLASH-1", UNITS, 0).await);
    let url = format!("{}/products/{id}/reduce", server.address);
    // A connection per client, as ten thousand shoppers would have.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    let connect_retries = AtomicUsize::new(0);
    let started = Instant::now();
    let answers = tokio::time::timeout(
        Duration::from_secs(240),
        join_all((0..CLIENTS).map(|_| {
            let client = &client;
            let url = &url;
            let connect_retries = &connect_retries;
            async move {
                // A connection that could not even be opened carried no request: try again, for
                // up to half a minute (a loaded machine may run short of sockets for a while).
                // Any other failure is an answer the test reports.
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    match client.put(url).json(&json!({ "quantity": 1 })).send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let body: Value = response.json().await.unwrap_or(Value::Null);
                            return (status, body);
                        }
                        Err(error) if error.is_connect() && attempts < 60 => {
                            connect_retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(error) => {
                            return (0, json!({ "transport": error_chain(&error) }));
                        }
                    }
                }
            }
        })),
    )
    .await
    .expect("every client is answered");
    println!(
        "{backend:?}: {CLIENTS} concurrent reductions answered in {:?} ({} connections opened again)",
        started.elapsed(),
        connect_retries.load(Ordering::Relaxed)
    );

    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut new_stocks = Vec::new();
    for (status, body) in &answers {
        let kind = match (status, body["code"].as_str()) {
            (200, _) => {
                new_stocks.push(body["newStock"].as_i64().expect("newStock"));
                "200".to_owned()
            }
            (400, Some("INSUFFICIENT_STOCK")) => "400 INSUFFICIENT_STOCK".to_owned(),
            (status, code) => format!("{status} {code:?}: {body}"),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    let expected = BTreeMap::from([
        ("200".to_owned(), UNITS as usize),
        (
            "400 INSUFFICIENT_STOCK".to_owned(),
            CLIENTS - UNITS as usize,
        ),
    ]);
    assert_eq!(kinds, expected);
    // Every success saw a distinct stock level: 5999, 5998, ..., 0.
    new_stocks.sort_unstable();
    assert_eq!(new_stocks, (0..UNITS).collect::<Vec<_>>());

    let product = app.product(&id).await;
    assert_eq!(product["stock"], 0);
    assert_eq!(product["version"], UNITS + 1);
    let count = app
        .graphql(
            "query($id: ID!) { stockMovements(productId: $id, first: 1) { totalCount } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        count["data"]["stockMovements"]["totalCount"],
        UNITS + 1,
        "the creation and one movement per success"
    );
    let (code, output) = run_verify(&database_url).await;
    assert_eq!(code, 0, "{output}");
}

/// An error with every cause behind it, so a transport failure says what failed.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
