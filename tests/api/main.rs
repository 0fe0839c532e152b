//! Stockroom's integration tests: one binary, a real server per test on port 0, a real HTTP
//! client, and a fresh database per test on each backend (see `helpers`).

#[macro_use]
mod helpers;

mod cache;
mod cli;
mod concurrency;
mod csv_files;
mod deadlines;
mod fanout;
mod field_errors;
mod flash_sale;
mod fuzz;
mod health;
mod idempotency;
mod invariants;
mod ledger;
mod locations;
mod metrics;
mod migration;
mod outbox;
mod pagination;
mod persisted_queries;
mod postgres_server;
mod products;
mod relay;
mod reservations;
mod rest;
mod schema;
mod security;
mod soak;
mod stock;
mod subscriptions;
mod sync;
mod ws;
mod ws_limits;
