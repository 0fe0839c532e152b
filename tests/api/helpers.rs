//! `spawn_app()` and typed client helpers shared by every integration test.
//!
//! Each test gets its own server on 127.0.0.1 port 0 and its own database: a SQLite file in a
//! temporary folder, or a new PostgreSQL database named `stockroom_test_<uuid>` on the server
//! from `postgres_server` (a running server, or a throwaway one started for the test run).
//! Logs are silent unless `TEST_LOG` is set.

use std::sync::LazyLock;

use clap::Parser;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use stockroom::auth::AuthSettings;
use stockroom::config::{Cli, LogFormat};
use stockroom::domain::Role;
use stockroom::service::Services;
use stockroom::startup::Application;
use tempfile::TempDir;
use uuid::Uuid;

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(TestApp)` once per backend, as `<name>::sqlite` and
/// `<name>::postgres` (so `cargo test sqlite` runs only the SQLite half). With `backend:`,
/// each gets the `Backend` and starts its own servers.
macro_rules! on_both_backends {
    (with_args $args:expr => $($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, &$args).await;
                    super::$test(app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Postgres, &$args).await;
                    super::$test(app).await;
                }
            }
        )+
    };
    (backend: $($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$test(crate::helpers::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$test(crate::helpers::Backend::Postgres).await;
                }
            }
        )+
    };
    (secured: $($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = crate::helpers::spawn_secured_app(crate::helpers::Backend::Sqlite).await;
                    super::$test(app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let app = crate::helpers::spawn_secured_app(crate::helpers::Backend::Postgres).await;
                    super::$test(app).await;
                }
            }
        )+
    };
    ($($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
                    super::$test(app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let app = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await;
                    super::$test(app).await;
                }
            }
        )+
    };
}

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        stockroom::telemetry::init(LogFormat::Pretty, "info", std::io::stdout);
    } else {
        stockroom::telemetry::init(LogFormat::Pretty, "info", std::io::sink);
    }
});

/// A running server and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// A pooled HTTP client.
    pub client: reqwest::Client,
    /// The server's services when it runs in this process, to look inside.
    in_process: Option<Services>,
    /// The database the server uses.
    pub database_url: String,
    /// The bearer token the helpers send, if any.
    pub token: Option<String>,
    /// `http://127.0.0.1:PORT` of `/metrics`, when the server was started with
    /// `--metrics-listen`.
    pub metrics_address: Option<String>,
    extra_args: Vec<String>,
    _sqlite_folder: Option<TempDir>,
}

/// Starts a server on a fresh database of `backend`, in open mode (every caller is admin).
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// The token secret of [`spawn_secured_app`].
pub const TEST_SECRET: &str = "a-test-secret-that-is-long-enough";

/// The secret, issuer and audience of [`spawn_secured_app`].
pub fn test_auth() -> AuthSettings {
    AuthSettings {
        secret: Some(TEST_SECRET.into()),
        issuer: Some("stockroom-tests".into()),
        audience: Some("stockroom".into()),
    }
}

/// Starts a server with authentication on (see [`test_auth`]).
pub async fn spawn_secured_app(backend: Backend) -> TestApp {
    let auth = test_auth();
    let args = [
        "--jwt-secret",
        TEST_SECRET,
        "--jwt-issuer",
        auth.issuer.as_deref().unwrap(),
        "--jwt-audience",
        auth.audience.as_deref().unwrap(),
    ];
    spawn_app_with(backend, &args).await
}

/// A bearer token from [`test_auth`]'s secret.
pub fn token(role: Role, subject: &str) -> String {
    stockroom::auth::mint(
        &test_auth(),
        role,
        subject,
        std::time::Duration::from_secs(600),
    )
    .expect("a token")
}

/// A fresh database of `backend`: its URL, and for SQLite the folder that holds the file (the
/// file goes when the folder is dropped).
pub async fn fresh_database(backend: Backend) -> (String, Option<TempDir>) {
    match backend {
        Backend::Sqlite => {
            let folder = tempfile::tempdir().expect("a temporary folder");
            let url = format!("sqlite://{}", folder.path().join("stockroom.db").display());
            (url, Some(folder))
        }
        Backend::Postgres => (create_postgres_database().await, None),
    }
}

/// Starts a server on a fresh database of `backend` with extra command line arguments.
pub async fn spawn_app_with(backend: Backend, args: &[&str]) -> TestApp {
    LazyLock::force(&TRACING);
    let (database_url, sqlite_folder) = fresh_database(backend).await;
    let mut app = start_server(&database_url, args).await;
    app._sqlite_folder = sqlite_folder;
    app.extra_args = args.iter().map(|arg| (*arg).to_owned()).collect();
    app
}

impl TestApp {
    /// Starts a second server on this one's database, as a second instance behind a load
    /// balancer would be.
    pub async fn spawn_another_instance(&self) -> TestApp {
        let args: Vec<&str> = self.extra_args.iter().map(String::as_str).collect();
        start_server(&self.database_url, &args).await
    }
}

async fn start_server(database_url: &str, args: &[&str]) -> TestApp {
    let base = [
        "stockroom",
        "--database-url",
        database_url,
        "--listen",
        "127.0.0.1:0",
    ];
    let cli = Cli::try_parse_from(base.iter().chain(args)).expect("valid test configuration");
    let application = Application::build(&cli.config)
        .await
        .expect("the application starts");
    let address = format!(
        "http://{}",
        application.local_addr().expect("a bound address")
    );
    let services = application.services().clone();
    let metrics_address = application
        .metrics_addr()
        .map(|address| format!("http://{}", address.expect("a bound metrics address")));
    tokio::spawn(application.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        in_process: Some(services),
        database_url: database_url.to_owned(),
        token: None,
        metrics_address,
        extra_args: Vec::new(),
        _sqlite_folder: None,
    }
}

/// A server running as its own process, as in production (killed when dropped).
pub struct ServerProcess {
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
}

/// Starts the `stockroom` binary on `database_url` (in open mode, on a free port) with extra
/// arguments, and waits until it listens.
pub async fn start_process(database_url: &str, args: &[&str]) -> ServerProcess {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stockroom"))
        .args([
            "serve",
            "--database-url",
            database_url,
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("STOCKROOM_JWT_SECRET")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the server starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(entry) = serde_json::from_str::<Value>(&line)
                && let Some(address) = entry["address"].as_str()
            {
                return format!("http://{address}");
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server listens");
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    ServerProcess { child, address }
}

/// Runs `stockroom verify` on `database_url`: its exit code and everything it printed.
pub async fn run_verify(database_url: &str) -> (i32, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_stockroom"))
        .args(["verify", "--database-url", database_url])
        .env_remove("DATABASE_URL")
        .output()
        .await
        .expect("stockroom verify runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

fn postgres_server_url() -> String {
    crate::postgres_server::server_url()
}

/// Creates a fresh, uniquely named PostgreSQL database and returns its URL.
pub async fn create_postgres_database() -> String {
    let server = postgres_server_url();
    let name = format!("stockroom_test_{}", Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(format!("{server}/postgres"))
        .await
        .unwrap_or_else(|error| {
            panic!(
                "PostgreSQL tests need a server at {server} (set STOCKROOM_TEST_POSTGRES, or run \
                 only the SQLite tests with `cargo test sqlite`): {error}"
            )
        });
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("CREATE DATABASE");
    admin.close().await.ok();
    format!("{server}/{name}")
}

impl TestApp {
    /// The same server, with the helpers sending `token`.
    pub fn with_token(&self, token: Option<String>) -> TestApp {
        TestApp {
            address: self.address.clone(),
            client: self.client.clone(),
            in_process: self.in_process.clone(),
            database_url: self.database_url.clone(),
            token,
            metrics_address: self.metrics_address.clone(),
            extra_args: self.extra_args.clone(),
            _sqlite_folder: None,
        }
    }

    /// The in-process server's services (e.g. to count subscribers).
    pub fn services(&self) -> &Services {
        self.in_process
            .as_ref()
            .expect("this server runs in another process")
    }

    /// A client for a server this test did not spawn in-process (a child process).
    pub fn client_for(address: &str, database_url: &str) -> TestApp {
        TestApp {
            address: address.to_owned(),
            client: reqwest::Client::new(),
            in_process: None,
            database_url: database_url.to_owned(),
            token: None,
            metrics_address: None,
            extra_args: Vec::new(),
            _sqlite_folder: None,
        }
    }

    /// The same server for another task, sharing `client`'s connections.
    pub fn clone_for_worker(&self, client: &reqwest::Client) -> TestApp {
        let mut app = self.with_token(self.token.clone());
        app.client = client.clone();
        app
    }

    /// POSTs a GraphQL request; `Err` when the server cannot be reached.
    pub async fn try_graphql(
        &self,
        query: &str,
        variables: Value,
    ) -> Result<Value, reqwest::Error> {
        self.authorized(self.client.post(format!("{}/graphql", self.address)))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .json()
            .await
    }

    /// POSTs a GraphQL request and returns the whole JSON response.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.authorized(self.client.post(format!("{}/graphql", self.address)))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("the request is sent")
            .json()
            .await
            .expect("the response is JSON")
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Creates a product and returns it (all fields); panics if creation fails.
    pub async fn create_product(
        &self,
        name: &str,
        sku: &str,
        stock: i64,
        reorder_level: i64,
    ) -> Value {
        let response = self
            .try_create_product(json!({
                "name": name, "sku": sku, "stock": stock, "reorderLevel": reorder_level
            }))
            .await;
        assert_no_errors(&response);
        response["data"]["createProduct"].clone()
    }

    /// Sends `createProduct` with `input` as given.
    pub async fn try_create_product(&self, input: Value) -> Value {
        self.graphql(
            &format!("mutation($input: CreateProductInput!) {{ createProduct(input: $input) {{ {PRODUCT_FIELDS} }} }}"),
            json!({ "input": input }),
        )
        .await
    }

    /// Sends `addStock` or `reduceStock` (`mutation` names which).
    pub async fn change_stock(&self, mutation: &str, id: &str, quantity: i64) -> Value {
        self.graphql(
            &format!(
                "mutation($id: ID!, $quantity: Int!) {{ {mutation}(id: $id, quantity: $quantity) {{
                    success productId newStock product {{ {PRODUCT_FIELDS} }}
                    movement {{ {MOVEMENT_FIELDS} }} }} }}"
            ),
            json!({ "id": id, "quantity": quantity }),
        )
        .await
    }

    /// Sends `addStock`.
    pub async fn add_stock(&self, id: &str, quantity: i64) -> Value {
        self.change_stock("addStock", id, quantity).await
    }

    /// Sends `reduceStock`.
    pub async fn reduce_stock(&self, id: &str, quantity: i64) -> Value {
        self.change_stock("reduceStock", id, quantity).await
    }

    /// The live product with this id, or `Value::Null`.
    pub async fn product(&self, id: &str) -> Value {
        let response = self
            .graphql(
                &format!("query($id: ID!) {{ product(id: $id) {{ {PRODUCT_FIELDS} }} }}"),
                json!({ "id": id }),
            )
            .await;
        assert_no_errors(&response);
        response["data"]["product"].clone()
    }

    /// Every movement of a product, newest first (walks all pages).
    pub async fn movements(&self, product_id: &str) -> Vec<Value> {
        let mut movements = Vec::new();
        let mut after = Value::Null;
        loop {
            let response = self
                .graphql(
                    &format!(
                        "query($id: ID!, $after: String) {{ stockMovements(productId: $id, first: 100, after: $after) {{
                            nodes {{ {MOVEMENT_FIELDS} }} pageInfo {{ hasNextPage endCursor }} }} }}"
                    ),
                    json!({ "id": product_id, "after": after }),
                )
                .await;
            assert_no_errors(&response);
            let page = &response["data"]["stockMovements"];
            movements.extend(page["nodes"].as_array().expect("nodes").iter().cloned());
            if !page["pageInfo"]["hasNextPage"]
                .as_bool()
                .expect("hasNextPage")
            {
                return movements;
            }
            after = page["pageInfo"]["endCursor"].clone();
        }
    }
}

/// The product fields the helpers ask for.
pub const PRODUCT_FIELDS: &str = "id name sku stock reserved available reorderLevel status version createdAt updatedAt deletedAt";

/// The movement fields the helpers ask for.
pub const MOVEMENT_FIELDS: &str =
    "id productId kind quantity delta stockBefore stockAfter reason actor createdAt";

/// The `extensions.code` of the response's first error, if any.
pub fn error_code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

/// Panics with the response when it has errors.
pub fn assert_no_errors(response: &Value) {
    assert!(
        response.get("errors").is_none(),
        "unexpected errors: {response:#}"
    );
}

/// Asserts that the response failed with `code` and returned no data for the operation.
pub fn assert_error(response: &Value, code: &str) {
    assert_eq!(error_code(response), Some(code), "response: {response:#}");
}

/// A product's id as a string.
pub fn id_of(product: &Value) -> String {
    product["id"].as_str().expect("an id").to_owned()
}

/// A REST response: status and JSON body (`Value::Null` when the body is not JSON).
pub struct RestResponse {
    pub status: u16,
    pub body: Value,
}

impl TestApp {
    /// Sends a REST request with an optional JSON body.
    pub async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> RestResponse {
        let mut request = self.authorized(
            self.client
                .request(method, format!("{}{path}", self.address)),
        );
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the request is sent");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        RestResponse { status, body }
    }

    /// Sends a REST request with a raw body and content type.
    pub async fn rest_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> RestResponse {
        let response = self
            .client
            .request(method, format!("{}{path}", self.address))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("the request is sent");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        RestResponse { status, body }
    }
}

/// Asserts the documented REST error: the status, and `{ "error": true, "message", "code" }`.
pub fn assert_rest_error(response: &RestResponse, status: u16, code: &str) {
    assert_eq!(response.status, status, "body: {:#}", response.body);
    assert_eq!(response.body["error"], true, "body: {:#}", response.body);
    assert_eq!(response.body["code"], code, "body: {:#}", response.body);
    assert!(
        response.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(
        response.body.as_object().map(|o| o.len()),
        Some(3),
        "only error, message, code"
    );
}

/// The seed of a randomized test: `STOCKROOM_TEST_SEED` to replay one, else random. Printed, so a
/// failure's output says how to replay it.
pub fn test_seed() -> u64 {
    let seed = std::env::var("STOCKROOM_TEST_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed: {seed} (rerun with STOCKROOM_TEST_SEED={seed})");
    seed
}
