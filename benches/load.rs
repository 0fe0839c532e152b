//! `cargo bench --bench load`: Stockroom's throughput and latency, measured from outside, next
//! to `pgbench` running comparable SQL on the same database in the same run.
//!
//! The server is the release binary, started as a process of its own on 127.0.0.1 port 0, so
//! the RSS and CPU figures are the server's alone; this process only generates load. Each
//! scenario drives it with concurrent HTTP (or WebSocket) clients for a bounded time and
//! counts only successful answers; failures are printed on every line. References are the
//! SQL named on each line, run by pgbench against the same database.
//!
//! Options: `--database postgres` (default: a fresh database on the server at
//! `--database-url` / `BENCH_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432`, dropped
//! at the end) or `--database sqlite` (a fresh file in a temporary folder; no pgbench
//! references there), `--seconds N` each phase's length (default 8), `--only SCENARIO` one
//! scenario. Prints one line per scenario and writes them as JSON to
//! `target/bench/load-<database>.json`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const CLIENTS: usize = 64;
/// Clients of the latency scenarios (deep pages, the large catalogue).
const LATENCY_CLIENTS: usize = 8;
const SPREAD_PRODUCTS: u64 = 10_000;
const DEEP_PRODUCTS: u64 = 200_000;
const CATALOG_PRODUCTS: u64 = 2_000_000;
const SUBSCRIBERS: usize = 5_000;
const CHANGES_PER_SECOND: u64 = 100;
/// Linux reports process CPU time in clock ticks of 1/100 s (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

const REDUCE_ONE: &str = "mutation($id: ID!) { reduceStock(id: $id, quantity: 1) { newStock } }";
const PRODUCT_BY_ID: &str = "query($id: ID!) { product(id: $id) { id name sku stock reserved available reorderLevel status version createdAt updatedAt deletedAt } }";

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

struct Options {
    server: String,
    backend: Backend,
    seconds: u64,
    only: Option<String>,
}

fn options() -> Options {
    let mut server = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let mut backend = Backend::Postgres;
    let mut seconds = 8;
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--database-url" => server = args.next().expect("--database-url URL"),
            "--database" => {
                backend = match args.next().as_deref() {
                    Some("postgres") => Backend::Postgres,
                    Some("sqlite") => Backend::Sqlite,
                    _ => panic!("--database postgres|sqlite"),
                }
            }
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
        backend,
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
    let reference = match row["reference_per_second"].as_f64() {
        Some(value) => format!(
            "reference {value:.1}/s ({})",
            row["reference"].as_str().unwrap_or_default()
        ),
        None => "no reference".to_owned(),
    };
    format!(
        "{:<22} {:>10} {} ok, {} failed  p50 {} ms  p99 {} ms  {reference}  ratio {} (goal {})  server: peak RSS {} MB, CPU {}%  {}",
        row["scenario"].as_str().unwrap_or_default(),
        number("requests_per_second"),
        row["unit"].as_str().unwrap_or("req/s"),
        row["failures"].as_u64().unwrap_or(0),
        number("p50_ms"),
        number("p99_ms"),
        row["ratio"]
            .as_f64()
            .map_or("-".to_owned(), |v| format!("{v:.2}")),
        row["goal"].as_str().unwrap_or_default(),
        number("peak_rss_mb"),
        number("cpu_percent"),
        row["note"].as_str().unwrap_or_default(),
    )
}

/// A server process: the release binary, on its own port, killed when dropped.
struct Server {
    child: tokio::process::Child,
    base: String,
    graphql: String,
    ws: String,
    metrics: String,
    client: reqwest::Client,
}

impl Server {
    /// Starts `stockroom serve` on `database_url` with `args` added, and waits until it listens.
    async fn start(database_url: &str, args: &[&str]) -> Arc<Server> {
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let metrics_listen = format!("127.0.0.1:{metrics_port}");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stockroom"))
            .args([
                "serve",
                "--database-url",
                database_url,
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                &metrics_listen,
                "--log-format",
                "json",
                "--db-max-connections",
                "16",
                "--max-root-fields",
                "20",
            ])
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("STOCKROOM_JWT_SECRET")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the server binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let address = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && line.contains("stockroom is listening")
                    && let Some(address) = entry["address"].as_str()
                {
                    return address.to_owned();
                }
            }
            panic!("the server exited before listening");
        })
        .await
        .expect("the server listens within 60 s");
        // Keep reading its log so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Arc::new(Server {
            child,
            base: format!("http://{address}"),
            graphql: format!("http://{address}/graphql"),
            ws: format!("ws://{address}/graphql/ws"),
            metrics: format!("http://{metrics_listen}/metrics"),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(CLIENTS * 2)
                .build()
                .unwrap(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("the server runs")
    }

    /// Posts a GraphQL body; true when the answer came and carries no errors.
    async fn post(&self, body: String) -> bool {
        match self
            .client
            .post(&self.graphql)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => response
                .bytes()
                .await
                .is_ok_and(|bytes| !bytes.windows(9).any(|w| w == b"\"errors\":")),
            _ => false,
        }
    }

    /// Runs one GraphQL operation that must succeed; returns its `data`.
    async fn call(&self, query: &str, variables: Value) -> Value {
        let response: Value = self
            .client
            .post(&self.graphql)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(response.get("errors").is_none(), "{response}");
        response["data"].clone()
    }

    /// A product created through the API; returns its id.
    async fn create_product(&self, name: &str, sku: &str, stock: i64) -> String {
        self.call(
            "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }",
            json!({ "input": { "name": name, "sku": sku, "stock": stock } }),
        )
        .await["createProduct"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Streams the CSV file at `path` from disk to `POST /imports/inventory` (failed rows
    /// rejected, the rest applied in chunks) under `source`.
    async fn import_file(
        &self,
        path: &std::path::Path,
        source: &str,
    ) -> reqwest::Result<reqwest::Response> {
        let bytes = std::fs::metadata(path).unwrap().len();
        let file = tokio::fs::File::open(path).await.unwrap();
        self.client
            .post(format!(
                "{}/imports/inventory?errorPolicy=REJECT_FAILED_ROWS&source={source}",
                self.base
            ))
            .header("content-type", "text/csv")
            .header("content-length", bytes)
            .body(reqwest::Body::wrap_stream(
                tokio_util::io::ReaderStream::new(file),
            ))
            .send()
            .await
    }

    /// The sum of a metric's samples whose line starts with `name`, from `/metrics`.
    async fn metric(&self, name: &str) -> f64 {
        let text = match self.client.get(&self.metrics).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next())
            .filter_map(|value| value.parse::<f64>().ok())
            .sum()
    }

    /// The server's resident memory, in MB.
    fn rss_mb(&self) -> f64 {
        process_rss_mb(self.pid())
    }

    /// CPU time the server has used so far (user and system), in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which is in parentheses and may hold spaces):
        // utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |index: usize| {
            fields
                .get(index)
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(11) + ticks(12)) / TICKS_PER_SECOND
    }
}

fn process_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
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

/// Watches the server during a phase: its peak RSS (sampled every 50 ms) and its CPU use.
struct Watch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<f64>,
    cpu_before: f64,
    started: Instant,
    server: Arc<Server>,
}

struct Watched {
    peak_rss_mb: f64,
    cpu_percent: f64,
}

impl Watch {
    fn start(server: &Arc<Server>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let pid = server.pid();
        let task = tokio::spawn(async move {
            let mut peak = process_rss_mb(pid);
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(process_rss_mb(pid));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        });
        Self {
            stop,
            task,
            cpu_before: server.cpu_seconds(),
            started: Instant::now(),
            server: server.clone(),
        }
    }

    async fn end(self) -> Watched {
        self.stop.store(true, Ordering::Relaxed);
        let cpu = self.server.cpu_seconds() - self.cpu_before;
        Watched {
            peak_rss_mb: self.task.await.unwrap_or(0.0),
            cpu_percent: 100.0 * cpu / self.started.elapsed().as_secs_f64(),
        }
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

/// What a phase of load did: answers with and without errors, and the latency of the good ones.
struct Load {
    successes: u64,
    failures: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.successes as f64 / self.elapsed.as_secs_f64()
    }

    fn p50_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.5) as f64 / 1000.0
    }
}

/// Runs `clients` loops that each POST `body(step)` to the server for `duration`.
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
                let (mut successes, mut failures, mut step) = (0, 0, 0u64);
                while Instant::now() < deadline {
                    let began = Instant::now();
                    let ok = server
                        .post(body(client.wrapping_mul(1_000_003).wrapping_add(step)))
                        .await;
                    if ok {
                        latency.saturating_record(began.elapsed().as_micros() as u64);
                        successes += 1;
                    } else {
                        failures += 1;
                    }
                    step += 1;
                }
                (successes, failures, latency)
            })
        })
        .collect();
    let mut load = Load {
        successes: 0,
        failures: 0,
        elapsed: Duration::ZERO,
        latency: latency_histogram(),
    };
    for task in tasks {
        let (successes, failures, latency) = task.await.unwrap();
        load.successes += successes;
        load.failures += failures;
        load.latency.add(latency).unwrap();
    }
    load.elapsed = started.elapsed();
    load
}

/// A reference figure and what it measured.
struct Reference {
    per_second: f64,
    what: String,
}

fn row(
    scenario: &str,
    load: &Load,
    reference: Option<&Reference>,
    goal: &str,
    watched: &Watched,
) -> Value {
    let rps = load.per_second();
    json!({
        "scenario": scenario,
        "successes": load.successes,
        "failures": load.failures,
        "requests_per_second": rps,
        "p50_ms": load.p50_ms(),
        "p99_ms": load.latency.value_at_quantile(0.99) as f64 / 1000.0,
        "reference_per_second": reference.map(|reference| reference.per_second),
        "reference": reference.map(|reference| reference.what.clone()),
        "ratio": reference.map(|reference| rps / reference.per_second),
        "goal": goal,
        "peak_rss_mb": watched.peak_rss_mb,
        "cpu_percent": watched.cpu_percent,
    })
}

/// pgbench's query protocol for a script.
#[derive(Clone, Copy)]
enum Protocol {
    /// Parameters bound per statement, parsed every time (pgbench 15 loses `-M prepared`
    /// statements inside a `BEGIN ... COMMIT` script).
    Extended,
    /// Parsed and planned once per connection, then only executed.
    Prepared,
}

/// Runs pgbench with `script` for `seconds` on `CLIENTS` connections and returns its
/// transactions per second.
fn pgbench(
    database_url: &str,
    script: &str,
    seconds: u64,
    defines: &[(&str, &str)],
    protocol: Protocol,
) -> f64 {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("script.sql");
    std::fs::write(&file, script).unwrap();
    let mut command = std::process::Command::new("pgbench");
    command.args([
        "-n",
        "-M",
        match protocol {
            Protocol::Extended => "extended",
            Protocol::Prepared => "prepared",
        },
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

/// A reduction as one pgbench transaction: lock, update and ledger insert of the product row
/// (`id_sql` names it). It is what a reduction did before stock was kept per location and lot;
/// the server now also updates the bucket, inserts an allocation and notifies, work this
/// reference omits.
fn reduce_transaction(id_sql: &str) -> String {
    format!(
        "BEGIN;\n\
         SELECT stock, reserved, version FROM products WHERE id = {id_sql} FOR UPDATE;\n\
         UPDATE products SET stock = stock - 1, version = version + 1, updated_at = now() WHERE id = {id_sql};\n\
         INSERT INTO stock_movements (id, product_id, kind, delta, stock_before, stock_after, product_version, actor, created_at) \
         SELECT gen_random_uuid(), id, 'REDUCE', -1, stock + 1, stock, version, 'pgbench', now() FROM products WHERE id = {id_sql};\n\
         COMMIT;\n"
    )
}

/// The hot product's parity reference: one transaction takes `:k` units at once (the mean
/// batch the server formed), writes `:k` movements (each its own product version) and one
/// NOTIFY, as a batch of the server does; its units per second are transactions per second times k.
fn batch_transaction() -> &'static str {
    "BEGIN;\n\
     SELECT stock, reserved, version FROM products WHERE id = :hot FOR UPDATE;\n\
     UPDATE products SET stock = stock - :k, version = version + :k, updated_at = now() WHERE id = :hot;\n\
     INSERT INTO stock_movements (id, product_id, kind, delta, stock_before, stock_after, product_version, actor, created_at) \
     SELECT gen_random_uuid(), p.id, 'REDUCE', -1, p.stock + :k - i + 1, p.stock + :k - i, p.version - :k + i, 'pgbench', now() \
     FROM products p, generate_series(1, :k) AS i WHERE p.id = :hot;\n\
     SELECT pg_notify('stockroom_bench', :hot);\n\
     COMMIT;\n"
}

/// The products a run works on: 10,000 "spread" ones (group 0, SKUs `B0-n`) and 200,000 for
/// deep pages (group 1, `B1-n`).
struct Catalog {
    spread: Arc<Vec<String>>,
    /// The product 60 from the end in id order: a page after it is the catalogue's last.
    deep_cursor_id: String,
}

/// Fills a migrated PostgreSQL database with `groups` of products (`(group, first n, last n)`,
/// ids from [`seeded_id`]), each with its stock in one lot-less bucket of `MAIN` and its
/// `INITIAL` movement, as `createProduct` lays them out; then `ANALYZE`.
async fn seed_postgres(database: &DatabaseConnection, groups: &[(u32, u64, u64)]) {
    for &(group, first, last) in groups {
        database
            .execute_unprepared(&format!(
                "INSERT INTO products (id, name, name_key, sku, sku_key, stock, reorder_level, version, created_at, updated_at, reserved) \
                 SELECT {id}, 'Bench ' || n, 'bench ' || n, 'B{group}-' || n, 'b{group}-' || n, 1000000000, 10, 1, now(), now(), 0 \
                 FROM generate_series({first}, {last}) AS n",
                id = seeded_id_sql(group).replace(":n", "n"),
            ))
            .await
            .unwrap();
        // Their stock sits in location MAIN, one lot-less bucket each (as the migration and
        // `createProduct` lay it out), and each has its INITIAL movement with its allocation:
        // a ledger that starts empty would have the planner (after the ANALYZE below) check
        // the allocations' foreign key into stock_movements by a sequential scan, a cost no
        // running system pays once autovacuum has analyzed the table.
        database
            .execute_unprepared(&format!(
                "WITH seeded AS (SELECT id, stock FROM products WHERE sku_key LIKE 'b{group}-%' \
                   AND NOT EXISTS (SELECT 1 FROM stock_buckets b WHERE b.product_id = products.id)), \
                 bucket AS ( \
                   INSERT INTO stock_buckets (id, product_id, location_id, lot_code, expires_on, stock, reserved, expired, created_at) \
                   SELECT id, id, (SELECT id FROM locations WHERE code_key = 'main'), '', NULL, stock, 0, false, now() FROM seeded \
                   RETURNING id), \
                 initial AS ( \
                   INSERT INTO stock_movements (id, product_id, kind, delta, stock_before, stock_after, product_version, actor, created_at) \
                   SELECT gen_random_uuid(), seeded.id, 'INITIAL', stock, 0, stock, 1, 'bench', now() FROM seeded JOIN bucket ON bucket.id = seeded.id \
                   RETURNING id, product_id, stock_after, created_at) \
                 INSERT INTO stock_allocations (movement_id, bucket_id, product_id, location_id, lot_code, quantity, stock_before, stock_after, created_at) \
                 SELECT initial.id, initial.product_id, initial.product_id, (SELECT id FROM locations WHERE code_key = 'main'), '', \
                        initial.stock_after, 0, initial.stock_after, initial.created_at FROM initial"
            ))
            .await
            .unwrap();
    }
    database.execute_unprepared("ANALYZE").await.unwrap();
}

/// Fills a database through the server's CSV import (`sku,name,reorder_level,on_hand`): the
/// way to fill SQLite, which has no `generate_series` to lay rows out by hand.
async fn seed_by_import(server: &Server, group: u32, count: u64) {
    let path = target_dir()
        .join("bench")
        .join(format!("seed-{group}-{}.csv", std::process::id()));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(file, "sku,name,reorder_level,on_hand").unwrap();
        for n in 1..=count {
            writeln!(file, "B{group}-{n},Bench {n},10,1000000000").unwrap();
        }
    }
    let report: Value = server
        .import_file(&path, "seed")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(
        report["summary"]["created"].as_u64(),
        Some(count),
        "seeding group {group}: {}",
        report["summary"]
    );
}

/// Ids of the products whose SKU starts with `prefix` (folded), in SKU-number order.
async fn ids_by_sku(database: &DatabaseConnection, prefix: &str) -> Vec<String> {
    let backend = database.get_database_backend();
    let rows = database
        .query_all_raw(Statement::from_string(
            backend,
            format!("SELECT id, sku_key FROM products WHERE sku_key LIKE '{prefix}%'"),
        ))
        .await
        .unwrap();
    let mut ids: Vec<(u64, String)> = rows
        .iter()
        .map(|row| {
            let id: uuid::Uuid = row.try_get("", "id").unwrap();
            let sku: String = row.try_get("", "sku_key").unwrap();
            let n = sku[prefix.len()..].parse().unwrap_or(0);
            (n, id.to_string())
        })
        .collect();
    ids.sort();
    ids.into_iter().map(|(_, id)| id).collect()
}

/// The id `from_end` places before the last product in id order (the server's page order).
async fn id_from_end(database: &DatabaseConnection, from_end: u64) -> String {
    let backend = database.get_database_backend();
    let row = database
        .query_one_raw(Statement::from_string(
            backend,
            format!("SELECT id FROM products ORDER BY id DESC LIMIT 1 OFFSET {from_end}"),
        ))
        .await
        .unwrap()
        .expect("enough products");
    row.try_get::<uuid::Uuid>("", "id").unwrap().to_string()
}

fn graphql_body(query: &str, variables: Value) -> String {
    json!({ "query": query, "variables": variables }).to_string()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A product with 20 lots (different expiry dates, a few without) spread over `MAIN` and two
/// more locations, with enough units in each for any bounded run. Returns its id.
async fn seed_lots(server: &Server) -> String {
    let product = server.create_product("Lots", "LOTS-1", 0).await;
    let main = server
        .call("{ locationByCode(code: \"MAIN\") { id } }", json!({}))
        .await["locationByCode"]["id"]
        .clone();
    let mut locations = vec![main];
    for (code, priority) in [("EAST", 1), ("WEST", 2)] {
        let created = server
            .call(
                "mutation($input: CreateLocationInput!) { createLocation(input: $input) { id } }",
                json!({ "input": { "code": code, "name": code, "priority": priority } }),
            )
            .await;
        locations.push(created["createLocation"]["id"].clone());
    }
    let today = chrono::Utc::now().date_naive();
    for lot in 0..20_i64 {
        let expires_on =
            (lot % 7 != 6).then(|| (today + chrono::Duration::days(30 + lot * 3)).to_string());
        server
            .call(
                "mutation($id: ID!, $location: ID!, $lot: LotInput!) { addStock(id: $id, quantity: 100000000, locationId: $location, lot: $lot) { newStock } }",
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

/// The database a run works on, and how to reach it.
struct Database {
    url: String,
    connection: DatabaseConnection,
    /// The PostgreSQL database to drop at the end.
    postgres_name: Option<String>,
    _sqlite_folder: Option<tempfile::TempDir>,
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|arg| arg == "--subscriber-driver") {
        subscriber_driver().await;
        return;
    }
    let options = options();
    let seconds = Duration::from_secs(options.seconds);
    let postgres = options.backend == Backend::Postgres;
    let admin = if postgres {
        Some(
            sea_orm::Database::connect(format!("{}/postgres", options.server))
                .await
                .expect("a PostgreSQL server (set BENCH_DATABASE_URL)"),
        )
    } else {
        None
    };
    let (url, postgres_name, sqlite_folder) = match &admin {
        Some(admin) => {
            let name = format!("stockroom_bench_{}", uuid::Uuid::new_v4().simple());
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .unwrap();
            (format!("{}/{name}", options.server), Some(name), None)
        }
        None => {
            let folder = tempfile::tempdir().unwrap();
            let url = format!(
                "sqlite://{}?mode=rwc",
                folder.path().join("bench.db").display()
            );
            (url, None, Some(folder))
        }
    };
    println!(
        "benchmark database {url}; {CLIENTS} clients; {}s per phase; server: {}",
        options.seconds,
        env!("CARGO_BIN_EXE_stockroom")
    );

    // Seeding SQLite goes through one long import: give requests ten minutes.
    let server = Server::start(&url, &["--request-timeout", "10m"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = server.rss_mb();
    println!("idle RSS {idle_rss:.1} MB (the server process alone; goal <= 30 MB)");
    let database = Database {
        connection: sea_orm::Database::connect(&url).await.unwrap(),
        url,
        postgres_name,
        _sqlite_folder: sqlite_folder,
    };

    // The data: 10,000 spread products, 200,000 for deep pages, one hot product.
    if postgres {
        seed_postgres(
            &database.connection,
            &[(0, 1, SPREAD_PRODUCTS), (1, 1, DEEP_PRODUCTS)],
        )
        .await;
    } else {
        seed_by_import(&server, 0, SPREAD_PRODUCTS).await;
        seed_by_import(&server, 1, DEEP_PRODUCTS).await;
    }
    let hot = server.create_product("Hot", "HOT-1", 2_000_000_000).await;
    let catalog = Catalog {
        spread: Arc::new(ids_by_sku(&database.connection, "b0-").await),
        deep_cursor_id: id_from_end(&database.connection, 60).await,
    };
    assert_eq!(catalog.spread.len() as u64, SPREAD_PRODUCTS);
    if postgres {
        // pgbench names products by seeded id: check that those are the ones driven.
        assert_eq!(catalog.spread[41], seeded_id(0, 42));
    }

    let mut report = Report::default();
    let run = |scenario: &str| options.only.as_deref().is_none_or(|only| only == scenario);
    let pg = |script: &str, defines: &[(&str, &str)], protocol: Protocol| {
        postgres.then(|| pgbench(&database.url, script, options.seconds, defines, protocol))
    };

    // hot_reduce: one product, 64 clients reducing it by 1.
    if run("hot_reduce") {
        let body = graphql_body(REDUCE_ONE, json!({ "id": hot }));
        let batches_before = (
            server.metric("stockroom_reduce_batch_size_sum").await,
            server.metric("stockroom_reduce_batch_size_count").await,
        );
        let watch = Watch::start(&server);
        let load = drive(&server, CLIENTS, seconds, move |_| body.clone()).await;
        let watched = watch.end().await;
        let batched = server.metric("stockroom_reduce_batch_size_sum").await - batches_before.0;
        let batches = server.metric("stockroom_reduce_batch_size_count").await - batches_before.1;
        let mean_batch = if batches > 0.0 {
            batched / batches
        } else {
            1.0
        };
        let k = mean_batch.round().max(1.0) as u64;
        let note = format!("mean reduction batch {mean_batch:.1}");
        let parity = pg(
            batch_transaction(),
            &[("hot", &hot), ("k", &k.to_string())],
            Protocol::Extended,
        )
        .map(|tps| Reference {
            per_second: tps * k as f64,
            what: format!(
                "pgbench: {k} units per transaction (the mean batch), {k} movements and a NOTIFY; units/s"
            ),
        });
        let mut parity_row = row("hot_reduce", &load, parity.as_ref(), ">= 1.0", &watched);
        parity_row["note"] = json!(note);
        report.add(parity_row);
        if postgres {
            let update = Reference {
                per_second: pg(
                    "UPDATE products SET stock = stock - 1 WHERE id = :hot AND stock >= 1;\n",
                    &[("hot", &hot)],
                    Protocol::Prepared,
                )
                .unwrap(),
                what: "pgbench -M prepared: one guarded UPDATE per unit, no ledger".into(),
            };
            let mut update_row = row(
                "hot_reduce_vs_update",
                &load,
                Some(&update),
                "report",
                &watched,
            );
            update_row["note"] = json!(note);
            report.add(update_row);
            let per_unit = Reference {
                per_second: pg(
                    &reduce_transaction(":hot"),
                    &[("hot", &hot)],
                    Protocol::Extended,
                )
                .unwrap(),
                what: "pgbench: lock, update and one movement per unit, one transaction each"
                    .into(),
            };
            let mut per_unit_row = row(
                "hot_reduce_vs_txn",
                &load,
                Some(&per_unit),
                "report",
                &watched,
            );
            per_unit_row["note"] = json!(note);
            report.add(per_unit_row);
        }
    }

    // spread_reduce: random products among 10,000.
    if run("spread_reduce") {
        let ids = catalog.spread.clone();
        let watch = Watch::start(&server);
        let load = drive(&server, CLIENTS, seconds, move |step| {
            graphql_body(
                REDUCE_ONE,
                json!({ "id": ids[(step % SPREAD_PRODUCTS) as usize] }),
            )
        })
        .await;
        let watched = watch.end().await;
        let reference = pg(
            &format!(
                "\\set n random(1, {SPREAD_PRODUCTS})\n{}",
                reduce_transaction(&seeded_id_sql(0))
            ),
            &[],
            Protocol::Extended,
        )
        .map(|tps| Reference {
            per_second: tps,
            what: "pgbench: lock, update and one movement of a random product per transaction"
                .into(),
        });
        report.add(row(
            "spread_reduce",
            &load,
            reference.as_ref(),
            ">= 0.8",
            &watched,
        ));
    }

    // fefo_reduce: one product whose stock sits in 20 lots over 3 locations; every reduction
    // picks its lot first-expiring first.
    if run("fefo_reduce") {
        let lots_product = seed_lots(&server).await;
        let body = graphql_body(REDUCE_ONE, json!({ "id": lots_product }));
        let watch = Watch::start(&server);
        let load = drive(&server, CLIENTS, seconds, move |_| body.clone()).await;
        let watched = watch.end().await;
        let reference = pg(
            &reduce_transaction(":hot"),
            &[("hot", &lots_product)],
            Protocol::Extended,
        )
        .map(|tps| Reference {
            per_second: tps,
            what: "pgbench: lock, update and one movement per unit on the product row".into(),
        });
        report.add(row(
            "fefo_reduce",
            &load,
            reference.as_ref(),
            "report",
            &watched,
        ));
    }

    // bulk_sync: one syncStock (over REST) of 10,000 counts, one per spread product; three
    // calls, each setting new counts so that every row applies.
    if run("bulk_sync") {
        report.add(bulk_sync(&server, &database, options.seconds, postgres).await);
    }

    // csv_import: 10,000- and 100,000-row files through POST /imports/inventory.
    if run("csv_import") {
        for rows in [10_000, 100_000] {
            report.add(csv_import(&server, rows).await);
        }
    }

    // read_by_id: random products among 10,000, with the read cache and without it.
    if run("read_by_id") {
        let reference = pg(
            &format!(
                "\\set n random(1, {SPREAD_PRODUCTS})\nSELECT id, name, sku, stock, reserved, reorder_level, version, created_at, updated_at, deleted_at FROM products WHERE id = {};\n",
                seeded_id_sql(0)
            ),
            &[],
            Protocol::Prepared,
        )
        .map(|tps| Reference {
            per_second: tps,
            what: "pgbench -M prepared: the primary-key SELECT of a random product".into(),
        });
        let uncached = Server::start(&database.url, &["--cache-capacity", "0"]).await;
        for (scenario, target, goal) in [
            ("read_by_id", &server, ">= 1.0"),
            ("read_by_id_cache_off", &uncached, "report"),
        ] {
            let ids = catalog.spread.clone();
            let reads = move |step: u64| {
                let id = &ids[(step.wrapping_mul(7919) % SPREAD_PRODUCTS) as usize];
                graphql_body(PRODUCT_BY_ID, json!({ "id": id }))
            };
            // Once over every product first, so that the cached run measures a warm cache.
            drive(target, CLIENTS, Duration::from_secs(2), reads.clone()).await;
            let watch = Watch::start(target);
            let load = drive(target, CLIENTS, seconds, reads).await;
            let watched = watch.end().await;
            report.add(row(scenario, &load, reference.as_ref(), goal, &watched));
        }
        drop(uncached);
    }

    // deep_page: a page at the end of 210,000 products against the first page.
    if run("deep_page") {
        report.add(deep_page(&server, &catalog.deep_cursor_id, seconds).await);
    }

    // catalog_2m: reads on 10,000 and then 2,000,000 products, on a database of its own.
    if run("catalog_2m") {
        match &admin {
            Some(admin) => {
                for catalog_row in catalog_2m(admin, &options.server, seconds).await {
                    report.add(catalog_row);
                }
            }
            None => println!(
                "catalog_2m runs on PostgreSQL only (it loads its rows with generate_series)"
            ),
        }
    }

    // outbox: hot_reduce and spread_reduce with and without the outbox, and how fast events
    // reach RabbitMQ and a webhook receiver. On a database of its own, so no other server's
    // relay takes its events.
    if run("outbox") {
        match &admin {
            Some(admin) => {
                for outbox_row in outbox(admin, &options.server, seconds).await {
                    report.add(outbox_row);
                }
            }
            None => println!("outbox runs on PostgreSQL only (its relay is PostgreSQL's)"),
        }
    }

    // subscribers: 5,000 WebSocket stockChanged subscribers in another process, 100 committed
    // changes a second.
    if run("subscribers") {
        report.add(subscribers(&server, seconds).await);
    }

    std::fs::create_dir_all(target_dir().join("bench")).unwrap();
    let output = target_dir()
        .join("bench")
        .join(format!("load-{}.json", options.backend.name()));
    let document = json!({
        "database": options.backend.name(),
        "idle_rss_mb": idle_rss,
        "clients": CLIENTS,
        "seconds_per_phase": options.seconds,
        "scenarios": report.rows,
    });
    std::fs::write(&output, serde_json::to_string_pretty(&document).unwrap()).unwrap();
    println!("wrote {}", output.display());

    drop(server);
    drop(database.connection);
    if let (Some(admin), Some(name)) = (&admin, &database.postgres_name) {
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .ok();
    }
}

/// The first page of the catalogue and its last page, `LATENCY_CLIENTS` clients each.
async fn deep_page(server: &Arc<Server>, deep_cursor_id: &str, seconds: Duration) -> Value {
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("product:{deep_cursor_id}"));
    let page = "query($after: String) { products(first: 50, after: $after) { edges { cursor node { id sku stock status } } pageInfo { hasNextPage endCursor } } }";
    let half = seconds / 2;
    let first = graphql_body(page, json!({ "after": null }));
    let deep = graphql_body(page, json!({ "after": cursor }));
    let first_load = drive(server, LATENCY_CLIENTS, half, move |_| first.clone()).await;
    let watch = Watch::start(server);
    let deep_load = drive(server, LATENCY_CLIENTS, half, move |_| deep.clone()).await;
    let watched = watch.end().await;
    let mut deep_row = row(
        "deep_page",
        &deep_load,
        None,
        "p50 <= 1.2x the first page's",
        &watched,
    );
    deep_row["ratio"] = json!(deep_load.p50_ms() / first_load.p50_ms());
    deep_row["note"] = json!(format!(
        "ratio = p50 over the first page's p50 ({:.2} ms, {} ok, {} failed; {LATENCY_CLIENTS} clients)",
        first_load.p50_ms(),
        first_load.successes,
        first_load.failures
    ));
    deep_row
}

/// Rows of one bulk sync.
const SYNC_ROWS: u64 = SPREAD_PRODUCTS;

async fn bulk_sync(
    server: &Arc<Server>,
    database: &Database,
    seconds: u64,
    postgres: bool,
) -> Value {
    let url = format!("{}/products/bulk-update", server.base);
    let watch = Watch::start(server);
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
    let watched = watch.end().await;
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
    let reference = postgres.then(|| {
        pgbench(
            &database.url,
            script,
            seconds.min(8),
            &[],
            Protocol::Extended,
        ) * SYNC_ROWS as f64
    });
    let rows_per_second = applied_rows as f64 / busy.as_secs_f64().max(f64::EPSILON);
    json!({
        "scenario": "bulk_sync",
        "unit": "rows/s",
        "successes": calls - failures,
        "failures": failures,
        "requests_per_second": rows_per_second,
        "p50_ms": latency.value_at_quantile(0.5) as f64 / 1000.0,
        "p99_ms": latency.value_at_quantile(0.99) as f64 / 1000.0,
        "reference_per_second": reference,
        "reference": "pgbench: one set-based SQL transaction of the same row updates and ledger inserts; rows/s",
        "ratio": reference.map(|reference| rows_per_second / reference),
        "goal": ">= 0.5",
        "peak_rss_mb": watched.peak_rss_mb,
        "cpu_percent": watched.cpu_percent,
        "note": format!("{calls} calls of {SYNC_ROWS} rows; latency is per call"),
    })
}

async fn csv_import(server: &Arc<Server>, rows: u64) -> Value {
    // A file of counts for the deep products, written to disk and streamed from there.
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
    let before = server.rss_mb();
    let watch = Watch::start(server);
    let began = Instant::now();
    let response = server.import_file(&path, "bench").await;
    let elapsed = began.elapsed();
    let watched = watch.end().await;
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
        "successes": u64::from(updated == rows),
        "failures": u64::from(updated != rows),
        "requests_per_second": rows_per_second,
        "p50_ms": elapsed.as_secs_f64() * 1000.0,
        "p99_ms": elapsed.as_secs_f64() * 1000.0,
        "reference_per_second": null,
        "ratio": null,
        "goal": "peak RSS does not grow with the file",
        "peak_rss_mb": watched.peak_rss_mb,
        "cpu_percent": watched.cpu_percent,
        "note": format!("{updated} of {rows} rows updated, {:.1} MB file, server RSS before {before:.1} MB, peak {:.1} MB", bytes as f64 / 1e6, watched.peak_rss_mb),
    })
}

/// A request body for each step of a load loop.
type BodyOf = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// The reads `catalog_2m` measures, each as (name, body for a step).
fn catalog_reads(group: u32, products: u64, deep_cursor_id: &str) -> Vec<(&'static str, BodyOf)> {
    let pick = move |step: u64| 1 + step.wrapping_mul(2_654_435_761) % products;
    let search = "query($search: String!) { products(first: 20, search: $search) { edges { node { id sku stock } } } }";
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("product:{deep_cursor_id}"));
    vec![
        (
            "product",
            Arc::new(move |step| {
                graphql_body(PRODUCT_BY_ID, json!({ "id": seeded_id(group, pick(step)) }))
            }),
        ),
        (
            "productBySku",
            Arc::new(move |step| {
                graphql_body(
                    "query($sku: String!) { productBySku(sku: $sku) { id name stock status } }",
                    json!({ "sku": format!("b{group}-{}", pick(step)) }),
                )
            }),
        ),
        (
            "search_name",
            // A four-digit fragment of the names ("Bench 14711" and the like; the seeded
            // names differ only in their numbers).
            Arc::new(move |step| {
                graphql_body(
                    search,
                    json!({ "search": format!("{}", 1000 + step % 9000) }),
                )
            }),
        ),
        (
            "search_sku_prefix",
            Arc::new(move |step| {
                graphql_body(
                    search,
                    json!({ "search": format!("B{group}-{}", 1000 + step % 9000) }),
                )
            }),
        ),
        (
            "deep_page",
            Arc::new(move |_| {
                graphql_body(
                    "query($after: String) { products(first: 50, after: $after) { edges { node { id sku stock } } } }",
                    json!({ "after": cursor }),
                )
            }),
        ),
    ]
}

/// `catalog_2m`: the reads of a catalogue of 10,000 products, then of 2,000,000 (loaded with
/// `generate_series`, straight into the database), on one server; each read's p50 against its
/// p50 on 10,000, and the plans PostgreSQL chose for the searches.
async fn catalog_2m(admin: &DatabaseConnection, server_url: &str, seconds: Duration) -> Vec<Value> {
    const GROUP: u32 = 2;
    let name = format!("stockroom_bench_catalog_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let url = format!("{server_url}/{name}");
    let server = Server::start(&url, &[]).await;
    let database = sea_orm::Database::connect(&url).await.unwrap();
    let phase = seconds / 2;
    let mut small = Vec::new();
    let mut rows = Vec::new();
    for products in [SPREAD_PRODUCTS, CATALOG_PRODUCTS] {
        let loading = Instant::now();
        let first = if products == SPREAD_PRODUCTS {
            1
        } else {
            SPREAD_PRODUCTS + 1
        };
        seed_postgres(&database, &[(GROUP, first, products)]).await;
        println!(
            "catalog_2m: {products} products in the database (loaded in {:.0} s)",
            loading.elapsed().as_secs_f64()
        );
        let deep_cursor_id = id_from_end(&database, 60).await;
        // Each read alone (one client: its latency) and under load (8 clients).
        for clients in [1, LATENCY_CLIENTS] {
            for (read, body) in catalog_reads(GROUP, products, &deep_cursor_id) {
                let body = body.clone();
                let watch = Watch::start(&server);
                let load = drive(&server, clients, phase, move |step| body(step)).await;
                let watched = watch.end().await;
                if products == SPREAD_PRODUCTS {
                    small.push(load.p50_ms());
                    continue;
                }
                let small_p50 = small[rows.len()];
                let search = read.starts_with("search");
                let mut read_row = row(
                    &format!("catalog_2m_{read}_{clients}c"),
                    &load,
                    None,
                    if search {
                        "p50 <= 2x on 10,000 products; p99 <= 50 ms"
                    } else {
                        "p50 <= 2x on 10,000 products"
                    },
                    &watched,
                );
                read_row["ratio"] = json!(load.p50_ms() / small_p50);
                read_row["note"] = json!(format!(
                    "ratio = p50 over its p50 on 10,000 products ({small_p50:.2} ms); {clients} client(s)"
                ));
                rows.push(read_row);
            }
        }
    }
    // The plans of the two searches as the server sends them.
    for fragment in ["%4711%", "%b2-4711%"] {
        let plan = database
            .query_all_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM products WHERE deleted_at IS NULL \
                 AND (name_key LIKE $1 ESCAPE '\\' OR sku_key LIKE $1 ESCAPE '\\') ORDER BY id LIMIT 21",
                [fragment.into()],
            ))
            .await
            .unwrap();
        println!("EXPLAIN of a search for {fragment}:");
        for line in plan {
            println!("    {}", line.try_get::<String>("", "QUERY PLAN").unwrap());
        }
    }
    drop(server);
    drop(database);
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .ok();
    rows
}

/// `--subscriber-driver WS_URL PRODUCT COUNT`: the subscribers' side of `subscribers`, run as
/// a process of its own. Opens COUNT `stockChanged` subscriptions to PRODUCT, prints
/// `connected N`, receives until a line arrives on standard input, then prints one JSON line
/// with the deliveries and their commit-to-client latency.
async fn subscriber_driver() {
    let args: Vec<String> = std::env::args()
        .skip_while(|arg| arg != "--subscriber-driver")
        .skip(1)
        .collect();
    let (url, product, count) = (
        args[0].clone(),
        args[1].clone(),
        args[2].parse::<usize>().unwrap(),
    );
    let delivered = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let subscription = json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription($ids: [ID!]) { stockChanged(productIds: $ids) { createdAt } }",
        "variables": { "ids": [product] } } })
    .to_string();
    let clients: Vec<_> = (0..count)
        .map(|index| {
            let (url, subscription) = (url.clone(), subscription.clone());
            let (delivered, connected, stop) = (delivered.clone(), connected.clone(), stop.clone());
            tokio::spawn(async move {
                // Stagger the handshakes a little.
                tokio::time::sleep(Duration::from_micros(200 * index as u64)).await;
                let mut request = url.into_client_request().unwrap();
                request.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    "graphql-transport-ws".parse().unwrap(),
                );
                let config = WebSocketConfig::default()
                    .read_buffer_size(8 * 1024)
                    .write_buffer_size(4 * 1024);
                let Ok((mut socket, _)) =
                    tokio_tungstenite::connect_async_with_config(request, Some(config), false)
                        .await
                else {
                    return subscriber_histogram();
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
                        latency.saturating_record(micros.max(1) as u64);
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latency
            })
        })
        .collect();
    let connect_deadline = Instant::now() + Duration::from_secs(60);
    while (connected.load(Ordering::Relaxed) as usize) < count && Instant::now() < connect_deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("connected {}", connected.load(Ordering::Relaxed));
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await
        .ok();
    stop.store(true, Ordering::Relaxed);
    let mut latency = subscriber_histogram();
    for client in clients {
        latency.add(client.await.unwrap()).unwrap();
    }
    println!(
        "{}",
        json!({
            "delivered": delivered.load(Ordering::Relaxed),
            "p50_ms": latency.value_at_quantile(0.5) as f64 / 1000.0,
            "p99_ms": latency.value_at_quantile(0.99) as f64 / 1000.0,
            "max_ms": latency.max() as f64 / 1000.0,
        })
    );
}

/// 5,000 subscribers driven by another process (this executable as `--subscriber-driver`),
/// 100 changes a second committed from here.
async fn subscribers(server: &Arc<Server>, seconds: Duration) -> Value {
    let product = server
        .create_product("Watched", "SUB-1", 2_000_000_000)
        .await;
    let mut driver = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--subscriber-driver",
            &server.ws,
            &product,
            &SUBSCRIBERS.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the subscriber driver starts");
    let mut driver_out = BufReader::new(driver.stdout.take().unwrap()).lines();
    let mut driver_in = driver.stdin.take().unwrap();
    let watch = Watch::start(server);
    let subscribed: u64 = tokio::time::timeout(Duration::from_secs(90), driver_out.next_line())
        .await
        .ok()
        .and_then(|line| line.ok().flatten())
        .and_then(|line| line.strip_prefix("connected ")?.parse().ok())
        .unwrap_or(0);
    let connected_rss = server.rss_mb();
    // Every subscriber sends the same selection: one shared execution serves them all.
    let executions = server.metric("stockroom_subscription_executions").await;

    // The changes: one every 10 ms, each on its own task so that a slow answer does not hold
    // back the next; bounded by the phase's length.
    let body = graphql_body(REDUCE_ONE, json!({ "id": product }));
    let committed = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / CHANGES_PER_SECOND));
    let planned = CHANGES_PER_SECOND * seconds.as_secs();
    let started = Instant::now();
    let mut changes = Vec::new();
    for _ in 0..planned {
        tick.tick().await;
        let (server, body, committed) = (server.clone(), body.clone(), committed.clone());
        changes.push(tokio::spawn(async move {
            if server.post(body).await {
                committed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for change in changes {
        change.await.ok();
    }
    let change_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await; // let deliveries drain
    driver_in.write_all(b"stop\n").await.ok();
    let result: Value = tokio::time::timeout(Duration::from_secs(30), driver_out.next_line())
        .await
        .ok()
        .and_then(|line| line.ok().flatten())
        .and_then(|line| serde_json::from_str(&line).ok())
        .unwrap_or(Value::Null);
    let watched = watch.end().await;
    driver.kill().await.ok();
    let committed = committed.load(Ordering::Relaxed);
    let rate = committed as f64 / change_seconds;
    let expected = committed * subscribed;
    let got = result["delivered"].as_u64().unwrap_or(0);
    json!({
        "scenario": "subscribers",
        "unit": "changes/s",
        "subscribers": subscribed,
        "successes": committed,
        "failures": planned - committed,
        "expected_deliveries": expected,
        "deliveries": got,
        "requests_per_second": rate,
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "goal": "all delivered, commit->client p99 <= 100 ms at 100 changes/s, server RSS <= 150 MB",
        "peak_rss_mb": watched.peak_rss_mb,
        "cpu_percent": watched.cpu_percent,
        "rss_after_connecting_mb": connected_rss,
        "executions": executions,
        "note": format!(
            "{got}/{expected} deliveries to {subscribed} subscribers (p50/p99 commit->client, max {} ms); {rate:.1} of {CHANGES_PER_SECOND} changes/s ({}); server RSS {connected_rss:.0} MB once connected, before any event; {executions} shared execution(s) served them",
            result["max_ms"],
            if rate >= CHANGES_PER_SECOND as f64 * 0.95 { "rate reached" } else { "rate NOT reached" }
        ),
    })
}

/// Deliveries one sink received: how many, when the last came, and the time from each
/// event's change to its arrival.
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

/// The outbox's cost and its delivery: two servers on one fresh database, one with
/// `--no-outbox` and one publishing to RabbitMQ (127.0.0.1:5672, an exchange of its own) with a
/// webhook to a receiver in this process; hot_reduce and spread_reduce on each, back to back.
async fn outbox(admin: &DatabaseConnection, server: &str, seconds: Duration) -> Vec<Value> {
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
    let without = Server::start(&database_url, &["--no-outbox"]).await;
    let database = sea_orm::Database::connect(&database_url).await.unwrap();
    seed_postgres(&database, &[(0, 1, SPREAD_PRODUCTS)]).await;
    let with = Server::start(
        &database_url,
        &[
            "--amqp-url",
            &amqp,
            "--amqp-exchange",
            &exchange,
            "--webhook-allow-private-targets",
        ],
    )
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

    let hot = without.create_product("Hot", "HOT-1", 2_000_000_000).await;
    let webhook = with
        .call(
            "mutation($url: String!) { createWebhook(input: { url: $url, eventTypes: [\"stock.changed\"] }) { id } }",
            json!({ "url": hook_url }),
        )
        .await["createWebhook"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let reduce_hot = graphql_body(REDUCE_ONE, json!({ "id": hot }));
    let hot_body = reduce_hot.clone();
    let hot_without = drive(&without, CLIENTS, seconds, move |_| hot_body.clone()).await;
    *broker.lock().unwrap() = Arrivals::new();
    *hooks.lock().unwrap() = Arrivals::new();
    let watch = Watch::start(&with);
    let started = Instant::now();
    let hot_body = reduce_hot.clone();
    let hot_with = drive(&with, CLIENTS, seconds, move |_| hot_body.clone()).await;
    let watched = watch.end().await;
    let committed = hot_with.successes;
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
    let delivery_row = |scenario: &str, arrivals: &Arrivals, note: String| {
        json!({
            "scenario": scenario,
            "unit": "events/s",
            "successes": arrivals.count,
            "failures": committed.saturating_sub(arrivals.count),
            "requests_per_second": rate(arrivals),
            "p50_ms": arrivals.latency.value_at_quantile(0.5) as f64 / 1000.0,
            "p99_ms": arrivals.latency.value_at_quantile(0.99) as f64 / 1000.0,
            "reference_per_second": null,
            "ratio": null,
            "goal": "report: events/s delivered, change->arrival p50/p99",
            "peak_rss_mb": watched.peak_rss_mb,
            "cpu_percent": watched.cpu_percent,
            "note": note,
        })
    };
    let amqp_row = {
        let arrivals = broker.lock().unwrap();
        delivery_row(
            "outbox_amqp",
            &arrivals,
            format!(
                "{} of {committed} committed reductions' events arrived (events/s from load start to last arrival; failed = not arrived)",
                arrivals.count
            ),
        )
    };
    let webhook_row = {
        let arrivals = hooks.lock().unwrap();
        delivery_row(
            "outbox_webhook",
            &arrivals,
            format!(
                "{} of {committed} events delivered by {} s after the load began (failed = not yet delivered); one product's deliveries go one at a time, in order",
                arrivals.count,
                started.elapsed().as_secs()
            ),
        )
    };
    // The webhook's backlog would load the next phases: delete it (and its deliveries).
    with.call(
        "mutation($id: ID!) { deleteWebhook(id: $id) { id } }",
        json!({ "id": webhook }),
    )
    .await;

    let spread = |step: u64| {
        graphql_body(
            REDUCE_ONE,
            json!({ "id": seeded_id(0, 1 + step % SPREAD_PRODUCTS) }),
        )
    };
    let spread_without = drive(&without, CLIENTS, seconds, spread).await;
    let watch = Watch::start(&with);
    let spread_with = drive(&with, CLIENTS, seconds, spread).await;
    let spread_watched = watch.end().await;

    let same_server = |load: &Load| Reference {
        per_second: load.per_second(),
        what: "the same server with --no-outbox, same run".into(),
    };
    let mut hot_row = row(
        "outbox_hot_reduce",
        &hot_with,
        Some(&same_server(&hot_without)),
        "report",
        &watched,
    );
    hot_row["note"] = json!(format!(
        "with RabbitMQ and one webhook attached; without the outbox {} ok, {} failed",
        hot_without.successes, hot_without.failures
    ));
    let mut spread_row = row(
        "outbox_spread_reduce",
        &spread_with,
        Some(&same_server(&spread_without)),
        "report",
        &spread_watched,
    );
    spread_row["note"] = json!(format!(
        "with RabbitMQ attached; without the outbox {} ok, {} failed",
        spread_without.successes, spread_without.failures
    ));

    drop((with, without));
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
