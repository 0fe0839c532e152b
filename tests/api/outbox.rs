//! Events leaving the process: the outbox, the RabbitMQ relay and webhooks, checked from the
//! outside with a real broker (RabbitMQ on 127.0.0.1:5672) and real HTTP receivers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::helpers::{
    Backend, TestApp, assert_error, assert_no_errors, create_postgres_database, fresh_database,
    id_of, spawn_app_with, start_process,
};

on_both_backends!(
    backend:
    a_rolled_back_change_sends_nothing_and_a_committed_one_exactly_its_events,
    webhook_targets_on_internal_addresses_are_refused_and_nothing_is_created,
    every_event_survives_a_kill_minus_nine_under_load,
    a_broker_away_for_twenty_seconds_loses_nothing_and_the_lag_shows_it,
    a_broker_that_stops_answering_is_given_up_and_the_relay_goes_on,
    deleting_webhooks_never_fails_the_changes_committing_meanwhile,
    a_deleted_product_stays_silent,
    an_answer_with_a_nul_byte_is_recorded_once,
);

/// The broker every test uses.
fn amqp_url() -> String {
    std::env::var("STOCKROOM_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Events one consumer received from its exchange, in arrival order.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Value>>>);

impl Received {
    fn all(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }

    fn push(&self, event: Value) {
        self.0.lock().unwrap().push(event);
    }

    /// Waits until `check` holds for what arrived (or panics after `limit`).
    async fn wait_for(&self, what: &str, limit: Duration, check: impl Fn(&[Value]) -> bool) {
        let started = Instant::now();
        while !check(&self.all()) {
            assert!(
                started.elapsed() < limit,
                "waited {limit:?} for {what}; received {} events",
                self.all().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until nothing new arrived for `quiet`.
    async fn settle(&self, quiet: Duration) {
        let mut count = self.all().len();
        loop {
            tokio::time::sleep(quiet).await;
            let now = self.all().len();
            if now == count {
                return;
            }
            count = now;
        }
    }
}

/// A queue bound to every routing key of `exchange`.
struct Consumer {
    received: Received,
    connection: Connection,
    exchange: String,
}

impl Consumer {
    async fn bind(exchange: &str) -> Consumer {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("RabbitMQ on 127.0.0.1:5672 (set STOCKROOM_TEST_AMQP to use another)");
        let channel = connection.create_channel().await.unwrap();
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
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
                exchange.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut deliveries = channel
            .basic_consume(
                queue.name().clone(),
                "outbox-test".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let received = Received::default();
        let sink = received.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = deliveries.next().await {
                let mut event: Value = serde_json::from_slice(&delivery.data).unwrap();
                event["_routingKey"] = json!(delivery.routing_key.as_str());
                event["_persistent"] = json!(delivery.properties.delivery_mode() == &Some(2));
                sink.push(event);
            }
        });
        Consumer {
            received,
            connection,
            exchange: exchange.to_owned(),
        }
    }

    async fn delete(self) {
        if let Ok(channel) = self.connection.create_channel().await {
            let _ = channel
                .exchange_delete(
                    self.exchange.as_str().into(),
                    ExchangeDeleteOptions::default(),
                )
                .await;
        }
        let _ = self.connection.close(0, "done".into()).await;
    }
}

fn unique_exchange() -> String {
    format!("stockroom.test.{}", Uuid::new_v4().simple())
}

/// Per product: the sequences received (each event once, by id), sorted.
fn sequences(events: &[Value]) -> BTreeMap<String, Vec<i64>> {
    let mut seen = BTreeSet::new();
    let mut by_product: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for event in events {
        if seen.insert(event["id"].as_str().unwrap().to_owned()) {
            by_product
                .entry(event["productId"].as_str().unwrap().to_owned())
                .or_default()
                .push(event["sequence"].as_i64().unwrap());
        }
    }
    for list in by_product.values_mut() {
        list.sort_unstable();
    }
    by_product
}

/// Every product's sequences are 1..=n with none missing.
fn assert_sequences_complete(events: &[Value]) {
    for (product, list) in sequences(events) {
        let expected: Vec<i64> = (1..=list.len() as i64).collect();
        assert_eq!(list, expected, "product {product}'s sequences have a gap");
    }
}

/// The movement ids the events carry.
fn movement_ids(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter_map(|event| event["data"]["movement"]["id"].as_str())
        .map(str::to_owned)
        .collect()
}

/// Every movement id in the ledgers of `products`.
async fn ledger_ids(app: &TestApp, products: &[String]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for product in products {
        for movement in app.movements(product).await {
            ids.insert(movement["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

async fn a_rolled_back_change_sends_nothing_and_a_committed_one_exactly_its_events(
    backend: Backend,
) {
    let exchange = unique_exchange();
    let url = amqp_url();
    let app = spawn_app_with(backend, &["--amqp-url", &url, "--amqp-exchange", &exchange]).await;
    let consumer = Consumer::bind(&exchange).await;
    let product = id_of(&app.create_product("Outboxed", "OUT-1", 10, 2).await);
    let other = id_of(&app.create_product("Other", "OUT-2", 5, 0).await);

    // Changes that fail, each after a write inside its transaction or before any.
    assert_error(&app.reduce_stock(&product, 11).await, "INSUFFICIENT_STOCK");
    let rolled_back = app
        .graphql(
            "mutation($input: SyncStockInput!) { syncStock(input: $input) { committed } }",
            json!({ "input": { "source": "outbox", "errorPolicy": "REJECT_EVERYTHING", "rows": [
                { "sku": "OUT-1", "delta": -1 },
                { "sku": "OUT-2", "delta": -1000 },
            ] } }),
        )
        .await;
    assert_no_errors(&rolled_back);
    assert_eq!(rolled_back["data"]["syncStock"]["committed"], false);
    let conflict = app
        .graphql(
            "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"X\" }, expectedVersion: 99) { id } }",
            json!({ "id": product }),
        )
        .await;
    assert_error(&conflict, "VERSION_CONFLICT");
    // A change that commits: 10 -> 1 crosses the reorder level (2) once.
    assert_no_errors(&app.reduce_stock(&product, 9).await);

    let received = &consumer.received;
    received
        .wait_for("four events", Duration::from_secs(15), |events| {
            events.len() >= 4
        })
        .await;
    received.settle(Duration::from_millis(800)).await;
    let events = received.all();
    let summary: Vec<(String, String, i64)> = events
        .iter()
        .map(|event| {
            (
                event["productId"].as_str().unwrap().to_owned(),
                event["type"].as_str().unwrap().to_owned(),
                event["sequence"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut expected = vec![
        (product.clone(), "product.created".to_owned(), 1),
        (other.clone(), "product.created".to_owned(), 1),
        (product.clone(), "stock.changed".to_owned(), 2),
        (product.clone(), "stock.low".to_owned(), 3),
    ];
    // `other` is created with 5 units and reorder level 0: no alert. Its creation and
    // `product`'s changes are unrelated, so compare as sets plus per-product order.
    let mut got = summary.clone();
    got.sort();
    expected.sort();
    assert_eq!(got.len(), 4, "{summary:?}");
    assert_eq!(got, expected, "{summary:?}");
    for event in &events {
        assert_eq!(event["_routingKey"], event["type"], "routed by type");
        assert_eq!(event["_persistent"], true, "persistent");
        assert_eq!(event["schemaVersion"], 1);
        assert!(event["occurredAt"].is_string());
    }
    let low = events
        .iter()
        .find(|event| event["type"] == "stock.low")
        .unwrap();
    assert_eq!(low["data"]["product"]["available"], 1);
    assert_eq!(low["data"]["previous"]["status"], "IN_STOCK");
    // The committed reduction's movement is the one the ledger holds.
    let change = events
        .iter()
        .find(|event| event["type"] == "stock.changed")
        .unwrap();
    assert_eq!(change["data"]["movement"]["delta"], -9);
    assert!(
        ledger_ids(&app, std::slice::from_ref(&product))
            .await
            .contains(change["data"]["movement"]["id"].as_str().unwrap())
    );
    consumer.delete().await;
}

async fn webhook_targets_on_internal_addresses_are_refused_and_nothing_is_created(
    backend: Backend,
) {
    let app = spawn_app_with(backend, &[]).await;
    for url in [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8080/hook",
        "http://192.168.0.10/hook",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let response = app
            .graphql(
                "mutation($url: String!) { createWebhook(input: { url: $url }) { id secret } }",
                json!({ "url": url }),
            )
            .await;
        assert_error(&response, "BAD_USER_INPUT");
        assert_eq!(
            response["errors"][0]["extensions"]["field"],
            json!(["input", "url"]),
            "{url}: {response:#}"
        );
    }
    let unknown_type = app
        .graphql(
            "mutation { createWebhook(input: { url: \"https://93.184.215.14/\", eventTypes: [\"stock.gone\"] }) { id } }",
            json!({}),
        )
        .await;
    assert_error(&unknown_type, "BAD_USER_INPUT");
    let listed = app.graphql("{ webhooks { id } }", json!({})).await;
    assert_eq!(listed["data"]["webhooks"], json!([]), "{listed:#}");

    // With the flag, the same targets are taken.
    let allowed = spawn_app_with(backend, &["--webhook-allow-private-targets"]).await;
    let created = allowed
        .graphql(
            "mutation { createWebhook(input: { url: \"http://localhost:9/hook\" }) { id secret webhook { enabled eventTypes } } }",
            json!({}),
        )
        .await;
    assert_no_errors(&created);
    assert!(
        created["data"]["createWebhook"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    let listed = allowed.graphql("{ webhooks { id url } }", json!({})).await;
    assert!(
        listed["data"]["webhooks"][0].get("secret").is_none(),
        "a listed webhook shows no secret"
    );
    let updated = allowed
        .graphql(
            "mutation($id: ID!) { updateWebhook(id: $id, input: { url: \"http://10.0.0.1/\" }) { url } }",
            json!({ "id": created["data"]["createWebhook"]["id"] }),
        )
        .await;
    assert_no_errors(&updated);
}

/// An HTTP receiver for webhooks that records every request and notices when the same event
/// is being delivered twice at once.
#[derive(Clone, Default)]
struct Receiver {
    received: Received,
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
    overlaps: Arc<Mutex<Vec<String>>>,
    delay: Duration,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    {
        let mut in_flight = receiver.in_flight.lock().unwrap();
        let count = in_flight.entry(id.clone()).or_default();
        *count += 1;
        if *count > 1 {
            receiver.overlaps.lock().unwrap().push(id.clone());
        }
    }
    if !receiver.delay.is_zero() {
        tokio::time::sleep(receiver.delay).await;
    }
    if let Ok(event) = serde_json::from_slice::<Value>(&body) {
        receiver.received.push(event);
    }
    *receiver.in_flight.lock().unwrap().get_mut(&id).unwrap() -= 1;
    StatusCode::NO_CONTENT
}

impl Receiver {
    async fn start(delay: Duration) -> (Receiver, String) {
        let receiver = Receiver {
            delay,
            ..Receiver::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (receiver, url)
    }
}

async fn create_webhook(app: &TestApp, url: &str) {
    let created = app
        .graphql(
            "mutation($url: String!) { createWebhook(input: { url: $url }) { id } }",
            json!({ "url": url }),
        )
        .await;
    assert_no_errors(&created);
}

/// Runs `workers` clients changing `products` until `stop` is set or `limit` changes each:
/// reductions of 1 and additions of 3, answers ignored (a killed server answers none).
fn load(
    app: &TestApp,
    products: &[String],
    workers: usize,
    limit: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|worker| {
            let app = app.clone_for_worker(&reqwest::Client::new());
            let products = products.to_vec();
            let stop = stop.clone();
            tokio::spawn(async move {
                for round in 0..limit {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let product = &products[(worker + round) % products.len()];
                    let (mutation, quantity) = if round % 3 == 0 {
                        ("addStock", 3)
                    } else {
                        ("reduceStock", 1)
                    };
                    let _ = app
                        .try_graphql(
                            &format!(
                                "mutation($id: ID!) {{ {mutation}(id: $id, quantity: {quantity}) {{ newStock }} }}"
                            ),
                            json!({ "id": product }),
                        )
                        .await;
                }
            })
        })
        .collect()
}

async fn every_event_survives_a_kill_minus_nine_under_load(backend: Backend) {
    let (database_url, _folder) = fresh_database(backend).await;
    let exchange = unique_exchange();
    let url = amqp_url();
    let args = [
        "--amqp-url",
        url.as_str(),
        "--amqp-exchange",
        exchange.as_str(),
        "--webhook-allow-private-targets",
        "--webhook-timeout",
        "1s",
        "--webhook-retry-schedule",
        "200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms",
    ];
    let mut server = start_process(&database_url, &args).await;
    let consumer = Consumer::bind(&exchange).await;
    let (receiver, hook_url) = Receiver::start(Duration::ZERO).await;
    let app = TestApp::client_for(&server.address, &database_url);
    create_webhook(&app, &hook_url).await;
    let mut products = Vec::new();
    for index in 0..4 {
        products.push(id_of(
            &app.create_product("Crash", &format!("CRASH-{index}"), 50, 20)
                .await,
        ));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&app, &products, 8, 10_000, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let restarted = start_process(&database_url, &args).await;
    let app = TestApp::client_for(&restarted.address, &database_url);
    // A little more load on the new process, then every committed change must be out.
    let stop = Arc::new(AtomicBool::new(false));
    for worker in load(&app, &products, 4, 20, stop) {
        worker.await.unwrap();
    }
    let ledger = ledger_ids(&app, &products).await;
    assert!(ledger.len() > products.len() * 5, "the load made changes");
    for (sink, received) in [
        ("RabbitMQ", &consumer.received),
        ("webhook", &receiver.received),
    ] {
        received
            .wait_for(
                &format!("every ledger movement on {sink}"),
                Duration::from_secs(60),
                |events| movement_ids(events).is_superset(&ledger),
            )
            .await;
        received.settle(Duration::from_millis(500)).await;
        let events = received.all();
        assert_eq!(
            movement_ids(&events),
            ledger,
            "{sink}: an event for a change that did not commit"
        );
        assert_sequences_complete(&events);
    }
    consumer.delete().await;
}

/// A TCP proxy in front of the broker that can be switched off (it drops every connection it
/// carries and refuses new ones) or told to stall the connections it carries (they stay open
/// and forward nothing, as a broker that stopped answering; new ones work).
struct Proxy {
    address: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<Carried>>>,
}

/// A connection the proxy carries: its task, and whether it is stalled.
type Carried = (tokio::task::AbortHandle, Arc<AtomicBool>);

/// Copies `from` to `to` until either closes; while `stalled`, holds what it read.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            address: listener.local_addr().unwrap(),
            up: Arc::new(AtomicBool::new(true)),
            connections: Arc::default(),
        };
        let up = proxy.up.clone();
        let connections = proxy.connections.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !up.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let stalled = Arc::new(AtomicBool::new(false));
                let flag = stalled.clone();
                let task = tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        let (in_read, in_write) = inbound.into_split();
                        let (out_read, out_write) = outbound.into_split();
                        tokio::join!(
                            forward(in_read, out_write, flag.clone()),
                            forward(out_read, in_write, flag),
                        );
                    }
                });
                connections
                    .lock()
                    .unwrap()
                    .push((task.abort_handle(), stalled));
            }
        });
        proxy
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for (connection, _) in self.connections.lock().unwrap().drain(..) {
                connection.abort();
            }
        }
    }

    /// The connections open now forward nothing more (and are never closed); new ones work.
    fn stall_open_connections(&self) {
        for (_, stalled) in self.connections.lock().unwrap().iter() {
            stalled.store(true, Ordering::SeqCst);
        }
    }
}

async fn lag_seconds(metrics: &str) -> f64 {
    let text = reqwest::get(format!("{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|line| line.starts_with("stockroom_outbox_lag_seconds "))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

async fn a_broker_away_for_twenty_seconds_loses_nothing_and_the_lag_shows_it(backend: Backend) {
    let (database_url, _folder) = fresh_database(backend).await;
    let exchange = unique_exchange();
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let proxied = amqp_url().replace("127.0.0.1:5672", &proxy.address.to_string());
    // The metrics listener needs a port of its own: take a free one.
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let server = start_process(
        &database_url,
        &[
            "--amqp-url",
            &proxied,
            "--amqp-exchange",
            &exchange,
            "--metrics-listen",
            &metrics_listen,
        ],
    )
    .await;
    let metrics = format!("http://{metrics_listen}");
    let consumer = Consumer::bind(&exchange).await;
    let app = TestApp::client_for(&server.address, &database_url);
    let mut products = Vec::new();
    for index in 0..3 {
        products.push(id_of(
            &app.create_product("Away", &format!("AWAY-{index}"), 1_000, 10)
                .await,
        ));
    }
    consumer
        .received
        .wait_for("the creations", Duration::from_secs(10), |events| {
            events.len() >= 3
        })
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&app, &products, 4, 100_000, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.set_up(false);
    let away = Instant::now();
    let mut highest_lag: f64 = 0.0;
    while away.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        highest_lag = highest_lag.max(lag_seconds(&metrics).await);
    }
    let received_while_away = consumer.received.all().len();
    proxy.set_up(true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    assert!(
        highest_lag >= 10.0,
        "the lag metric showed at most {highest_lag} s while the broker was away"
    );

    let ledger = ledger_ids(&app, &products).await;
    consumer
        .received
        .wait_for("the backlog", Duration::from_secs(60), |events| {
            movement_ids(events).is_superset(&ledger)
        })
        .await;
    consumer.received.settle(Duration::from_millis(500)).await;
    let events = consumer.received.all();
    assert!(
        events.len() > received_while_away,
        "nothing arrived after the broker came back"
    );
    assert_eq!(movement_ids(&events), ledger);
    assert_sequences_complete(&events);
    // Caught up: the lag falls back.
    let started = Instant::now();
    while lag_seconds(&metrics).await > 2.0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the lag stayed up after the relay caught up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    consumer.delete().await;
}

#[tokio::test]
async fn postgres_two_instances_deliver_every_event_and_never_the_same_one_at_once() {
    let database_url = create_postgres_database().await;
    let exchange = unique_exchange();
    let url = amqp_url();
    let args = [
        "--amqp-url",
        url.as_str(),
        "--amqp-exchange",
        exchange.as_str(),
        "--webhook-allow-private-targets",
    ];
    let first = start_process(&database_url, &args).await;
    let second = start_process(&database_url, &args).await;
    let consumer = Consumer::bind(&exchange).await;
    // A slow receiver widens the window in which two instances could send one event.
    let (receiver, hook_url) = Receiver::start(Duration::from_millis(5)).await;
    let one = TestApp::client_for(&first.address, &database_url);
    let two = TestApp::client_for(&second.address, &database_url);
    create_webhook(&one, &hook_url).await;
    let mut products = Vec::new();
    for index in 0..6 {
        products.push(id_of(
            &one.create_product("Twins", &format!("TWIN-{index}"), 1_000, 100)
                .await,
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = load(&one, &products, 4, 60, stop.clone());
    workers.extend(load(&two, &products, 4, 60, stop));
    for worker in workers {
        worker.await.unwrap();
    }
    let ledger = ledger_ids(&one, &products).await;
    for (sink, received) in [
        ("RabbitMQ", &consumer.received),
        ("webhook", &receiver.received),
    ] {
        received
            .wait_for(
                &format!("every movement on {sink}"),
                Duration::from_secs(60),
                |events| movement_ids(events).is_superset(&ledger),
            )
            .await;
        received.settle(Duration::from_millis(500)).await;
        let events = received.all();
        assert_eq!(movement_ids(&events), ledger, "{sink}");
        assert_sequences_complete(&events);
        let distinct: BTreeSet<&str> = events
            .iter()
            .map(|event| event["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            distinct.len(),
            events.len(),
            "{sink}: an event arrived twice"
        );
    }
    assert!(
        receiver.overlaps.lock().unwrap().is_empty(),
        "two instances sent the same webhook event at once"
    );
    consumer.delete().await;
}

async fn a_broker_that_stops_answering_is_given_up_and_the_relay_goes_on(backend: Backend) {
    let exchange = unique_exchange();
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let proxied = amqp_url().replace("127.0.0.1:5672", &proxy.address.to_string());
    let app = spawn_app_with(
        backend,
        &["--amqp-url", &proxied, "--amqp-exchange", &exchange],
    )
    .await;
    let consumer = Consumer::bind(&exchange).await;
    let product = id_of(&app.create_product("Silent", "SILENT-1", 100, 0).await);
    consumer
        .received
        .wait_for("the creation", Duration::from_secs(10), |events| {
            !events.is_empty()
        })
        .await;

    // The relay's connection goes silent: nothing it sends gets an answer, and it is never
    // closed. Changes made now must still reach the broker, over a new connection.
    proxy.stall_open_connections();
    for _ in 0..5 {
        assert_no_errors(&app.reduce_stock(&product, 1).await);
    }
    consumer
        .received
        .wait_for(
            "the changes after the stall",
            Duration::from_secs(45),
            |events| events.len() >= 6,
        )
        .await;
    assert_sequences_complete(&consumer.received.all());
    consumer.delete().await;
}

async fn deleting_webhooks_never_fails_the_changes_committing_meanwhile(backend: Backend) {
    let app = spawn_app_with(backend, &["--webhook-allow-private-targets"]).await;
    let (_receiver, hook_url) = Receiver::start(Duration::ZERO).await;
    let product = id_of(&app.create_product("Churn", "CHURN-1", 0, 0).await);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let app = app.clone_for_worker(&reqwest::Client::new());
            let product = product.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut failures = Vec::new();
                for _ in 0..2_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let response = app.add_stock(&product, 1).await;
                    if response.get("errors").is_some() {
                        failures.push(response);
                    }
                }
                failures
            })
        })
        .collect();
    for _ in 0..20 {
        let created = app
            .graphql(
                "mutation($url: String!) { createWebhook(input: { url: $url }) { id } }",
                json!({ "url": hook_url }),
            )
            .await;
        assert_no_errors(&created);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let deleted = app
            .graphql(
                "mutation($id: ID!) { deleteWebhook(id: $id) { id } }",
                json!({ "id": created["data"]["createWebhook"]["id"] }),
            )
            .await;
        assert_no_errors(&deleted);
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        let failures = writer.await.unwrap();
        assert!(failures.is_empty(), "writes failed: {:#}", failures[0]);
    }
}

async fn a_deleted_product_stays_silent(backend: Backend) {
    let exchange = unique_exchange();
    let url = amqp_url();
    let app = spawn_app_with(
        backend,
        &[
            "--amqp-url",
            &url,
            "--amqp-exchange",
            &exchange,
            "--reservation-sweep-interval",
            "200ms",
        ],
    )
    .await;
    let consumer = Consumer::bind(&exchange).await;
    let product = id_of(&app.create_product("Gone", "GONE-1", 10, 8).await);
    let reserved = app
        .graphql(
            "mutation($id: ID!) { reserveStock(productId: $id, quantity: 3, ttlSeconds: 1) { id } }",
            json!({ "id": product }),
        )
        .await;
    assert_no_errors(&reserved);
    let deleted = app
        .graphql(
            "mutation($id: ID!) { deleteProduct(id: $id) { id } }",
            json!({ "id": product }),
        )
        .await;
    assert_no_errors(&deleted);
    // The reservation runs out after the deletion; the sweep gives its units back quietly.
    tokio::time::sleep(Duration::from_secs(3)).await;
    consumer.received.settle(Duration::from_millis(500)).await;
    let types: Vec<String> = consumer
        .received
        .all()
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect();
    // Created (10 available, reorder level 8: in stock); reserved 3 (7 available: low);
    // deleted. Nothing after.
    assert_eq!(
        types,
        [
            "product.created",
            "stock.changed",
            "stock.low",
            "product.deleted"
        ],
        "{types:?}"
    );
    consumer.delete().await;
}

async fn an_answer_with_a_nul_byte_is_recorded_once(backend: Backend) {
    let app = spawn_app_with(backend, &["--webhook-allow-private-targets"]).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = requests.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                (StatusCode::OK, "o\0k")
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let created = app
        .graphql(
            "mutation($url: String!) { createWebhook(input: { url: $url, eventTypes: [\"product.created\"] }) { id } }",
            json!({ "url": url }),
        )
        .await;
    assert_no_errors(&created);
    let webhook = created["data"]["createWebhook"]["id"].clone();
    app.create_product("Nul", "NUL-1", 1, 0).await;
    let started = Instant::now();
    loop {
        let log = app
            .graphql(
                "query($id: ID!) { webhookDeliveries(webhookId: $id) { edges { node { status attempts lastResponse } } } }",
                json!({ "id": webhook }),
            )
            .await;
        assert_no_errors(&log);
        let node = &log["data"]["webhookDeliveries"]["edges"][0]["node"];
        if node["status"] == "SUCCEEDED" {
            assert_eq!(node["attempts"], 1);
            assert!(node["lastResponse"].as_str().unwrap().starts_with('o'));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never recorded: {log:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(requests.load(Ordering::SeqCst), 1, "sent more than once");
}
