//! HTTP middleware shared by every route: the request deadline, the loopback-only `Host` check
//! of open mode, and error bodies in each endpoint's own shape for the answers that layers
//! (not handlers) give.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::deadline::CommitGate;
use crate::error::Error;
use crate::graphql;
use crate::rest::ApiError;

/// Runs the request under a deadline of `timeout`. When the time is up and nothing of the
/// request has reached `COMMIT`, the request is stopped (its open transaction rolls back) and
/// answered `408 TIMEOUT`; when a change already reached `COMMIT`, the request runs on to its
/// real answer. Either way the answer tells the truth about what was applied.
pub async fn enforce_deadline(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let gate = CommitGate::with_deadline(Instant::now() + timeout);
    let endpoint = Endpoint::of(request.uri());
    let work = gate.clone().scope(next.run(request));
    tokio::pin!(work);
    tokio::select! {
        response = &mut work => response,
        () = tokio::time::sleep(timeout) => {
            if gate.abandon() {
                tracing::warn!(timeout = ?timeout, "a request ran out of time and was stopped; nothing of it was applied");
                endpoint.error(Error::Timeout)
            } else {
                work.await
            }
        }
    }
}

/// In open mode (no authentication), refuses requests whose `Host` is not a loopback name, so
/// that a web page cannot reach the server through a DNS name it rebinds to 127.0.0.1.
pub async fn loopback_hosts_only(request: Request, next: Next) -> Response {
    // A `Host` that is not text at all names no loopback either.
    let host = match request.headers().get(header::HOST) {
        Some(host) => host.to_str().ok().map(str::to_owned),
        None => Some(request.uri().host().unwrap_or_default().to_owned()),
    };
    match host {
        // No `Host` at all: not a browser (every browser sends one), so no rebinding either.
        Some(host) if host.is_empty() || is_loopback_host(&host) => next.run(request).await,
        _ => Endpoint::of(request.uri()).error(Error::Forbidden(
            "this server runs without authentication and answers only requests addressed to a \
             loopback name (localhost, 127.0.0.1, [::1])"
                .to_owned(),
        )),
    }
}

/// Whether a `Host` header value (with or without a port) names this machine's loopback.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:8080`
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost")
        || name
            .get(name.len().saturating_sub(".localhost".len())..)
            .is_some_and(|suffix| suffix.eq_ignore_ascii_case(".localhost"))
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Gives the plain-text `413` of the body-limit layer the error body of its endpoint.
pub async fn error_bodies_for_layers(request: Request, next: Next) -> Response {
    let endpoint = Endpoint::of(request.uri());
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|content_type| content_type.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return endpoint.payload_too_large();
    }
    response
}

/// Which error body an endpoint speaks.
#[derive(Clone, Copy)]
enum Endpoint {
    /// `/graphql` and below: `{ "errors": [...] }`.
    Graphql,
    /// Everything else: the REST body `{ "error": true, "message", "code" }`.
    Rest,
}

impl Endpoint {
    fn of(uri: &Uri) -> Self {
        if uri.path() == "/graphql" || uri.path().starts_with("/graphql/") {
            Endpoint::Graphql
        } else {
            Endpoint::Rest
        }
    }

    fn error(self, error: Error) -> Response {
        match self {
            Endpoint::Graphql => {
                let status = ApiError::from(error.clone()).status();
                graphql::error_response(status, error.code(), &error.to_string())
            }
            Endpoint::Rest => ApiError::from(error).into_response(),
        }
    }

    fn payload_too_large(self) -> Response {
        match self {
            Endpoint::Graphql => graphql::error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BAD_USER_INPUT",
                "the request body is too large",
            ),
            Endpoint::Rest => ApiError::payload_too_large().into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_pass() {
        for host in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "app.localhost:3000",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3:80",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1:8080",
            "[::2]:8080",
            "notlocalhost",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
