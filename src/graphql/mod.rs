//! The GraphQL transport: schema, resolvers and the HTTP endpoints that serve them.

pub mod context;
mod errors;
mod http;
mod mutation;
mod query;
mod subscription;
pub mod types;
mod ws;

pub use http::{graphiql, graphql_handler};
pub use ws::graphql_ws;

use async_graphql::{MergedObject, MergedSubscription, Schema, SchemaBuilder};

use crate::service::Services;

/// Every query, merged from the per-domain roots.
#[derive(MergedObject, Default)]
pub struct Query(query::ProductQuery, query::MovementQuery);

/// Every mutation, merged from the per-domain roots.
#[derive(MergedObject, Default)]
pub struct Mutation(mutation::ProductMutation, mutation::StockMutation);

/// Every subscription, merged from the per-domain roots.
#[derive(MergedSubscription, Default)]
pub struct Subscription(subscription::StockSubscription);

/// Stockroom's executable schema.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// The schema with its services, ready to execute requests.
pub fn build_schema(services: Services) -> AppSchema {
    schema_builder().data(services).finish()
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
    .extension(errors::ContractErrorCodes)
}
