//! Limits on abusive documents that async-graphql does not cap itself: aliases, root fields, and
//! the price of `totalCount`. Depth and complexity are capped by the schema (see
//! `schema_builder`). Runs when the document is parsed, before any resolver.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

use async_graphql::parser::types::Field;
use async_graphql_value::{ConstValue, Value};

use super::document::root_fields;
use super::errors::mark_document_errors;
use crate::error::Error;

/// What one `totalCount` costs in complexity. A count scans every matching row, however small
/// the page beside it, so at the default limit of 5,000 an operation may ask for five.
pub const TOTAL_COUNT_COST: usize = 1000;

/// Refuses documents with more than `max_aliases` aliased fields, or an operation nested deeper
/// than `max_depth` (introspection aside), or with more than `max_root_fields` root fields
/// (fragments included), or whose `totalCount` fields cost more than `max_complexity` at
/// [`TOTAL_COUNT_COST`] each.
#[derive(Clone, Copy, Debug)]
pub struct DocumentLimits {
    /// Deepest selection of the schema's own fields. Introspection (`__schema`, `__type`) is not
    /// counted: its depth is bounded by the schema itself, and the standard introspection
    /// queries of graphql-js, GraphiQL and Apollo's tools go 13 to 15 levels deep.
    pub max_depth: usize,
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
        if variables.values().any(const_has_nul) || document_has_nul(&document) {
            // PostgreSQL cannot store a NUL character in text; SQLite can. Refusing it here, for
            // every string argument, answers the same on both backends.
            let refusal = Error::bad_input("text may not contain NUL characters (U+0000)");
            let mut error = ServerError::new(refusal.to_string(), None);
            error.source = Some(std::sync::Arc::new(refusal) as std::sync::Arc<_>);
            return Err(error);
        }
        let aliases = count_aliases(&document);
        if aliases > self.max_aliases {
            return Err(refused(format!(
                "the query uses {aliases} aliases; at most {} are allowed",
                self.max_aliases
            )));
        }
        for (_, operation) in document.operations.iter() {
            let roots = root_fields(&operation.node, &document).len();
            if roots > self.max_root_fields {
                return Err(refused(format!(
                    "an operation selects {roots} root fields; at most {} are allowed",
                    self.max_root_fields
                )));
            }
            let depth = operation_depth(&operation.node.selection_set.node, &document);
            if depth.fields > self.max_depth {
                return Err(refused(format!(
                    "Query is nested too deep: {} levels; at most {} are allowed",
                    depth.fields, self.max_depth
                )));
            }
            if depth.introspection > MAX_INTROSPECTION_DEPTH
                || depth.introspection_lists > MAX_INTROSPECTION_LISTS
            {
                return Err(refused(format!(
                    "Query is nested too deep: introspection may go {MAX_INTROSPECTION_DEPTH} \
                     levels deep and nest {MAX_INTROSPECTION_LISTS} lists (this one: {} \
                     levels, {} lists)",
                    depth.introspection, depth.introspection_lists
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

/// Whether a variable's value holds a NUL character anywhere.
fn const_has_nul(value: &ConstValue) -> bool {
    match value {
        ConstValue::String(text) => text.contains('\0'),
        ConstValue::List(items) => items.iter().any(const_has_nul),
        ConstValue::Object(fields) => fields.values().any(const_has_nul),
        _ => false,
    }
}

/// Whether a literal argument anywhere in the document holds a NUL character.
fn document_has_nul(document: &ExecutableDocument) -> bool {
    fn value_has_nul(value: &Value) -> bool {
        match value {
            Value::String(text) => text.contains('\0'),
            Value::List(items) => items.iter().any(value_has_nul),
            Value::Object(fields) => fields.values().any(value_has_nul),
            _ => false,
        }
    }
    fn field_has_nul(field: &Field) -> bool {
        field
            .arguments
            .iter()
            .chain(
                field
                    .directives
                    .iter()
                    .flat_map(|directive| &directive.node.arguments),
            )
            .any(|(_, value)| value_has_nul(&value.node))
            || set_has_nul(&field.selection_set.node)
    }
    fn set_has_nul(set: &SelectionSet) -> bool {
        set.items.iter().any(|selection| match &selection.node {
            Selection::Field(field) => field_has_nul(&field.node),
            Selection::InlineFragment(inline) => set_has_nul(&inline.node.selection_set.node),
            Selection::FragmentSpread(_) => false,
        })
    }
    document
        .operations
        .iter()
        .any(|(_, operation)| set_has_nul(&operation.node.selection_set.node))
        || document
            .fragments
            .values()
            .any(|fragment| set_has_nul(&fragment.node.selection_set.node))
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

/// How deep an operation goes: its nesting of the schema's own fields, and, apart from that, of
/// introspection fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Depth {
    /// Nested fields of the schema's own, through fragments.
    fields: usize,
    /// Nested introspection fields (from `__schema` / `__type` down).
    introspection: usize,
    /// Introspection lists (`types`, `fields`, ...) nested in one another: each multiplies
    /// what the next one returns.
    introspection_lists: usize,
}

impl Depth {
    fn max(self, other: Depth) -> Depth {
        Depth {
            fields: self.fields.max(other.fields),
            introspection: self.introspection.max(other.introspection),
            introspection_lists: self.introspection_lists.max(other.introspection_lists),
        }
    }
}

/// Introspection fields that return lists.
const INTROSPECTION_LISTS: [&str; 8] = [
    "types",
    "fields",
    "args",
    "interfaces",
    "possibleTypes",
    "enumValues",
    "inputFields",
    "directives",
];

/// How deep an operation goes, through fragments (each fragment worked out once; a fragment
/// cycle counts nothing, and validation refuses it anyway).
fn operation_depth(set: &SelectionSet, document: &ExecutableDocument) -> Depth {
    fn in_set<'a>(
        set: &'a SelectionSet,
        document: &'a ExecutableDocument,
        inside_introspection: bool,
        known: &mut HashMap<(&'a str, bool), Depth>,
        entered: &mut HashSet<&'a str>,
    ) -> Depth {
        set.items
            .iter()
            .map(|selection| match &selection.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let introspection = inside_introspection || name.starts_with("__");
                    let below = in_set(
                        &field.node.selection_set.node,
                        document,
                        introspection,
                        known,
                        entered,
                    );
                    if introspection {
                        Depth {
                            introspection: below.introspection + 1,
                            introspection_lists: below.introspection_lists
                                + usize::from(INTROSPECTION_LISTS.contains(&name)),
                            ..below
                        }
                    } else {
                        Depth {
                            fields: below.fields + 1,
                            ..below
                        }
                    }
                }
                Selection::InlineFragment(inline) => in_set(
                    &inline.node.selection_set.node,
                    document,
                    inside_introspection,
                    known,
                    entered,
                ),
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some(depth) = known.get(&(name, inside_introspection)) {
                        return *depth;
                    }
                    let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node)
                    else {
                        return Depth::default();
                    };
                    if !entered.insert(name) {
                        return Depth::default();
                    }
                    let depth = in_set(
                        &fragment.node.selection_set.node,
                        document,
                        inside_introspection,
                        known,
                        entered,
                    );
                    entered.remove(name);
                    known.insert((name, inside_introspection), depth);
                    depth
                }
            })
            .fold(Depth::default(), Depth::max)
    }
    in_set(
        set,
        document,
        false,
        &mut HashMap::new(),
        &mut HashSet::new(),
    )
}

/// Deepest introspection selection: the standard introspection queries (graphql-js with every
/// option, GraphiQL, Apollo's tools) go at most 15 levels deep.
const MAX_INTROSPECTION_DEPTH: usize = 16;

/// Most introspection lists nested in one another: the standard queries nest three
/// (`types { fields { args } }`); more multiply into an answer far larger than the schema.
const MAX_INTROSPECTION_LISTS: usize = 3;

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

    fn depth(query: &str) -> Depth {
        let document = async_graphql::parser::parse_query(query).unwrap();
        let (_, operation) = document.operations.iter().next().unwrap();
        operation_depth(&operation.node.selection_set.node, &document)
    }

    #[test]
    fn depth_counts_the_schemas_fields_and_introspection_apart() {
        assert_eq!(depth("{ products { nodes { id } } }").fields, 3);
        assert_eq!(
            depth("{ a: products { ...F } } fragment F on ProductConnection { nodes { id } }")
                .fields,
            3
        );
        let introspection =
            depth("{ __schema { types { fields { type { ofType { ofType { name } } } } } } }");
        assert_eq!(
            introspection,
            Depth {
                fields: 0,
                introspection: 7,
                introspection_lists: 2
            }
        );
        let fan_out =
            depth("{ __schema { types { fields { type { fields { type { name } } } } } } }");
        assert_eq!(fan_out.introspection_lists, 3);
        assert_eq!(depth("{ products { __typename } }").fields, 1);
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
