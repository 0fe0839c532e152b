//! The GraphQL transport: schema, resolvers and the HTTP endpoints that serve them.

pub mod context;
mod errors;
mod http;
mod mutation;
mod query;
pub mod types;

pub use http::{graphiql, graphql_handler};

use async_graphql::{EmptySubscription, MergedObject, Schema, SchemaBuilder};

use crate::service::Services;

/// Every query, merged from the per-domain roots.
#[derive(MergedObject, Default)]
pub struct Query(query::ProductQuery, query::MovementQuery);

/// Every mutation, merged from the per-domain roots.
#[derive(MergedObject, Default)]
pub struct Mutation(mutation::ProductMutation, mutation::StockMutation);

/// Stockroom's executable schema.
pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema with its services, ready to execute requests.
pub fn build_schema(services: Services) -> AppSchema {
    schema_builder().data(services).finish()
}

/// The schema in SDL, as `stockroom schema` prints it and `schema.graphql` holds it.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}

fn schema_builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .extension(errors::ContractErrorCodes)
}
