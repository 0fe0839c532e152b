//! Stockroom: an inventory service whose stock stays correct under any concurrency.

/// Bearer tokens, callers, and which role each operation needs.
pub mod auth;
/// The stock board page at `GET /`.
pub mod board;
/// Reads from memory: the product cache the commit stream keeps current.
pub mod cache;
/// The subcommands besides `serve`.
pub mod cli;
/// Today's date, which decides when lots expire.
pub mod clock;
/// Command line and environment configuration.
pub mod config;
/// The database connection and the one way to begin a write.
pub mod database;
/// Request deadlines: a `TIMEOUT` answer always means nothing was applied.
pub mod deadline;
/// Validated domain values (names, SKUs, quantities).
pub mod domain;
/// SeaORM entities: the rows as stored.
pub mod entity;
/// The domain error type and its documented error codes.
pub mod error;
/// The event bus: publish after commit, subscribe as a stream.
pub mod events;
/// The GraphQL transport: schema, resolvers, HTTP endpoints.
pub mod graphql;
/// Liveness and readiness probes.
pub mod health;
/// Background upkeep: reservation expiry, idempotency key pruning.
pub mod maintenance;
/// Prometheus metrics and `GET /metrics`.
pub mod metrics;
/// HTTP middleware: request deadlines, loopback-only hosts in open mode, layer error bodies.
pub mod middleware;
/// Events leaving the process: the outbox relay to RabbitMQ, webhooks, pruning.
pub mod relay;
/// The `import` and `export` subcommands: clients of a running server.
pub mod remote;
/// The REST facade over the same services.
pub mod rest;
/// Business rules and transactions.
pub mod service;
/// Building and running the server.
pub mod startup;
/// Logging and tracing setup.
pub mod telemetry;
