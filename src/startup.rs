//! Building and running the application: database, migrations, events, router, limits,
//! graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request};
use axum::http::{HeaderValue, Method, header};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::cache::ProductCache;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use secrecy::ExposeSecret;

use crate::auth::{Authenticator, MIN_SECRET_BYTES};
use crate::board;
use crate::config::Config;
use crate::database::{Database, DatabaseSettings};
use crate::events::EventBus;
use crate::graphql::{self, AppSchema, GraphqlSettings, SubscriptionFanout, WebSocketSettings};
use crate::health;
use crate::maintenance::{self, MaintenanceSettings};
use crate::metrics;
use crate::middleware;
use crate::relay;
use crate::rest::{self, ApiError};
use crate::service::Services;
use crate::telemetry::REQUEST_ID;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached.
    #[error("cannot connect to the database: {0}")]
    Database(#[source] sea_orm::DbErr),
    /// Migrations failed.
    #[error("cannot migrate the database: {0}")]
    Migration(#[source] sea_orm::DbErr),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// No secret is configured, yet the address is reachable from other machines.
    #[error(
        "refusing to listen on {0} without authentication: with no STOCKROOM_JWT_SECRET every \
         caller is an admin. Set STOCKROOM_JWT_SECRET (or --jwt-secret) to a long random value, \
         or listen on a loopback address such as 127.0.0.1"
    )]
    OpenModeOnPublicAddress(SocketAddr),
    /// A CORS origin is not a valid header value.
    #[error("invalid CORS origin '{0}'")]
    InvalidCorsOrigin(String),
    /// The token secret is too short to resist guessing.
    #[error(
        "STOCKROOM_JWT_SECRET is too short: use at least {MIN_SECRET_BYTES} bytes of random text \
         (for example `openssl rand -base64 48`)"
    )]
    WeakSecret,
}

/// What every HTTP handler can reach.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// The services.
    pub services: Services,
    /// The GraphQL schema.
    pub schema: AppSchema,
    /// Turns credentials into callers.
    pub authenticator: Authenticator,
    /// Limits and switches of the GraphQL endpoint.
    pub graphql: GraphqlSettings,
    /// Limits of WebSocket connections.
    pub websocket: WebSocketSettings,
    /// The shared executions of WebSocket subscriptions.
    pub fanout: SubscriptionFanout,
}

/// Request-level limits applied to every route.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest CSV import, in bytes.
    pub max_import_bytes: usize,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Origins allowed to call from a browser; empty means same-origin only.
    pub cors_allowed_origins: Vec<HeaderValue>,
    /// Whether `GET /` serves the stock board.
    pub board: bool,
}

/// The HTTP routes over `state`, shared by `main` and the tests.
/// Pooled connections of the outbox relay and the webhook dispatcher.
const RELAY_CONNECTIONS: u32 = 4;

pub fn router(state: AppState, limits: &HttpLimits) -> Router {
    let open_mode = state.authenticator.is_open();
    let mut router = Router::new()
        .route(
            "/graphql",
            get(graphql::graphql_get).post(graphql::graphql_post),
        )
        .route("/graphql/ws", get(graphql::graphql_ws))
        .route(
            &format!("{}/{{package}}/{{file}}", graphql::GRAPHIQL_ASSETS_PATH),
            get(graphql::graphiql_asset),
        )
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .merge(rest::routes());
    if limits.board {
        router = router
            .route("/", get(board::page))
            .route("/board/{fingerprint}/{file}", get(board::asset));
    }
    // Every route takes bodies up to `--max-body-bytes`, CSV imports up to
    // `--max-import-bytes`; larger ones get `413`.
    let mut router = router
        .route_layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .merge(
            rest::import_routes().route_layer(RequestBodyLimitLayer::new(limits.max_import_bytes)),
        )
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .route_layer(axum::middleware::from_fn(metrics::track_http))
        // Layers run bottom-up for a request: request id, trace, CORS, (open mode: loopback
        // hosts only), layer error bodies, the deadline, then (per route) the body limit.
        // The route layers above are the one limit; axum's own default (2 MiB) would otherwise
        // cap extractors below a larger configured limit.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            middleware::enforce_deadline,
        ))
        .layer(axum::middleware::from_fn(
            middleware::error_bodies_for_layers,
        ));
    if open_mode {
        router = router.layer(axum::middleware::from_fn(middleware::loopback_hosts_only));
    }
    router
        .layer(cors(&limits.cors_allowed_origins))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str);
            let request_id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|id| id.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", request_id, method = %request.method(), route, uri = %request.uri())
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// `GET /metrics` alone, for the address given by `--metrics-listen`.
fn metrics_router(services: Services) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .with_state(services)
}

/// Same-origin only unless origins are configured.
fn cors(allowed_origins: &[HeaderValue]) -> CorsLayer {
    if allowed_origins.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed_origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST, Method::PUT])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
        ])
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    services: Services,
    /// The separate metrics listener, when `--metrics-listen` is set.
    metrics: Option<(TcpListener, Router)>,
}

impl Application {
    /// Checks the configuration, connects to and migrates the database, starts the event bus,
    /// then binds the listen address (port 0 picks a free port: see
    /// [`Application::local_addr`]).
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        metrics::spawn_upkeep();
        let auth = config.auth();
        if auth
            .secret
            .as_ref()
            .is_some_and(|secret| secret.expose_secret().len() < MIN_SECRET_BYTES)
        {
            return Err(StartupError::WeakSecret);
        }
        let authenticator = Authenticator::new(&auth);
        if authenticator.is_open() {
            if !config.listen.ip().is_loopback() {
                return Err(StartupError::OpenModeOnPublicAddress(config.listen));
            }
            tracing::warn!(
                "no STOCKROOM_JWT_SECRET: running in open mode, every caller is an admin \
                 (fine for local development only)"
            );
        }
        let limits = HttpLimits {
            max_body_bytes: config.max_body_bytes,
            max_import_bytes: config.max_import_bytes,
            request_timeout: config.request_timeout,
            cors_allowed_origins: config
                .cors_allowed_origins
                .iter()
                .map(|origin| {
                    HeaderValue::from_str(origin)
                        .map_err(|_| StartupError::InvalidCorsOrigin(origin.clone()))
                })
                .collect::<Result<_, _>>()?,
            board: !config.no_ui,
        };

        let database = Database::connect(&config.database())
            .await
            .map_err(StartupError::Database)?;
        if !config.no_migrate {
            database.migrate().await.map_err(StartupError::Migration)?;
        }
        let cache = ProductCache::new(config.cache_capacity);
        let events = if database.is_postgres() {
            EventBus::postgres(&config.database_url, config.event_buffer as usize, cache)
                .await
                .map_err(StartupError::Database)?
        } else {
            EventBus::in_process(config.event_buffer as usize, cache)
        }
        .with_outbox(!config.no_outbox);
        if events.writes_outbox() {
            // The relay has a small pool of its own: its polling never takes a connection a
            // request needs, and a request's statements are its own.
            let relay_database = Database::connect(&DatabaseSettings {
                max_connections: RELAY_CONNECTIONS,
                ..config.database()
            })
            .await
            .map_err(StartupError::Database)?;
            relay::spawn(relay_database, &events, config.relay());
        }
        let services = Services::new(database, events).configure(|services| {
            services.webhooks = services
                .webhooks
                .clone()
                .with_private_targets(config.webhook_allow_private_targets);
            services.sync = services.sync.clone().with_max_rows(config.max_sync_rows);
            services.imports = services
                .imports
                .clone()
                .with_limits(config.max_import_rows, config.max_sync_rows);
        });
        maintenance::spawn(
            services.clone(),
            MaintenanceSettings {
                reservation_sweep_interval: config.reservation_sweep_interval,
                idempotency_retention: config.idempotency_retention,
                lot_expiry_interval: config.lot_expiry_interval,
            },
        );
        let graphql = config.graphql();
        let schema = graphql::build_schema(services.clone(), &graphql);
        let listener = listen(config.listen).map_err(|source| StartupError::Bind {
            address: config.listen,
            source,
        })?;
        let metrics = match config.metrics_listen {
            Some(address) => Some((
                TcpListener::bind(address)
                    .await
                    .map_err(|source| StartupError::Bind { address, source })?,
                metrics_router(services.clone()),
            )),
            None => None,
        };
        let state = AppState {
            services: services.clone(),
            schema,
            authenticator,
            graphql,
            websocket: config.websocket(),
            fanout: SubscriptionFanout::new(
                config.event_buffer as usize,
                services.events().clone(),
            ),
        };
        Ok(Self {
            listener,
            router: router(state, &limits),
            services,
            metrics,
        })
    }

    /// The address `/metrics` is served on, when `--metrics-listen` is set.
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.metrics
            .as_ref()
            .map(|(listener, _)| listener.local_addr())
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The services the server runs on (tests use them to look inside).
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves until Ctrl-C or SIGTERM, then finishes in-flight requests and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        if let Some((listener, router)) = self.metrics {
            tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, router).await {
                    tracing::error!(%error, "the metrics listener stopped");
                }
            });
        }
        let database = self.services.database().clone();
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        // Closing the pool lets SQLite checkpoint its write-ahead log into the database file.
        if let Err(error) = database.connection().clone().close().await {
            tracing::warn!(%error, "closing the database connections failed");
        }
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// How many accepted connections the kernel may queue before the server takes them (Linux caps
/// it at `net.core.somaxconn`). A flash sale opens thousands of connections at once; with a short
/// queue the kernel drops or resets the ones that do not fit while the server is busy.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the API's listener with [`LISTEN_BACKLOG`].
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server may bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}
