//! Per-operation GraphQL metrics, labelled by the operation's first root field (a schema name,
//! so the set of series is bounded whatever clients send).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
};
use async_graphql::parser::types::{ExecutableDocument, Selection};
use async_graphql::{Response, ServerResult, Variables};

use crate::auth::policy;

/// Counts GraphQL operations and their latency by root field and outcome.
pub struct OperationMetrics;

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationMetricsExtension::default())
    }
}

#[derive(Default)]
struct OperationMetricsExtension {
    root_field: Mutex<&'static str>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for OperationMetricsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if let Ok(mut root_field) = self.root_field.lock() {
            *root_field = first_root_field(&document);
        }
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let started = Instant::now();
        let response = next.run(ctx, operation_name).await;
        let field = self.root_field.lock().map_or("unknown", |field| *field);
        let outcome = if response.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        metrics::counter!("stockroom_graphql_operations_total", "field" => field, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("stockroom_graphql_operation_duration_seconds", "field" => field)
            .record(started.elapsed().as_secs_f64());
        response
    }
}

/// The first root field of the document's first operation, if it is one the schema declares.
fn first_root_field(document: &ExecutableDocument) -> &'static str {
    let name =
        document
            .operations
            .iter()
            .next()
            .and_then(|(_, operation)| {
                operation.node.selection_set.node.items.iter().find_map(
                    |selection| match &selection.node {
                        Selection::Field(field) => Some(field.node.name.node.to_string()),
                        _ => None,
                    },
                )
            });
    name.and_then(|name| policy::declared_operation(&name))
        .unwrap_or(if name_is_introspection(document) {
            "__introspection"
        } else {
            "unknown"
        })
}

fn name_is_introspection(document: &ExecutableDocument) -> bool {
    document.operations.iter().next().is_some_and(|(_, operation)| {
        operation.node.selection_set.node.items.iter().any(|selection| {
            matches!(&selection.node, Selection::Field(field) if field.node.name.node.starts_with("__"))
        })
    })
}
