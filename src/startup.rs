//! Building and running the application: database, migrations, router, graceful shutdown.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::database::Database;
use crate::events::EventBus;
use crate::graphql::{self, AppSchema};
use crate::health;
use crate::rest::{self, ApiError};
use crate::service::Services;

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
}

/// What every HTTP handler can reach.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// The services.
    pub services: Services,
    /// The GraphQL schema.
    pub schema: AppSchema,
}

/// The HTTP routes over `state`, shared by `main` and the tests.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/graphql",
            get(graphql::graphiql).post(graphql::graphql_handler),
        )
        .route("/graphql/ws", get(graphql::graphql_ws))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .merge(rest::routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str);
            tracing::info_span!("request", method = %request.method(), route, uri = %request.uri())
        }))
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
}

impl Application {
    /// Connects to and migrates the database, then binds the listen address (port 0 picks a
    /// free port: see [`Application::local_addr`]).
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let database = Database::connect(&config.database())
            .await
            .map_err(StartupError::Database)?;
        if !config.no_migrate {
            database.migrate().await.map_err(StartupError::Migration)?;
        }
        let events = if database.is_postgres() {
            EventBus::postgres(&config.database_url, config.event_buffer as usize)
                .await
                .map_err(StartupError::Database)?
        } else {
            EventBus::in_process(config.event_buffer as usize)
        };
        let services = Services::new(database, events);
        let schema = graphql::build_schema(services.clone());
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    address: config.listen,
                    source,
                })?;
        Ok(Self {
            listener,
            router: router(AppState {
                services: services.clone(),
                schema,
            }),
            services,
        })
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
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown_signal())
            .await
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
