//! `cargo bench --bench load`: Stockroom's throughput next to pgbench running comparable SQL on
//! the same database, side by side in one run.
//!
//! Creates a fresh PostgreSQL database on the server at `--database-url` / `BENCH_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432`), fills it with products, starts the real server
//! in this process on 127.0.0.1 port 0, drives it with concurrent HTTP clients for a bounded time per
//! scenario, and runs `pgbench` with the equivalent SQL on the same database as the reference.
//! Prints one line per scenario and writes the same as JSON to `target/bench/load.json`.
//! `--seconds N` sets each phase's length (default 8), `--only SCENARIO` runs one scenario;
//! the database is dropped at the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use clap::Parser;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use stockroom::config::Cli;
use stockroom::startup::Application;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const CLIENTS: usize = 64;
const SPREAD_PRODUCTS: u64 = 10_000;
const DEEP_PRODUCTS: u64 = 200_000;
const SUBSCRIBERS: usize = 5_000;
const CHANGES_PER_SECOND: u64 = 100;

/// A seeded product's id: deterministic so pgbench can name the same rows.
fn seeded_id(group: u32, n: u64) -> String {
    format!("00000000-0000-7000-{:04x}-{n:012x}", 0x8000 + group)
}

/// The same id as SQL, for pgbench (`:n` is its random variable).
fn seeded_id_sql(group: u32) -> String {
    format!(
        "('00000000-0000-7000-{:04x}-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid",
        0x8000 + group
    )
}

struct Options {
    server: String,
    seconds: u64,
    only: Option<String>,
}

fn options() -> Options {
    let mut server = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let mut seconds = 8;
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--database-url" => server = args.next().expect("--database-url URL"),
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            "--only" => only = Some(args.next().expect("--only SCENARIO")),
            _ => {} // cargo bench passes --bench
        }
    }
    Options {
        server: server.trim_end_matches('/').to_owned(),
        seconds,
        only,
    }
}

#[derive(Default)]
struct Report {
    rows: Vec<Value>,
}

impl Report {
    fn add(&mut self, row: Value) {
        println!("{}", describe(&row));
        self.rows.push(row);
    }
}

fn describe(row: &Value) -> String {
    let number = |key: &str| {
        row[key]
            .as_f64()
            .map_or("-".to_owned(), |v| format!("{v:.1}"))
    };
    format!(
        "{:<15} {:>10} {}  p50 {:>8} ms  p99 {:>8} ms  reference {:>10}/s  ratio {:>6} (goal {})  peak RSS {} MB  {}",
        row["scenario"].as_str().unwrap_or_default(),
        number("requests_per_second"),
        row["unit"].as_str().unwrap_or("req/s"),
        number("p50_ms"),
        number("p99_ms"),
        number("reference_per_second"),
        row["ratio"]
            .as_f64()
            .map_or("-".to_owned(), |v| format!("{v:.2}")),
        row["goal"].as_str().unwrap_or_default(),
        number("peak_rss_mb"),
        row["note"].as_str().unwrap_or_default(),
    )
}

/// Resident memory of this process (server and load generator together), in MB.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches(" kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Samples RSS until stopped; returns the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<f64>,
}

impl RssSampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = rss_mb();
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_mb());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        });
        Self { stop, task }
    }

    async fn peak(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(0.0)
    }
}

/// Microseconds from 1 µs to an hour, at 3 significant figures.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// A small histogram for each of thousands of subscribers: 1 µs to 60 s, 2 significant figures.
fn subscriber_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid bounds")
}

struct Load {
    requests: u64,
    failures: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

/// Runs `clients` loops that each POST `body(step)` to the server for `duration`, counting the
/// answers without errors.
async fn drive<B>(server: &Arc<Server>, clients: usize, duration: Duration, body: B) -> Load
where
    B: Fn(u64) -> String + Send + Sync + 'static,
{
    let body = Arc::new(body);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..clients as u64)
        .map(|client| {
            let (server, body) = (server.clone(), body.clone());
            tokio::spawn(async move {
                let mut latency = latency_histogram();
                let (mut requests, mut failures, mut step) = (0, 0, 0u64);
                while Instant::now() < deadline {
                    let began = Instant::now();
                    let ok = server
                        .post(body(client.wrapping_mul(1_000_003).wrapping_add(step)))
                        .await;
                    latency.saturating_record(began.elapsed().as_micros() as u64);
                    requests += 1;
                    failures += u64::from(!ok);
                    step += 1;
                }
                (requests, failures, latency)
            })
        })
        .collect();
    let mut load = Load {
        requests: 0,
        failures: 0,
        elapsed: Duration::ZERO,
        latency: latency_histogram(),
    };
    for task in tasks {
        let (requests, failures, latency) = task.await.unwrap();
        load.requests += requests;
        load.failures += failures;
        load.latency.add(latency).unwrap();
    }
    load.elapsed = started.elapsed();
    load
}

fn row(scenario: &str, load: &Load, reference: Option<f64>, goal: &str, peak: f64) -> Value {
    let rps = load.requests as f64 / load.elapsed.as_secs_f64();
    json!({
        "scenario": scenario,
        "requests": load.requests,
        "failures": load.failures,
        "requests_per_second": rps,
        "p50_ms": load.latency.value_at_quantile(0.5) as f64 / 1000.0,
        "p99_ms": load.latency.value_at_quantile(0.99) as f64 / 1000.0,
        "reference_per_second": reference,
        "ratio": reference.map(|reference| rps / reference),
        "goal": goal,
        "peak_rss_mb": peak,
    })
}

/// A product with 20 lots (different expiry dates, a few without) spread over `MAIN` and two
/// more locations, with enough units in each for any bounded run. Returns its id.
async fn seed_lots(server: &Server) -> String {
    let call = |query: String, variables: Value| async move {
        let response: Value = server
            .client
            .post(&server.graphql)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(response.get("errors").is_none(), "{response}");
        response["data"].clone()
    };
    let product = call(
        "mutation { createProduct(input: { name: \"Lots\", sku: \"LOTS-1\", stock: 0 }) { id } }"
            .into(),
        json!({}),
    )
    .await["createProduct"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let main = call(
        "{ locationByCode(code: \"MAIN\") { id } }".into(),
        json!({}),
    )
    .await["locationByCode"]["id"]
        .clone();
    let mut locations = vec![main];
    for (code, priority) in [("EAST", 1), ("WEST", 2)] {
        let created = call(
            format!("mutation {{ createLocation(input: {{ code: \"{code}\", name: \"{code}\", priority: {priority} }}) {{ id }} }}"),
            json!({}),
        )
        .await;
        locations.push(created["createLocation"]["id"].clone());
    }
    let today = chrono::Utc::now().date_naive();
    for lot in 0..20_i64 {
        let expires_on =
            (lot % 7 != 6).then(|| (today + chrono::Duration::days(30 + lot * 3)).to_string());
        call(
            "mutation($id: ID!, $location: ID!, $lot: LotInput!) { addStock(id: $id, quantity: 100000000, locationId: $location, lot: $lot) { newStock } }".into(),
            json!({
                "id": product,
                "location": locations[(lot % 3) as usize],
                "lot": { "code": format!("LOT-{lot:02}"), "expiresOn": expires_on },
            }),
        )
        .await;
    }
    product
}

/// The reference for a reduction: lock, update and ledger insert of the product row, as one
/// pgbench transaction (`id_sql` names the product). It is what a reduction did before stock
/// was kept per location and lot, and is kept so that ratios compare across versions; the
/// server now also updates the bucket and inserts an allocation, work this reference omits.
fn transaction(id_sql: &str) -> String {
    format!(
        "BEGIN;\n\
         SELECT stock, reserved, version FROM products WHERE id = {id_sql} FOR UPDATE;\n\
         UPDATE products SET stock = stock - 1, version = version + 1, updated_at = now() WHERE id = {id_sql};\n\
         INSERT INTO stock_movements (id, product_id, kind, delta, stock_before, stock_after, product_version, actor, created_at) \
         SELECT gen_random_uuid(), id, 'REDUCE', -1, stock + 1, stock, version, 'pgbench', now() FROM products WHERE id = {id_sql};\n\
         COMMIT;\n"
    )
}

/// The server's reduction batches so far: (reductions, batches), from its metrics.
fn batches() -> (f64, f64) {
    let text = stockroom::metrics::handle().render();
    let value = |name: &str| {
        text.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    };
    (
        value("stockroom_reduce_batch_size_sum"),
        value("stockroom_reduce_batch_size_count"),
    )
}

/// "mean batch N" for the batches between `before` and now.
fn mean_batch(before: (f64, f64)) -> String {
    let (sum, count) = batches();
    let (sum, count) = (sum - before.0, count - before.1);
    if count == 0.0 {
        "no batches".to_owned()
    } else {
        format!("mean reduction batch {:.1}", sum / count)
    }
}

/// Runs pgbench with `script` for `seconds` and returns its transactions per second. The
/// extended protocol binds `:variables` as parameters (`-M prepared` loses its statements
/// inside the BEGIN ... COMMIT script on pgbench 15).
fn pgbench(database_url: &str, script: &str, seconds: u64, defines: &[(&str, &str)]) -> f64 {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("script.sql");
    std::fs::write(&file, script).unwrap();
    let mut command = std::process::Command::new("pgbench");
    command.args([
        "-n",
        "-M",
        "extended",
        "-c",
        &CLIENTS.to_string(),
        "-j",
        "2",
        "-T",
        &seconds.to_string(),
    ]);
    for (name, value) in defines {
        command.arg("-D").arg(format!("{name}={value}"));
    }
    let output = command
        .arg("-f")
        .arg(&file)
        .arg(database_url)
        .output()
        .expect("pgbench runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "pgbench failed: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

struct Server {
    graphql: String,
    ws: String,
    client: reqwest::Client,
}

impl Server {
    async fn post(&self, body: String) -> bool {
        match self
            .client
            .post(&self.graphql)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(response) => response
                .bytes()
                .await
                .is_ok_and(|bytes| !bytes.windows(9).any(|w| w == b"\"errors\":")),
            Err(_) => false,
        }
    }
}

/// Fills a migrated database with `groups` of products (`(group, count)`, ids from
/// [`seeded_id`]), each with its stock in one lot-less bucket of `MAIN` and its `INITIAL`
/// movement, as `createProduct` lays them out; then `ANALYZE`.
async fn seed_products(database: &sea_orm::DatabaseConnection, groups: &[(u32, u64)]) {
    for &(group, count) in groups {
        database
            .execute_unprepared(&format!(
                "INSERT INTO products (id, name, name_key, sku, sku_key, stock, reorder_level, version, created_at, updated_at, reserved) \
                 SELECT {id}, 'Bench ' || n, 'bench ' || n, 'B{group}-' || n, 'b{group}-' || n, 1000000000, 10, 1, now(), now(), 0 \
                 FROM generate_series(1, {count}) AS n",
                id = seeded_id_sql(group).replace(":n", "n"),
            ))
            .await
            .unwrap();
    }
    // Their stock sits in location MAIN, one lot-less bucket each (as the migration and
    // `createProduct` lay it out).
    database
        .execute_unprepared(
            "INSERT INTO stock_buckets (id, product_id, location_id, lot_code, expires_on, stock, reserved, expired, created_at) \
             SELECT id, id, (SELECT id FROM locations WHERE code_key = 'main'), '', NULL, stock, 0, false, now() FROM products",
        )
        .await
        .unwrap();
    // And each has its INITIAL movement with its allocation, as `createProduct` writes them: a
    // ledger that starts empty would have the planner (after the ANALYZE below) check the
    // allocations' foreign key into stock_movements by a sequential scan, a cost no running
    // system pays once autovacuum has analyzed the table.
    database
        .execute_unprepared(
            "WITH initial AS ( \
               INSERT INTO stock_movements (id, product_id, kind, delta, stock_before, stock_after, product_version, actor, created_at) \
               SELECT gen_random_uuid(), id, 'INITIAL', stock, 0, stock, 1, 'bench', now() FROM products \
               RETURNING id, product_id, stock_after, created_at) \
             INSERT INTO stock_allocations (movement_id, bucket_id, product_id, location_id, lot_code, quantity, stock_before, stock_after, created_at) \
             SELECT initial.id, initial.product_id, initial.product_id, (SELECT id FROM locations WHERE code_key = 'main'), '', \
                    initial.stock_after, 0, initial.stock_after, initial.created_at FROM initial",
        )
        .await
        .unwrap();
    database.execute_unprepared("ANALYZE").await.unwrap();
}

fn graphql_body(query: &str, variables: Value) -> String {
    json!({ "query": query, "variables": variables }).to_string()
}

#[tokio::main]
async fn main() {
    let options = options();
    let seconds = Duration::from_secs(options.seconds);
    let name = format!("stockroom_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(format!("{}/postgres", options.server))
        .await
        .expect("a PostgreSQL server (set BENCH_DATABASE_URL)");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let database_url = format!("{}/{name}", options.server);
    println!(
        "benchmark database {database_url}; {CLIENTS} clients; {}s per phase",
        options.seconds
    );

    let cli = Cli::try_parse_from([
        "stockroom",
        "--database-url",
        &database_url,
        "--listen",
        "127.0.0.1:0",
        "--db-max-connections",
        "16",
        "--max-root-fields",
        "20",
    ])
    .unwrap();
    let application = Application::build(&cli.config)
        .await
        .expect("the server starts");
    let address = application.local_addr().unwrap();
    tokio::spawn(application.run_until_stopped());
    let server = Arc::new(Server {
        graphql: format!("http://{address}/graphql"),
        ws: format!("ws://{address}/graphql/ws"),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(CLIENTS * 2)
            .build()
            .unwrap(),
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_mb();

    // The data: one hot product, 10,000 spread products, 200,000 for deep pages.
    let database = sea_orm::Database::connect(&database_url).await.unwrap();
    seed_products(&database, &[(0, SPREAD_PRODUCTS), (1, DEEP_PRODUCTS)]).await;
    let hot = server
        .client
        .post(&server.graphql)
        .json(&json!({ "query": "mutation { createProduct(input: { name: \"Hot\", sku: \"HOT-1\", stock: 2000000000 }) { id } }" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]["createProduct"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut report = Report::default();
    println!("idle RSS {idle_rss:.1} MB (goal <= 30 MB; the load generator shares this process)");

    let run = |scenario: &str| options.only.as_deref().is_none_or(|only| only == scenario);

    // hot_reduce and hot_reduce_txn: one server run, two references.
    if run("hot_reduce") {
        let body = graphql_body(
            "mutation($id: ID!) { reduceStock(id: $id, quantity: 1) { newStock } }",
            json!({ "id": hot }),
        );
        let sampler = RssSampler::start();
        let before = batches();
        let load = drive(&server, CLIENTS, seconds, move |_| body.clone()).await;
        let batching = mean_batch(before);
        let peak = sampler.peak().await;
        let single = pgbench(
            &database_url,
            "UPDATE products SET stock = stock - 1 WHERE id = :hot AND stock >= 1;\n",
            options.seconds,
            &[("hot", &hot)],
        );
        let hot_txn = pgbench(
            &database_url,
            &transaction(":hot"),
            options.seconds,
            &[("hot", &hot)],
        );
        let mut hot = row("hot_reduce", &load, Some(single), ">= 1.0", peak);
        hot["note"] = json!(batching);
        report.add(hot.clone());
        let mut hot_txn_row = row("hot_reduce_txn", &load, Some(hot_txn), ">= 2.0", peak);
        hot_txn_row["note"] = json!(batching);
        report.add(hot_txn_row);
    }

    // spread_reduce: random products among 10,000.
    if run("spread_reduce") {
        let sampler = RssSampler::start();
        let load = drive(&server, CLIENTS, seconds, move |step| {
            let id = seeded_id(0, 1 + step % SPREAD_PRODUCTS);
            graphql_body(
                "mutation($id: ID!) { reduceStock(id: $id, quantity: 1) { newStock } }",
                json!({ "id": id }),
            )
        })
        .await;
        let peak = sampler.peak().await;
        let spread = pgbench(
            &database_url,
            &format!(
                "\\set n random(1, {SPREAD_PRODUCTS})\n{}",
                transaction(&seeded_id_sql(0))
            ),
            options.seconds,
            &[],
        );
        report.add(row("spread_reduce", &load, Some(spread), ">= 0.7", peak));
    }

    // fefo_reduce: one product whose stock sits in 20 lots over 3 locations; every reduction
    // picks its lot first-expiring first.
    if run("fefo_reduce") {
        let lots_product = seed_lots(&server).await;
        let body = graphql_body(
            "mutation($id: ID!) { reduceStock(id: $id, quantity: 1) { newStock } }",
            json!({ "id": lots_product }),
        );
        let sampler = RssSampler::start();
        let load = drive(&server, CLIENTS, seconds, move |_| body.clone()).await;
        let peak = sampler.peak().await;
        let reference = pgbench(
            &database_url,
            &transaction(":hot"),
            options.seconds,
            &[("hot", &lots_product)],
        );
        report.add(row(
            "fefo_reduce",
            &load,
            Some(reference),
            "report (reference: pgbench, hot_reduce_txn's SQL on the product row)",
            peak,
        ));
    }

    // bulk_sync: one syncStock (over REST) of 10,000 counts, one per spread product; three
    // calls, each setting new counts so that every row applies.
    if run("bulk_sync") {
        report.add(
            bulk_sync(
                &server,
                &address.to_string(),
                &database_url,
                options.seconds,
            )
            .await,
        );
    }

    // csv_import: 10,000- and 100,000-row files through POST /imports/inventory.
    if run("csv_import") {
        for rows in [10_000, 100_000] {
            report.add(csv_import(&server, &address.to_string(), rows).await);
        }
    }

    // read_by_id: random products among 10,000.
    if run("read_by_id") {
        let sampler = RssSampler::start();
        let load = drive(&server, CLIENTS, seconds, move |step| {
            let id = seeded_id(0, 1 + step.wrapping_mul(7919) % SPREAD_PRODUCTS);
            graphql_body(
                        "query($id: ID!) { product(id: $id) { id name sku stock reserved available reorderLevel status version createdAt updatedAt deletedAt } }",
                        json!({ "id": id }),
                    )
        })
        .await;
        let peak = sampler.peak().await;
        let read = pgbench(
            &database_url,
            &format!(
                "\\set n random(1, {SPREAD_PRODUCTS})\nSELECT id, name, sku, stock, reserved, reorder_level, version, created_at, updated_at, deleted_at FROM products WHERE id = {};\n",
                seeded_id_sql(0)
            ),
            options.seconds,
            &[],
        );
        report.add(row("read_by_id", &load, Some(read), ">= 0.5", peak));
    }

    // deep_page: a page at the end of 200,000 products against the first page.
    if run("deep_page") {
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("product:{}", seeded_id(1, DEEP_PRODUCTS - 60)));
        let page = "query($after: String) { products(first: 50, after: $after) { edges { cursor node { id sku stock status } } pageInfo { hasNextPage endCursor } } }";
        let half = seconds / 2;
        let first = graphql_body(page, json!({ "after": null }));
        let deep = graphql_body(page, json!({ "after": cursor }));
        let first_load = drive(&server, 8, half, move |_| first.clone()).await;
        let sampler = RssSampler::start();
        let deep_load = drive(&server, 8, half, move |_| deep.clone()).await;
        let peak = sampler.peak().await;
        let first_p50 = first_load.latency.value_at_quantile(0.5) as f64 / 1000.0;
        let deep_p50 = deep_load.latency.value_at_quantile(0.5) as f64 / 1000.0;
        let mut deep_row = row("deep_page", &deep_load, None, "<= 1.2x first page", peak);
        deep_row["ratio"] = json!(deep_p50 / first_p50);
        deep_row["note"] = json!(format!("first page p50 {first_p50:.2} ms (8 clients)"));
        report.add(deep_row);
    }

    // outbox: hot_reduce and spread_reduce with and without the outbox, and how fast events
    // reach RabbitMQ and a webhook receiver. On a database of its own, so no other server's
    // relay takes its events.
    if run("outbox") {
        for outbox_row in outbox(&admin, &options.server, seconds).await {
            report.add(outbox_row);
        }
    }

    // subscribers: 5,000 WebSocket stockChanged subscribers, 100 committed changes a second.
    if run("subscribers") {
        report.add(subscribers(&server, seconds).await);
    }

    std::fs::create_dir_all(target_dir().join("bench")).unwrap();
    let output = target_dir().join("bench").join("load.json");
    let document = json!({ "idle_rss_mb": idle_rss, "clients": CLIENTS, "seconds_per_phase": options.seconds, "scenarios": report.rows });
    std::fs::write(&output, serde_json::to_string_pretty(&document).unwrap()).unwrap();
    println!("wrote {}", output.display());

    drop(database);
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .ok();
}

/// Rows of one bulk sync.
const SYNC_ROWS: u64 = SPREAD_PRODUCTS;

async fn bulk_sync(server: &Server, address: &str, database_url: &str, seconds: u64) -> Value {
    let url = format!("http://{address}/products/bulk-update");
    let sampler = RssSampler::start();
    let mut latency = latency_histogram();
    let (mut calls, mut failures) = (0u64, 0u64);
    let mut applied_rows = 0u64;
    let mut busy = Duration::ZERO;
    for round in 0..3i64 {
        let rows: Vec<Value> = (1..=SYNC_ROWS)
            .map(|n| json!({ "sku": format!("B0-{n}"), "onHand": 900_000_000 - round * 10 - (n % 5) as i64 }))
            .collect();
        let body = json!({ "source": "bench", "rows": rows }).to_string();
        let began = Instant::now();
        let response = server
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let elapsed = began.elapsed();
        calls += 1;
        let applied = match response {
            Ok(response) if response.status().is_success() => {
                let result: Value = response.json().await.unwrap_or(Value::Null);
                match (result["committed"].as_bool(), result["applied"].as_u64()) {
                    (Some(true), Some(applied)) => applied,
                    _ => 0,
                }
            }
            _ => 0,
        };
        if applied == SYNC_ROWS {
            applied_rows += applied;
            busy += elapsed;
            latency.saturating_record(elapsed.as_micros() as u64);
        } else {
            failures += 1;
        }
    }
    let peak = sampler.peak().await;
    // The reference: the same 10,000 product and bucket updates, movement and allocation
    // inserts, as one set-based SQL transaction.
    let script = "BEGIN;\n\
        WITH product AS (UPDATE products SET stock = stock + 1, version = version + 1, updated_at = now() \
            WHERE sku_key LIKE 'b0-%' RETURNING id, stock, version), \
        bucket AS (UPDATE stock_buckets SET stock = stock_buckets.stock + 1 FROM product \
            WHERE stock_buckets.product_id = product.id AND stock_buckets.lot_code = '' \
            AND stock_buckets.location_id = (SELECT id FROM locations WHERE code_key = 'main') \
            RETURNING stock_buckets.id, stock_buckets.product_id, stock_buckets.location_id, stock_buckets.stock), \
        movement AS (INSERT INTO stock_movements (id, product_id, kind, delta, stock_before, stock_after, product_version, reason, actor, created_at) \
            SELECT gen_random_uuid(), id, 'ADJUSTMENT', 1, stock - 1, stock, version, 'pgbench', 'pgbench', now() FROM product \
            RETURNING id, product_id, created_at) \
        INSERT INTO stock_allocations (movement_id, bucket_id, product_id, location_id, lot_code, quantity, stock_before, stock_after, created_at) \
            SELECT movement.id, bucket.id, bucket.product_id, bucket.location_id, '', 1, bucket.stock - 1, bucket.stock, movement.created_at \
            FROM movement JOIN bucket ON bucket.product_id = movement.product_id;\n\
        COMMIT;\n";
    let reference = pgbench(database_url, script, seconds.min(8), &[]) * SYNC_ROWS as f64;
    let rows_per_second = applied_rows as f64 / busy.as_secs_f64().max(f64::EPSILON);
    json!({
        "scenario": "bulk_sync",
        "unit": "rows/s",
        "requests": calls,
        "failures": failures,
        "requests_per_second": rows_per_second,
        "p50_ms": latency.value_at_quantile(0.5) as f64 / 1000.0,
        "p99_ms": latency.value_at_quantile(0.99) as f64 / 1000.0,
        "reference_per_second": reference,
        "ratio": rows_per_second / reference,
        "goal": ">= 0.5 (reference: pgbench, one set-based SQL transaction of the same row updates and ledger inserts)",
        "peak_rss_mb": peak,
        "note": format!("{calls} calls of {SYNC_ROWS} rows; latency is per call"),
    })
}

async fn csv_import(server: &Server, address: &str, rows: u64) -> Value {
    // A file of counts for the deep products, written to disk and streamed from there, so
    // the load generator holds none of it.
    let path = target_dir()
        .join("bench")
        .join(format!("import-{rows}.csv"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(file, "sku,on_hand").unwrap();
        for n in 1..=rows {
            writeln!(
                file,
                "B1-{n},{}",
                800_000_000 - rows as i64 - (n % 3) as i64
            )
            .unwrap();
        }
    }
    let bytes = std::fs::metadata(&path).unwrap().len();
    let before = rss_mb();
    let sampler = RssSampler::start();
    let file = tokio::fs::File::open(&path).await.unwrap();
    let began = Instant::now();
    let response = server
        .client
        .post(format!(
            "http://{address}/imports/inventory?errorPolicy=REJECT_FAILED_ROWS&source=bench"
        ))
        .header("content-type", "text/csv")
        .header("content-length", bytes)
        .body(reqwest::Body::wrap_stream(
            tokio_util::io::ReaderStream::new(file),
        ))
        .send()
        .await;
    let elapsed = began.elapsed();
    let peak = sampler.peak().await;
    let updated = match response {
        Ok(response) if response.status().is_success() => {
            let report: Value = response.json().await.unwrap_or(Value::Null);
            report["summary"]["updated"].as_u64().unwrap_or(0)
        }
        _ => 0,
    };
    std::fs::remove_file(&path).ok();
    let rows_per_second = updated as f64 / elapsed.as_secs_f64();
    json!({
        "scenario": format!("csv_import_{}k", rows / 1000),
        "unit": "rows/s",
        "requests": 1,
        "failures": u64::from(updated != rows),
        "requests_per_second": rows_per_second,
        "p50_ms": elapsed.as_secs_f64() * 1000.0,
        "p99_ms": elapsed.as_secs_f64() * 1000.0,
        "reference_per_second": null,
        "ratio": null,
        "goal": "peak RSS does not grow with the file",
        "peak_rss_mb": peak,
        "note": format!("{updated} of {rows} rows updated, {:.1} MB file, RSS before {before:.1} MB, peak {peak:.1} MB", bytes as f64 / 1e6),
    })
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

async fn subscribers(server: &Arc<Server>, seconds: Duration) -> Value {
    let product = server
        .client
        .post(&server.graphql)
        .json(&json!({ "query": "mutation { createProduct(input: { name: \"Watched\", sku: \"SUB-1\", stock: 2000000000 }) { id } }" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]["createProduct"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sampler = RssSampler::start();
    let delivered = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let subscription = json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription($ids: [ID!]) { stockChanged(productIds: $ids) { createdAt } }",
        "variables": { "ids": [product] } } })
    .to_string();
    let clients: Vec<_> = (0..SUBSCRIBERS)
        .map(|index| {
            let (url, subscription) = (server.ws.clone(), subscription.clone());
            let (delivered, connected, stop) = (delivered.clone(), connected.clone(), stop.clone());
            tokio::spawn(async move {
                // Stagger the handshakes a little.
                tokio::time::sleep(Duration::from_micros(200 * index as u64)).await;
                let mut request = url.into_client_request().unwrap();
                request.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    "graphql-transport-ws".parse().unwrap(),
                );
                // Small buffers on the client side too: this process holds both ends.
                let config = WebSocketConfig::default()
                    .read_buffer_size(8 * 1024)
                    .write_buffer_size(4 * 1024);
                let Ok((mut socket, _)) =
                    tokio_tungstenite::connect_async_with_config(request, Some(config), false)
                        .await
                else {
                    return latency_histogram();
                };
                socket
                    .send(Message::text(r#"{"type":"connection_init","payload":{}}"#))
                    .await
                    .ok();
                let _ack = socket.next().await;
                socket.send(Message::text(subscription)).await.ok();
                connected.fetch_add(1, Ordering::Relaxed);
                let mut latency = subscriber_histogram();
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(Ok(Message::Text(text)))) =
                        tokio::time::timeout(Duration::from_millis(200), socket.next()).await
                    else {
                        continue;
                    };
                    let received = chrono::Utc::now();
                    if let Ok(message) = serde_json::from_str::<Value>(&text)
                        && let Some(at) =
                            message["payload"]["data"]["stockChanged"]["createdAt"].as_str()
                        && let Ok(at) = chrono::DateTime::parse_from_rfc3339(at)
                    {
                        let micros = (received - at.with_timezone(&chrono::Utc))
                            .num_microseconds()
                            .unwrap_or(0);
                        latency.saturating_record(micros.max(0) as u64);
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latency
            })
        })
        .collect();
    let connect_deadline = Instant::now() + Duration::from_secs(60);
    while (connected.load(Ordering::Relaxed) as usize) < SUBSCRIBERS
        && Instant::now() < connect_deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let subscribed = connected.load(Ordering::Relaxed);
    let connected_rss = rss_mb();

    let body = graphql_body(
        "mutation($id: ID!) { reduceStock(id: $id, quantity: 1) { newStock } }",
        json!({ "id": product }),
    );
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / CHANGES_PER_SECOND));
    let started = Instant::now();
    let mut committed = 0u64;
    while started.elapsed() < seconds {
        tick.tick().await;
        if server.post(body.clone()).await {
            committed += 1;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // let deliveries drain
    stop.store(true, Ordering::Relaxed);
    let mut latency = subscriber_histogram();
    for client in clients {
        latency.add(client.await.unwrap()).unwrap();
    }
    let peak = sampler.peak().await;
    let expected = committed * subscribed;
    let got = delivered.load(Ordering::Relaxed);
    json!({
        "scenario": "subscribers",
        "subscribers": subscribed,
        "committed_changes": committed,
        "expected_deliveries": expected,
        "deliveries": got,
        "requests_per_second": committed as f64 / seconds.as_secs_f64(),
        "p50_ms": latency.value_at_quantile(0.5) as f64 / 1000.0,
        "p99_ms": latency.value_at_quantile(0.99) as f64 / 1000.0,
        "goal": "all delivered, commit->client p99 <= 100 ms, RSS <= 250 MB",
        "peak_rss_mb": peak,
        "rss_after_connecting_mb": connected_rss,
        "note": format!(
            "{got}/{expected} deliveries to {subscribed} subscribers (p50/p99 are commit->client); RSS {connected_rss:.0} MB once connected, before any event"
        ),
    })
}

/// Deliveries one sink received: how many, when the first and last came, and the time from
/// each event's change to its arrival.
struct Arrivals {
    count: u64,
    last: Option<Instant>,
    latency: Histogram<u64>,
}

impl Arrivals {
    fn new() -> Self {
        Self {
            count: 0,
            last: None,
            latency: latency_histogram(),
        }
    }

    fn record(&mut self, body: &[u8]) {
        let Ok(event) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let Some(at) = event["occurredAt"]
            .as_str()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        else {
            return;
        };
        let delay = (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
            .num_microseconds()
            .unwrap_or(0)
            .max(1);
        self.latency.saturating_record(delay as u64);
        self.count += 1;
        self.last = Some(Instant::now());
    }
}

type SharedArrivals = Arc<std::sync::Mutex<Arrivals>>;

async fn webhook_receiver(
    axum::extract::State(arrivals): axum::extract::State<SharedArrivals>,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    arrivals.lock().unwrap().record(&body);
    axum::http::StatusCode::NO_CONTENT
}

async fn start_server(args: &[&str]) -> Arc<Server> {
    let base = [
        "stockroom",
        "--listen",
        "127.0.0.1:0",
        "--db-max-connections",
        "16",
        "--max-root-fields",
        "20",
    ];
    let cli = Cli::try_parse_from(base.iter().chain(args)).unwrap();
    let application = Application::build(&cli.config)
        .await
        .expect("the server starts");
    let address = application.local_addr().unwrap();
    tokio::spawn(application.run_until_stopped());
    Arc::new(Server {
        graphql: format!("http://{address}/graphql"),
        ws: format!("ws://{address}/graphql/ws"),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(CLIENTS * 2)
            .build()
            .unwrap(),
    })
}

/// The outbox's cost and its delivery: two servers on one fresh database, one with
/// `--no-outbox` and one publishing to RabbitMQ (127.0.0.1:5672, an exchange of its own) with a
/// webhook to a receiver in this process; hot_reduce and spread_reduce on each, back to back.
async fn outbox(
    admin: &sea_orm::DatabaseConnection,
    server: &str,
    seconds: Duration,
) -> Vec<Value> {
    use lapin::options::{
        BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    };
    use lapin::types::FieldTable;

    let name = format!("stockroom_bench_outbox_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let database_url = format!("{server}/{name}");
    let amqp = std::env::var("BENCH_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let exchange = format!("stockroom.bench.{}", uuid::Uuid::new_v4().simple());
    let without = start_server(&["--database-url", &database_url, "--no-outbox"]).await;
    let database = sea_orm::Database::connect(&database_url).await.unwrap();
    seed_products(&database, &[(0, SPREAD_PRODUCTS)]).await;
    let with = start_server(&[
        "--database-url",
        &database_url,
        "--amqp-url",
        &amqp,
        "--amqp-exchange",
        &exchange,
        "--webhook-allow-private-targets",
    ])
    .await;

    // The broker's side: a queue bound to every event.
    let connection = lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ (set BENCH_AMQP_URL)");
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "bench".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let broker: SharedArrivals = Arc::new(std::sync::Mutex::new(Arrivals::new()));
    let sink = broker.clone();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            sink.lock().unwrap().record(&delivery.data);
        }
    });

    // The webhook's side: a receiver answering 204.
    let hooks: SharedArrivals = Arc::new(std::sync::Mutex::new(Arrivals::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(webhook_receiver))
        .with_state(hooks.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let call = |server: Arc<Server>, query: &'static str, variables: Value| async move {
        server
            .client
            .post(&server.graphql)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let hot = call(
        without.clone(),
        "mutation { createProduct(input: { name: \"Hot\", sku: \"HOT-1\", stock: 2000000000 }) { id } }",
        json!({}),
    )
    .await["data"]["createProduct"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let webhook = call(
        with.clone(),
        "mutation($url: String!) { createWebhook(input: { url: $url, eventTypes: [\"stock.changed\"] }) { id } }",
        json!({ "url": hook_url }),
    )
    .await["data"]["createWebhook"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let reduce_hot = graphql_body(
        "mutation($id: ID!) { reduceStock(id: $id, quantity: 1) { newStock } }",
        json!({ "id": hot }),
    );
    let hot_body = reduce_hot.clone();
    let hot_without = drive(&without, CLIENTS, seconds, move |_| hot_body.clone()).await;
    *broker.lock().unwrap() = Arrivals::new();
    *hooks.lock().unwrap() = Arrivals::new();
    let sampler = RssSampler::start();
    let started = Instant::now();
    let hot_body = reduce_hot.clone();
    let hot_with = drive(&with, CLIENTS, seconds, move |_| hot_body.clone()).await;
    let peak = sampler.peak().await;
    let committed = hot_with.requests - hot_with.failures;
    // Every committed reduction's event reaches the broker (bounded wait).
    let drain = Instant::now();
    while broker.lock().unwrap().count < committed && drain.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The webhook gets five more seconds after the load, then stops.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(drain.elapsed())).await;
    let rate = |arrivals: &Arrivals| match arrivals.last {
        Some(last) => arrivals.count as f64 / (last - started).as_secs_f64(),
        None => 0.0,
    };
    let delivery_row = |scenario: &str, arrivals: &Arrivals, goal: &str, note: String| {
        json!({
            "scenario": scenario,
            "requests": arrivals.count,
            "failures": 0,
            "requests_per_second": rate(arrivals),
            "p50_ms": arrivals.latency.value_at_quantile(0.5) as f64 / 1000.0,
            "p99_ms": arrivals.latency.value_at_quantile(0.99) as f64 / 1000.0,
            "reference_per_second": null,
            "ratio": null,
            "goal": goal,
            "peak_rss_mb": peak,
            "note": note,
        })
    };
    let amqp_row = {
        let arrivals = broker.lock().unwrap();
        delivery_row(
            "outbox_amqp",
            &arrivals,
            "report: events/s delivered, change->arrival p50/p99",
            format!(
                "{} of {committed} committed reductions' events arrived (events/s from load start to last arrival)",
                arrivals.count
            ),
        )
    };
    let webhook_row = {
        let arrivals = hooks.lock().unwrap();
        delivery_row(
            "outbox_webhook",
            &arrivals,
            "report: events/s delivered, change->arrival p50/p99",
            format!(
                "{} of {committed} events delivered by {} s after the load began; one product's deliveries go one at a time, in order",
                arrivals.count,
                started.elapsed().as_secs()
            ),
        )
    };
    // The webhook's backlog would load the next phases: delete it (and its deliveries).
    call(
        with.clone(),
        "mutation($id: ID!) { deleteWebhook(id: $id) { id } }",
        json!({ "id": webhook }),
    )
    .await;

    let spread = |step: u64| {
        graphql_body(
            "mutation($id: ID!) { reduceStock(id: $id, quantity: 1) { newStock } }",
            json!({ "id": seeded_id(0, 1 + step % SPREAD_PRODUCTS) }),
        )
    };
    let spread_without = drive(&without, CLIENTS, seconds, spread).await;
    let sampler = RssSampler::start();
    let spread_with = drive(&with, CLIENTS, seconds, spread).await;
    let spread_peak = sampler.peak().await;

    let rps = |load: &Load| load.requests as f64 / load.elapsed.as_secs_f64();
    let mut hot_row = row(
        "outbox_hot_reduce",
        &hot_with,
        Some(rps(&hot_without)),
        "report (reference: the same server without the outbox, same run)",
        peak,
    );
    hot_row["note"] = json!("with RabbitMQ and one webhook attached");
    let mut spread_row = row(
        "outbox_spread_reduce",
        &spread_with,
        Some(rps(&spread_without)),
        "report (reference: the same server without the outbox, same run)",
        spread_peak,
    );
    spread_row["note"] = json!("with RabbitMQ attached");

    drop(database);
    let _ = channel
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await;
    let _ = connection.close(0, "done".into()).await;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .ok();
    vec![hot_row, spread_row, amqp_row, webhook_row]
}
