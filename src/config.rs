//! Command line and environment configuration (clap). Every flag has an environment variable,
//! and `stockroom --help` documents all of them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

use crate::auth::AuthSettings;
use crate::database::DatabaseSettings;
use crate::domain::Role;
use crate::graphql::{GraphqlSettings, WebSocketSettings};

/// Stockroom: an inventory service with a GraphQL API that keeps stock correct under any
/// concurrency.
#[derive(Debug, Parser)]
#[command(name = "stockroom", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Server and database settings.
    #[command(flatten)]
    pub config: Config,
}

/// Stockroom's subcommands.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the API server (the default).
    Serve,
    /// Print the GraphQL schema (SDL) to standard output.
    Schema,
    /// Check that every product's stock equals the sum of its ledger and its reserved units the
    /// sum of its active reservations; exits non-zero on any mismatch.
    Verify {
        /// Instead, print every product's stock at this past instant (RFC 3339), rebuilt from
        /// the ledger.
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Print a bearer token signed with the configured secret.
    Token {
        /// The caller's role.
        #[arg(long, value_enum)]
        role: Role,
        /// The caller's identity (recorded as the actor of its stock changes).
        #[arg(long)]
        subject: String,
        /// How long the token is valid (e.g. `1h`, `30m`, `7d`).
        #[arg(long, default_value = "1h", value_parser = positive_duration)]
        ttl: Duration,
    },
    /// Upload a CSV inventory file to a running server (`POST /imports/inventory`) with a
    /// progress bar, and print the summary. Exits 0 when every row was applied, 1 when rows
    /// failed or nothing was committed, 2 when the server refused the file or could not be
    /// reached.
    Import {
        /// The CSV file (`sku,name,reorder_level,location,on_hand,lot,expires_on`).
        file: PathBuf,
        /// Where the server is.
        #[command(flatten)]
        remote: Remote,
        /// Evaluate and report, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// What happens to the good rows when some fail.
        #[arg(long, value_enum, default_value = "reject-everything")]
        error_policy: ErrorPolicy,
        /// The movements' reason (`csv-import` when omitted).
        #[arg(long)]
        source: Option<String>,
        /// Also write the per-row CSV report (the file plus `status,error_code,error`) here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Download an export from a running server: the inventory (one line per bucket, the
    /// import's columns) or the ledger (one line per allocation).
    Export {
        /// Which export.
        #[arg(value_enum)]
        what: ExportKind,
        /// Where the server is.
        #[command(flatten)]
        remote: Remote,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Movements only: from this instant (RFC 3339) or date, inclusive.
        #[arg(long)]
        from: Option<String>,
        /// Movements only: before this instant or date.
        #[arg(long)]
        to: Option<String>,
    },
}

/// A running server the `import` and `export` subcommands talk to.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct Remote {
    /// The server's base URL (plain HTTP).
    #[arg(
        long,
        env = "STOCKROOM_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// A bearer token (see `stockroom token`); none in open mode.
    #[arg(long, env = "STOCKROOM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// What an import does with the good rows when some fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ErrorPolicy {
    /// Any failed row: nothing is applied.
    RejectEverything,
    /// Good rows are applied, failed ones reported.
    RejectFailedRows,
}

/// The exports `stockroom export` downloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportKind {
    /// `GET /exports/inventory.csv`.
    Inventory,
    /// `GET /exports/movements.csv`.
    Movements,
}

/// Settings of the server, shared by every subcommand.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Database to use: `sqlite://FILE` (created if missing) or `postgres://USER@HOST:PORT/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://stockroom.db",
        global = true
    )]
    pub database_url: String,

    /// Do not apply pending migrations on start.
    #[arg(long, env = "STOCKROOM_NO_MIGRATE", global = true)]
    pub no_migrate: bool,

    /// Address to listen on.
    #[arg(
        long,
        env = "STOCKROOM_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Log format: `pretty` for people, `json` for log collectors. The filter comes from
    /// `RUST_LOG` (default `info`).
    #[arg(long, env = "STOCKROOM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,

    /// Most database connections in the pool.
    #[arg(
        long,
        env = "STOCKROOM_DB_MAX_CONNECTIONS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub db_max_connections: u32,

    /// How long a request waits for a free database connection before failing (e.g. `5s`).
    #[arg(long, env = "STOCKROOM_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = positive_duration, global = true)]
    pub db_acquire_timeout: Duration,

    /// SQLite only: how long a writer waits for the write lock before failing (e.g. `10s`).
    #[arg(long, env = "STOCKROOM_SQLITE_BUSY_TIMEOUT", default_value = "10s", value_parser = positive_duration, global = true)]
    pub sqlite_busy_timeout: Duration,

    /// Secret that signs bearer tokens (HS256), at least 32 bytes. Without one the server runs
    /// in open mode: every caller is an admin, and only loopback addresses may be listened on.
    #[arg(
        long,
        env = "STOCKROOM_JWT_SECRET",
        hide_env_values = true,
        value_parser = parse_secret,
        global = true
    )]
    pub jwt_secret: Option<SecretString>,

    /// When set, tokens must carry this issuer (`iss`).
    #[arg(long, env = "STOCKROOM_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,

    /// When set, tokens must carry this audience (`aud`).
    #[arg(long, env = "STOCKROOM_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,

    /// Deepest GraphQL selection accepted.
    #[arg(
        long,
        env = "STOCKROOM_MAX_QUERY_DEPTH",
        default_value_t = 12,
        global = true
    )]
    pub max_query_depth: usize,

    /// Highest GraphQL query complexity accepted (each field costs 1; list fields multiply
    /// their selection by their `first`).
    #[arg(
        long,
        env = "STOCKROOM_MAX_QUERY_COMPLEXITY",
        default_value_t = 5000,
        global = true
    )]
    pub max_query_complexity: usize,

    /// Most aliased fields in one GraphQL document.
    #[arg(
        long,
        env = "STOCKROOM_MAX_ALIASES",
        default_value_t = 30,
        global = true
    )]
    pub max_aliases: usize,

    /// Most root fields in one GraphQL operation.
    #[arg(
        long,
        env = "STOCKROOM_MAX_ROOT_FIELDS",
        default_value_t = 20,
        global = true
    )]
    pub max_root_fields: usize,

    /// Most operations in one batched GraphQL request.
    #[arg(
        long,
        env = "STOCKROOM_MAX_BATCH_SIZE",
        default_value_t = 10,
        global = true
    )]
    pub max_batch_size: usize,

    /// Largest request body accepted, in bytes; larger ones get `413`.
    #[arg(long, env = "STOCKROOM_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// Most rows one `syncStock` call (or `POST /products/bulk-update`) takes.
    #[arg(
        long,
        env = "STOCKROOM_MAX_SYNC_ROWS",
        default_value_t = crate::service::DEFAULT_MAX_SYNC_ROWS,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|rows| rows as usize),
        global = true
    )]
    pub max_sync_rows: usize,

    /// Largest CSV file `POST /imports/inventory` accepts, in bytes; larger ones get `413`.
    #[arg(
        long,
        env = "STOCKROOM_MAX_IMPORT_BYTES",
        default_value_t = 50 * 1024 * 1024,
        global = true
    )]
    pub max_import_bytes: usize,

    /// Most rows one CSV import takes.
    #[arg(
        long,
        env = "STOCKROOM_MAX_IMPORT_ROWS",
        default_value_t = crate::service::DEFAULT_MAX_IMPORT_ROWS,
        value_parser = clap::value_parser!(u32).range(1..).map(|rows| rows as usize),
        global = true
    )]
    pub max_import_rows: usize,

    /// Most products kept in each instance's read cache (`product`, `productBySku`,
    /// `productStatus`, the REST GETs); 0 turns caching off.
    #[arg(
        long,
        env = "STOCKROOM_CACHE_CAPACITY",
        default_value_t = 10_000,
        global = true
    )]
    pub cache_capacity: u64,

    /// Longest a request may take before it is answered with `408` (e.g. `30s`).
    #[arg(long, env = "STOCKROOM_REQUEST_TIMEOUT", default_value = "30s", value_parser = positive_duration, global = true)]
    pub request_timeout: Duration,

    /// PostgreSQL only: longest a single SQL statement may run (e.g. `10s`).
    #[arg(long, env = "STOCKROOM_DB_STATEMENT_TIMEOUT", default_value = "10s", value_parser = positive_duration, global = true)]
    pub db_statement_timeout: Duration,

    /// Turn off GraphQL introspection (and "did you mean" suggestions with it).
    #[arg(long, env = "STOCKROOM_NO_INTROSPECTION", global = true)]
    pub no_introspection: bool,

    /// Do not serve GraphiQL on `GET /graphql`.
    #[arg(long, env = "STOCKROOM_NO_GRAPHIQL", global = true)]
    pub no_graphiql: bool,

    /// Do not serve the stock board on `GET /`.
    #[arg(long, env = "STOCKROOM_NO_UI", global = true)]
    pub no_ui: bool,

    /// Origins allowed to call the API from a browser (comma-separated, e.g.
    /// `https://shop.example.com`). None by default: same-origin only.
    #[arg(
        long,
        env = "STOCKROOM_CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_allowed_origins: Vec<String>,

    /// How often reservations whose time ran out are expired (e.g. `5s`); changes to a product
    /// also expire its due reservations on the spot.
    #[arg(long, env = "STOCKROOM_RESERVATION_SWEEP_INTERVAL", default_value = "5s", value_parser = positive_duration, global = true)]
    pub reservation_sweep_interval: Duration,

    /// How often lots that passed their date are looked for and marked expired (e.g. `1m`);
    /// every change to a product also marks its lots on the spot.
    #[arg(long, env = "STOCKROOM_LOT_EXPIRY_INTERVAL", default_value = "60s", value_parser = positive_duration, global = true)]
    pub lot_expiry_interval: Duration,

    /// How long idempotency keys are kept (at least 24 hours, as documented).
    #[arg(long, env = "STOCKROOM_IDEMPOTENCY_RETENTION", default_value = "24h", value_parser = positive_duration, global = true)]
    pub idempotency_retention: Duration,

    /// How long a new WebSocket connection may take to send `connection_init` (e.g. `10s`).
    #[arg(long, env = "STOCKROOM_WS_INIT_TIMEOUT", default_value = "10s", value_parser = positive_duration, global = true)]
    pub ws_init_timeout: Duration,

    /// How often WebSocket connections are pinged; one that answers nothing for three intervals
    /// is closed (e.g. `30s`).
    #[arg(long, env = "STOCKROOM_WS_PING_INTERVAL", default_value = "30s", value_parser = positive_duration, global = true)]
    pub ws_ping_interval: Duration,

    /// Most subscriptions one WebSocket connection may run at once.
    #[arg(long, env = "STOCKROOM_WS_MAX_SUBSCRIPTIONS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub ws_max_subscriptions: u32,

    /// Serve Prometheus metrics (`GET /metrics`) on this separate address, e.g.
    /// `127.0.0.1:9090`, reachable by the scraper only. Not served when unset.
    #[arg(long, env = "STOCKROOM_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,

    /// How many events a live subscriber may fall behind before it is cut off (and told).
    #[arg(long, env = "STOCKROOM_EVENT_BUFFER", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub event_buffer: u32,

    /// Publish every event to this RabbitMQ broker (AMQP 0-9-1), e.g.
    /// `amqp://guest:guest@127.0.0.1:5672/%2f`. Give every instance the same broker.
    #[arg(long, env = "STOCKROOM_AMQP_URL", value_parser = parse_secret, global = true)]
    pub amqp_url: Option<SecretString>,

    /// The topic exchange events are published to (declared durable on start); the routing
    /// key is the event type.
    #[arg(
        long,
        env = "STOCKROOM_AMQP_EXCHANGE",
        default_value = "stockroom.events",
        global = true
    )]
    pub amqp_exchange: String,

    /// Let webhooks target loopback, private and link-local addresses (local development).
    #[arg(long, env = "STOCKROOM_WEBHOOK_ALLOW_PRIVATE_TARGETS", global = true)]
    pub webhook_allow_private_targets: bool,

    /// The waits before each webhook retry, comma-separated (e.g. `5s,5m,30m`); a delivery
    /// fails after the last one.
    #[arg(long, env = "STOCKROOM_WEBHOOK_RETRY_SCHEDULE", value_delimiter = ',', default_value = "5s,5m,30m,2h,5h,10h,10h", value_parser = positive_duration, global = true)]
    pub webhook_retry_schedule: Vec<Duration>,

    /// How long one webhook attempt may take before it counts as failed.
    #[arg(long, env = "STOCKROOM_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = positive_duration, global = true)]
    pub webhook_timeout: Duration,

    /// How long delivered events and finished webhook deliveries are kept.
    #[arg(long, env = "STOCKROOM_OUTBOX_RETENTION", default_value = "7days", value_parser = positive_duration, global = true)]
    pub outbox_retention: Duration,

    /// Do not write events to the outbox: they then reach only live subscriptions (no broker,
    /// no webhooks). For measuring what the outbox costs.
    #[arg(long, env = "STOCKROOM_NO_OUTBOX", global = true)]
    pub no_outbox: bool,
}

impl Config {
    /// Where events leave the process.
    pub fn relay(&self) -> crate::relay::RelaySettings {
        crate::relay::RelaySettings {
            amqp_url: self
                .amqp_url
                .as_ref()
                .map(|url| url.expose_secret().to_owned()),
            amqp_exchange: self.amqp_exchange.clone(),
            webhooks: crate::relay::WebhookSettings {
                allow_private_targets: self.webhook_allow_private_targets,
                retry_schedule: self.webhook_retry_schedule.clone(),
                timeout: self.webhook_timeout,
            },
            retention: self.outbox_retention,
        }
    }

    /// The database part of the configuration.
    pub fn database(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
            statement_timeout: self.db_statement_timeout,
            sqlite_busy_timeout: self.sqlite_busy_timeout,
        }
    }

    /// The authentication part of the configuration.
    pub fn auth(&self) -> AuthSettings {
        AuthSettings {
            secret: self
                .jwt_secret
                .clone()
                .filter(|secret| !secret.expose_secret().is_empty()),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
        }
    }

    /// The WebSocket part of the configuration.
    pub fn websocket(&self) -> WebSocketSettings {
        WebSocketSettings {
            init_timeout: self.ws_init_timeout,
            ping_interval: self.ws_ping_interval,
            max_subscriptions: self.ws_max_subscriptions as usize,
        }
    }

    /// The GraphQL limits part of the configuration.
    pub fn graphql(&self) -> GraphqlSettings {
        GraphqlSettings {
            max_depth: self.max_query_depth,
            max_complexity: self.max_query_complexity,
            max_aliases: self.max_aliases,
            max_root_fields: self.max_root_fields,
            max_batch_size: self.max_batch_size,
            introspection: !self.no_introspection,
            graphiql: !self.no_graphiql,
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// A duration flag: humantime text (`5s`, `1h`) that must be longer than zero (a zero interval
/// or timeout would stop the server from working, or from starting).
fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(duration)
}

/// The token secret, kept out of `Debug` output and logs.
fn parse_secret(text: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_durations_are_refused_with_a_clear_message() {
        let error = Cli::try_parse_from(["stockroom", "--reservation-sweep-interval", "0s"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("must be longer than zero"), "{error}");
        assert!(Cli::try_parse_from(["stockroom", "--db-max-connections", "0"]).is_err());
        assert!(Cli::try_parse_from(["stockroom", "--request-timeout", "2s"]).is_ok());
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let cli = Cli::try_parse_from([
            "stockroom",
            "--jwt-secret",
            "super-secret-value-that-must-not-leak",
        ])
        .unwrap();
        let shown = format!("{cli:?} {:?}", cli.config.auth());
        assert!(!shown.contains("super-secret-value"), "{shown}");
    }
}
