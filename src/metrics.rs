//! `GET /metrics` in Prometheus format: HTTP requests per route, GraphQL operations per root
//! field, stock changes by outcome, open subscriptions, and the database pool. Served on its own
//! address (`--metrics-listen`), never on the API's.
//!
//! Labels come only from bounded sets (matched routes, schema root fields, error codes), never
//! from raw client input, so no client can blow up the number of series.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::service::Services;

/// Latency buckets, in seconds: from a fast read to a request stuck behind a lock.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder (installed on first use; later servers in the same process, as in
/// the tests, share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed already; then ours just stays unused.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        handle
    })
}

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Starts, once per process, the task that folds recorded histogram samples into their buckets.
/// The recorder keeps every sample until then, so without it a server that nobody scrapes
/// would grow by every request it serves.
pub fn spawn_upkeep() {
    static STARTED: AtomicBool = AtomicBool::new(false);
    if STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    let handle = handle();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
}

/// Counts every HTTP request and its latency by matched route, method and status.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("stockroom_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("stockroom_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: the current values, with the gauges read at scrape time.
pub async fn render(State(services): State<Services>) -> String {
    metrics::gauge!("stockroom_active_subscriptions")
        .set(services.events().subscriber_count() as f64);
    let pool = services.database().pool_status();
    metrics::gauge!("stockroom_db_pool_connections", "state" => "in_use")
        .set(f64::from(pool.in_use));
    metrics::gauge!("stockroom_db_pool_connections", "state" => "idle").set(f64::from(pool.idle));
    handle().render()
}
