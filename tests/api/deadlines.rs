//! Requests stuck behind a row lock: a request that runs out of time is answered `TIMEOUT` and
//! changes nothing (also when it was queued for a batch), and writers waiting on a lock never
//! take the connections that reads and the readiness probe need.

use std::time::{Duration, Instant};

use futures::future::join_all;
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::helpers::{TestApp, assert_no_errors, id_of};

on_both_backends!(with_args ["--request-timeout", "1s"] =>
    reductions_that_time_out_behind_a_held_row_lock_change_nothing);
on_both_backends!(readiness_and_reads_answer_while_fifty_writers_queue_behind_a_held_row_lock);

/// A statement that waits on a row lock past `--db-statement-timeout` is cancelled by
/// PostgreSQL (SQLSTATE 57014): that is "try again", `UNAVAILABLE`, never `INTERNAL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_waiting_past_the_statement_timeout_is_unavailable_and_changes_nothing_on_postgres()
{
    let app = crate::helpers::spawn_app_with(
        crate::helpers::Backend::Postgres,
        &["--db-statement-timeout", "1s"],
    )
    .await;
    let id = id_of(&app.create_product("Held", "HELD-1", 10, 0).await);
    let release = hold_row_lock(&app.database_url, &id).await;
    let sync = "mutation { syncStock(input: { source: \"wh\", rows: [{ sku: \"HELD-1\", onHand: 3 }] }) { applied } }";
    let response = app.graphql(sync, json!({})).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "UNAVAILABLE",
        "{response:#}"
    );
    let reduce = reduce_over_rest(&app, &id, Some("held-key")).await;
    assert_eq!(
        (reduce.0, &reduce.1["code"]),
        (503, &json!("UNAVAILABLE")),
        "{}",
        reduce.1
    );
    release.send(()).unwrap();
    assert_eq!(app.product(&id).await["stock"], 10);
    let retried = app.graphql(sync, json!({})).await;
    assert_no_errors(&retried);
    assert_eq!(app.product(&id).await["stock"], 3);
}

/// A transaction on its own connection that holds `product_id`'s row lock (PostgreSQL
/// `SELECT ... FOR UPDATE`; SQLite has no row locks, so the database's write lock) until the
/// returned sender is used or dropped.
async fn hold_row_lock(database_url: &str, product_id: &str) -> oneshot::Sender<()> {
    let mut options = ConnectOptions::new(database_url.to_owned());
    options.max_connections(1).sqlx_logging(false);
    let connection: DatabaseConnection = sea_orm::Database::connect(options).await.unwrap();
    if database_url.starts_with("sqlite") {
        connection
            .execute_unprepared("BEGIN IMMEDIATE")
            .await
            .unwrap();
    } else {
        connection.execute_unprepared("BEGIN").await.unwrap();
        connection
            .execute_unprepared(&format!(
                "SELECT id FROM products WHERE id = '{product_id}' FOR UPDATE"
            ))
            .await
            .unwrap();
    }
    let (release, released) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = released.await;
        connection.execute_unprepared("COMMIT").await.unwrap();
        connection.close().await.ok();
    });
    release
}

async fn reduce_over_rest(app: &TestApp, id: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = app
        .client
        .put(format!("{}/products/{id}/reduce", app.address))
        .json(&json!({ "quantity": 1 }));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn reduce_over_graphql(app: &TestApp, id: &str) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({
            "query": "mutation($id: ID!) { reduceStock(id: $id, quantity: 1) { newStock } }",
            "variables": { "id": id },
        }))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn reductions_that_time_out_behind_a_held_row_lock_change_nothing(app: TestApp) {
    let id = id_of(&app.create_product("Locked", "LOCK-1", 100, 0).await);
    let release = hold_row_lock(&app.database_url, &id).await;

    // Unkeyed reductions queue for the product's batch; keyed ones take the single path.
    let started = Instant::now();
    let rest = (0..30).map(|_| reduce_over_rest(&app, &id, None));
    let graphql = (0..10).map(|_| reduce_over_graphql(&app, &id));
    let keys: Vec<String> = (0..10).map(|index| format!("timeout-{index}")).collect();
    let keyed = keys
        .iter()
        .map(|key| reduce_over_rest(&app, &id, Some(key)));
    let (rest, graphql, keyed) = tokio::join!(join_all(rest), join_all(graphql), join_all(keyed));
    let waited = started.elapsed();

    for (status, body) in rest.iter().chain(&keyed) {
        assert_eq!(*status, 408, "{body}");
        assert_eq!(body["code"], "TIMEOUT", "{body}");
    }
    for (status, body) in &graphql {
        assert_eq!(*status, 408, "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT", "{body}");
    }
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");

    // The lock goes; the queued batch now runs, and must apply none of the abandoned requests.
    release.send(()).unwrap();
    // The abandoned transactions may still be rolling back; a timed-out try changes nothing.
    let mut answer = reduce_over_rest(&app, &id, None).await;
    for _ in 0..10 {
        if answer.0 != 408 {
            break;
        }
        answer = reduce_over_rest(&app, &id, None).await;
    }
    let (status, body) = answer;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["newStock"], 99, "only this reduction was applied");
    let product = app.product(&id).await;
    assert_eq!(product["stock"], 99);
    assert_eq!(product["version"], 2);
    assert_eq!(app.movements(&id).await.len(), 2);

    // A keyed retry after the timeout runs for real: the key was never used.
    let (status, body) = reduce_over_rest(&app, &id, Some(&keys[0])).await;
    assert_eq!((status, &body["newStock"]), (200, &json!(98)), "{body}");
}

async fn readiness_and_reads_answer_while_fifty_writers_queue_behind_a_held_row_lock(app: TestApp) {
    let id = id_of(&app.create_product("Hot row", "HOT-ROW-1", 100, 0).await);
    let release = hold_row_lock(&app.database_url, &id).await;
    // Keyed reductions each hold a transaction while they wait for the lock.
    let writers: Vec<_> = (0..50)
        .map(|index| {
            let app = app.with_token(None);
            let id = id.clone();
            tokio::spawn(async move {
                reduce_over_rest(&app, &id, Some(&format!("queued-{index}"))).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    for _ in 0..3 {
        let started = Instant::now();
        let ready = app
            .client
            .get(format!("{}/ready", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
        let product = app.product(&id).await;
        assert_eq!(product["stock"], 100);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "/ready and product(id) took {took:?}"
        );
    }

    release.send(()).unwrap();
    for writer in writers {
        let (status, body) = writer.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_no_errors(&app.graphql("{ products { totalCount } }", json!({})).await);
    assert_eq!(app.product(&id).await["stock"], 50);
}

/// PostgreSQL drops every connection of the server twice while reductions run (as a restart
/// or failover would): each request is answered with its result or `UNAVAILABLE` (`503`),
/// never `INTERNAL`, and the ledger still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_database_connections_under_load_answer_unavailable_never_internal() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await;
    let initial = 100_000;
    let id = id_of(&app.create_product("Failover", "FAIL-1", initial, 0).await);
    let database = app.database_url.rsplit('/').next().unwrap().to_owned();
    let stop = Instant::now() + Duration::from_secs(3);

    let workers: Vec<_> = (0..16)
        .map(|worker| {
            let app = app.with_token(None);
            let id = id.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                let mut round = 0;
                while Instant::now() < stop {
                    round += 1;
                    let answer = match worker % 3 {
                        0 => reduce_over_graphql(&app, &id).await,
                        1 => reduce_over_rest(&app, &id, None).await,
                        _ => {
                            let key = format!("failover-{worker}-{round}");
                            reduce_over_rest(&app, &id, Some(&key)).await
                        }
                    };
                    answers.push(answer);
                }
                answers
            })
        })
        .collect();
    let admin = sea_orm::Database::connect(&app.database_url).await.unwrap();
    let mut terminated = 0;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        terminated += admin
            .execute_unprepared(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{database}' AND pid <> pg_backend_pid() \
                 AND application_name <> 'stockroom-listener'"
            ))
            .await
            .unwrap()
            .rows_affected();
    }
    assert!(terminated > 0, "no connection was dropped");

    let mut successes = 0;
    let mut unavailable = 0;
    for worker in workers {
        for (status, body) in worker.await.unwrap() {
            let code = body["code"]
                .as_str()
                .or(body["errors"][0]["extensions"]["code"].as_str());
            match (status, code) {
                (200, None) => successes += 1,
                (503, Some("UNAVAILABLE")) => unavailable += 1,
                (200, Some("UNAVAILABLE")) => {
                    // GraphQL names the request, so an operator can find its log line.
                    let request_id = &body["errors"][0]["extensions"]["requestId"];
                    assert!(
                        request_id.as_str().is_some_and(|id| !id.is_empty()),
                        "{body}"
                    );
                    unavailable += 1;
                }
                other => panic!("unexpected answer {other:?}: {body}"),
            }
        }
    }
    println!("{successes} succeeded, {unavailable} UNAVAILABLE, {terminated} connections dropped");
    assert!(successes > 0);

    // Every success is in the ledger; an UNAVAILABLE whose COMMIT was already under way may be
    // too (that is what idempotency keys are for), and the ledger agrees with the stock.
    let stock = app.product(&id).await["stock"].as_i64().unwrap();
    assert!(
        initial - stock >= successes,
        "{stock} after {successes} successes"
    );
    let (code, output) = crate::helpers::run_verify(&app.database_url).await;
    assert_eq!(code, 0, "{output}");
}

/// An import whose later chunk cannot run (a row lock held past the statement timeout) answers
/// what it did: the chunks before committed, the rest reported as not applied, never an error
/// that hides committed stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_stopped_after_a_committed_chunk_reports_what_was_applied_on_postgres() {
    let app = crate::helpers::spawn_app_with(
        crate::helpers::Backend::Postgres,
        &["--db-statement-timeout", "1s", "--max-sync-rows", "3"],
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(id_of(
            &app.create_product("Chunked", &format!("CH-{n}"), 1, 0)
                .await,
        ));
    }
    let release = hold_row_lock(&app.database_url, &ids[4]).await;
    let file: String = std::iter::once("sku,on_hand\n".to_owned())
        .chain((0..6).map(|n| format!("CH-{n},7\n")))
        .collect();
    let reply = app
        .client
        .post(format!(
            "{}/imports/inventory?errorPolicy=REJECT_FAILED_ROWS",
            app.address
        ))
        .header("content-type", "text/csv")
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    release.send(()).unwrap();
    assert_eq!(body["summary"]["updated"], 3, "{body:#}");
    assert_eq!(body["summary"]["failed"], 3, "{body:#}");
    assert_eq!(body["summary"]["transactions"], 1, "{body:#}");
    for row in body["rows"].as_array().unwrap() {
        assert_eq!(row["code"], "UNAVAILABLE", "{row}");
        assert!(
            row["error"].as_str().unwrap().contains("not applied"),
            "{row}"
        );
    }
    for (n, id) in ids.iter().enumerate() {
        let expected = if n < 3 { 7 } else { 1 };
        assert_eq!(app.product(id).await["stock"], expected, "CH-{n}");
    }
}
