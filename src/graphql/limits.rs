//! Limits on abusive documents that async-graphql does not cap itself: aliases and root fields.
//! Depth and complexity are capped by the schema (see `schema_builder`). Runs when the document
//! is parsed, before any resolver.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

/// Refuses documents with more than `max_aliases` aliased fields, or an operation with more
/// than `max_root_fields` root fields (fragments included).
#[derive(Clone, Copy, Debug)]
pub struct DocumentLimits {
    /// Most aliased fields in a document.
    pub max_aliases: usize,
    /// Most root fields in one operation.
    pub max_root_fields: usize,
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let aliases = count_aliases(&document);
        if aliases > self.max_aliases {
            return Err(ServerError::new(
                format!(
                    "the query uses {aliases} aliases; at most {} are allowed",
                    self.max_aliases
                ),
                None,
            ));
        }
        for (_, operation) in document.operations.iter() {
            let mut seen = HashSet::new();
            let roots = count_root_fields(&operation.node.selection_set.node, &document, &mut seen);
            if roots > self.max_root_fields {
                return Err(ServerError::new(
                    format!(
                        "an operation selects {roots} root fields; at most {} are allowed",
                        self.max_root_fields
                    ),
                    None,
                ));
            }
        }
        Ok(document)
    }
}

/// Aliased fields written anywhere in the document (each fragment counted once as written).
fn count_aliases(document: &ExecutableDocument) -> usize {
    fn in_set(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|selection| match &selection.node {
                Selection::Field(field) => {
                    usize::from(field.node.alias.is_some()) + in_set(&field.node.selection_set.node)
                }
                Selection::InlineFragment(inline) => in_set(&inline.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    let operations: usize = document
        .operations
        .iter()
        .map(|(_, operation)| in_set(&operation.node.selection_set.node))
        .sum();
    let fragments: usize = document
        .fragments
        .values()
        .map(|fragment| in_set(&fragment.node.selection_set.node))
        .sum();
    operations + fragments
}

/// Root fields of one operation, looking through fragments (each fragment entered once, so a
/// cycle cannot loop; validation refuses cycles later anyway).
fn count_root_fields<'a>(
    set: &'a SelectionSet,
    document: &'a ExecutableDocument,
    entered: &mut HashSet<&'a str>,
) -> usize {
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(inline) => {
                count_root_fields(&inline.node.selection_set.node, document, entered)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match document.fragments.get(&spread.node.fragment_name.node) {
                    Some(fragment) if entered.insert(name) => {
                        count_root_fields(&fragment.node.selection_set.node, document, entered)
                    }
                    _ => 0,
                }
            }
        })
        .sum()
}
