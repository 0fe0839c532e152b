//! Command line and environment configuration (clap). Every flag has an environment variable,
//! and `stockroom --help` documents all of them.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::database::DatabaseSettings;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the API server (the default).
    Serve,
    /// Print the GraphQL schema (SDL) to standard output.
    Schema,
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
        global = true
    )]
    pub db_max_connections: u32,

    /// How long a request waits for a free database connection before failing (e.g. `5s`).
    #[arg(long, env = "STOCKROOM_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub db_acquire_timeout: Duration,

    /// SQLite only: how long a writer waits for the write lock before failing (e.g. `10s`).
    #[arg(long, env = "STOCKROOM_SQLITE_BUSY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub sqlite_busy_timeout: Duration,

    /// How many events a live subscriber may fall behind before it is cut off (and told).
    #[arg(long, env = "STOCKROOM_EVENT_BUFFER", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub event_buffer: u32,
}

impl Config {
    /// The database part of the configuration.
    pub fn database(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
            sqlite_busy_timeout: self.sqlite_busy_timeout,
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
