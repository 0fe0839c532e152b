//! Limits on abusive documents that async-graphql does not cap itself: aliases, root fields, and
//! the price of `totalCount`. Depth and complexity are capped by the schema (see
//! `schema_builder`). Runs when the document is parsed, before any resolver.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

use super::errors::mark_document_errors;

/// What one `totalCount` costs in complexity. A count scans every matching row, however small
/// the page beside it, so at the default limit of 5,000 an operation may ask for five.
pub const TOTAL_COUNT_COST: usize = 1000;

/// Refuses documents with more than `max_aliases` aliased fields, or an operation with more
/// than `max_root_fields` root fields (fragments included), or whose `totalCount` fields cost
/// more than `max_complexity` at [`TOTAL_COUNT_COST`] each.
#[derive(Clone, Copy, Debug)]
pub struct DocumentLimits {
    /// Most aliased fields in a document.
    pub max_aliases: usize,
    /// Most root fields in one operation.
    pub max_root_fields: usize,
    /// The complexity limit, which the operation's counts must stay within.
    pub max_complexity: usize,
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
        let document = next.run(ctx, query, variables).await.map_err(|mut error| {
            mark_document_errors(std::slice::from_mut(&mut error), "GRAPHQL_PARSE_FAILED");
            error
        })?;
        let aliases = count_aliases(&document);
        if aliases > self.max_aliases {
            return Err(refused(format!(
                "the query uses {aliases} aliases; at most {} are allowed",
                self.max_aliases
            )));
        }
        for (_, operation) in document.operations.iter() {
            let mut seen = HashSet::new();
            let roots = count_root_fields(&operation.node.selection_set.node, &document, &mut seen);
            if roots > self.max_root_fields {
                return Err(refused(format!(
                    "an operation selects {roots} root fields; at most {} are allowed",
                    self.max_root_fields
                )));
            }
            let counts = count_total_counts(&operation.node.selection_set.node, &document);
            if counts.saturating_mul(TOTAL_COUNT_COST) > self.max_complexity {
                return Err(refused(format!(
                    "an operation asks for {counts} totalCount fields; each scans a whole \
                     listing, and at most {} are allowed",
                    self.max_complexity / TOTAL_COUNT_COST
                )));
            }
        }
        Ok(document)
    }
}

/// A document refused for passing a limit: it does not validate.
fn refused(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    mark_document_errors(
        std::slice::from_mut(&mut error),
        "GRAPHQL_VALIDATION_FAILED",
    );
    error
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

/// How many `totalCount` fields an operation would resolve: every occurrence, with each
/// fragment counted as often as it is spread (a fragment's own count is worked out once; a
/// fragment cycle counts nothing, and validation refuses it anyway).
fn count_total_counts(set: &SelectionSet, document: &ExecutableDocument) -> usize {
    fn in_set<'a>(
        set: &'a SelectionSet,
        document: &'a ExecutableDocument,
        known: &mut HashMap<&'a str, usize>,
        entered: &mut HashSet<&'a str>,
    ) -> usize {
        set.items
            .iter()
            .map(|selection| match &selection.node {
                Selection::Field(field) => usize::from(field.node.name.node == "totalCount")
                    .saturating_add(in_set(
                        &field.node.selection_set.node,
                        document,
                        known,
                        entered,
                    )),
                Selection::InlineFragment(inline) => {
                    in_set(&inline.node.selection_set.node, document, known, entered)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some(count) = known.get(name) {
                        return *count;
                    }
                    let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node)
                    else {
                        return 0;
                    };
                    if !entered.insert(name) {
                        return 0;
                    }
                    let count = in_set(&fragment.node.selection_set.node, document, known, entered);
                    entered.remove(name);
                    known.insert(name, count);
                    count
                }
            })
            .fold(0, usize::saturating_add)
    }
    in_set(set, document, &mut HashMap::new(), &mut HashSet::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(query: &str) -> usize {
        let document = async_graphql::parser::parse_query(query).unwrap();
        let (_, operation) = document.operations.iter().next().unwrap();
        count_total_counts(&operation.node.selection_set.node, &document)
    }

    #[test]
    fn every_total_count_is_priced_however_it_is_written() {
        assert_eq!(counts("{ products(first: 0) { totalCount } }"), 1);
        assert_eq!(
            counts("{ a: products { totalCount } b: products { totalCount nodes { id } } }"),
            2
        );
        // A fragment counts each time it is spread, also inside other fragments.
        assert_eq!(
            counts(
                "{ a: products { ...C } b: products { ...D } }
                 fragment C on ProductConnection { totalCount }
                 fragment D on ProductConnection { ...C ...C }"
            ),
            3
        );
        assert_eq!(
            counts("{ a: products { ...E } } fragment E on ProductConnection { ...E }"),
            0
        );
    }
}
