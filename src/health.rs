//! Liveness (`GET /health`) and readiness (`GET /ready`) probes.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;

use crate::service::Services;

/// Liveness: the process serves HTTP.
pub async fn health() -> &'static str {
    "ok"
}

/// Readiness: `200` only when the database answers within a second, else `503`.
pub async fn ready(State(services): State<Services>) -> (StatusCode, &'static str) {
    let ping = tokio::time::timeout(Duration::from_secs(1), services.database().ping()).await;
    match ping {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check: the database did not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
        Err(_) => {
            tracing::warn!("readiness check: the database timed out");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
