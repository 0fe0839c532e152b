//! The GraphQL transport: schema, resolvers and the HTTP endpoints that serve them.

mod authorization;
pub mod context;
mod document;
mod documents;
mod errors;
mod fanout;
mod graphiql;
mod http;
mod limits;
mod loaders;
mod metrics;
mod mutation;
mod nulls;
mod query;
mod subscription;
pub mod types;
mod ws;

pub use fanout::SubscriptionFanout;
pub use graphiql::{ASSETS_PATH as GRAPHIQL_ASSETS_PATH, asset as graphiql_asset};
pub use http::{error_response, graphql_get, graphql_post};
pub use ws::{WebSocketSettings, graphql_ws};

use async_graphql::extensions::apollo_persisted_queries::{
    ApolloPersistedQueries, LruCacheStorage,
};
use async_graphql::{MergedObject, MergedSubscription, Schema, SchemaBuilder};

use crate::service::Services;

/// Every query, merged from the per-domain roots.
#[derive(MergedObject, Default)]
pub struct Query(
    query::ProductQuery,
    query::MovementQuery,
    query::LedgerQuery,
    query::ReservationQuery,
    query::NodeQuery,
    query::LocationQuery,
    query::WebhookQuery,
);

/// Every mutation, merged from the per-domain roots.
#[derive(MergedObject, Default)]
pub struct Mutation(
    mutation::ProductMutation,
    mutation::StockMutation,
    mutation::ReservationMutation,
    mutation::LocationMutation,
    mutation::SyncMutation,
    mutation::WebhookMutation,
);

/// Every subscription, merged from the per-domain roots.
#[derive(MergedSubscription, Default)]
pub struct Subscription(subscription::StockSubscription);

/// Stockroom's executable schema.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Limits and switches of the GraphQL endpoint.
#[derive(Clone, Copy, Debug)]
pub struct GraphqlSettings {
    /// Deepest selection accepted.
    pub max_depth: usize,
    /// Highest complexity accepted.
    pub max_complexity: usize,
    /// Most aliased fields in a document.
    pub max_aliases: usize,
    /// Most root fields in an operation.
    pub max_root_fields: usize,
    /// Most operations in a batch.
    pub max_batch_size: usize,
    /// Whether introspection (and "did you mean" suggestions) are on.
    pub introspection: bool,
    /// Whether `GET /graphql` serves GraphiQL.
    pub graphiql: bool,
}

/// How many automatic persisted queries each instance keeps.
const PERSISTED_QUERIES: usize = 1024;

/// The schema with its services and limits, ready to execute requests.
pub fn build_schema(services: Services, settings: &GraphqlSettings) -> AppSchema {
    let mut builder = schema_builder()
        .data(loaders::LocationLoader::data_loader(
            services.locations.clone(),
        ))
        .data(loaders::StockDetailLoader::data_loader(
            services.stock.clone(),
        ))
        .data(loaders::ProductLoader::data_loader(
            services.products.clone(),
        ))
        .data(loaders::MovementPageLoader::data_loader(
            services.stock.clone(),
        ))
        .data(loaders::MovementCountLoader::data_loader(
            services.stock.clone(),
        ))
        .data(services)
        .limit_complexity(settings.max_complexity)
        .extension(limits::DocumentLimits {
            max_depth: settings.max_depth,
            max_aliases: settings.max_aliases,
            max_root_fields: settings.max_root_fields,
            max_complexity: settings.max_complexity,
        })
        .extension(ApolloPersistedQueries::new(LruCacheStorage::new(
            PERSISTED_QUERIES,
        )))
        // Innermost, so that every check above runs on each request.
        .extension(documents::DocumentCache::default());
    if !settings.introspection {
        // Suggestions would leak the schema that introspection hides.
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The schema in SDL, as `stockroom schema` prints it and `schema.graphql` holds it.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}

fn schema_builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .extension(errors::ErrorCodes)
    .extension(authorization::RootFieldPolicy)
    .extension(metrics::OperationMetrics)
    .extension(nulls::SpecNulls)
}
