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

use super::document::{merge_repeated_mutation_fields, repeated_mutation_key, root_fields};
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
        let mut document = next.run(ctx, query, variables).await.map_err(|mut error| {
            mark_document_errors(std::slice::from_mut(&mut error), "GRAPHQL_PARSE_FAILED");
            error
        })?;
        merge_repeated_mutation_fields(&mut document);
        if let Some(key) = repeated_mutation_key(&document) {
            return Err(refused(format!(
                "the mutation selects `{key}` more than once through fragments or directives, \
                 and each would run: select it once"
            )));
        }
        if request_any(&document, variables, is_beyond_int) {
            return Err(refused(
                "Int cannot represent an integer outside -2147483648..2147483647".to_owned(),
            ));
        }
        if request_any(&document, variables, has_nul) {
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

/// A scalar of a request (a literal of the document or a value of its variables) as the two
/// checks below see it.
enum Scalar<'a> {
    Text(&'a str),
    Number(&'a async_graphql::Number),
}

/// Whether a string anywhere in the request holds a NUL character.
fn has_nul(scalar: Scalar<'_>) -> bool {
    matches!(scalar, Scalar::Text(text) if text.contains('\0'))
}

/// Whether an integer anywhere in the request falls outside GraphQL's 32-bit `Int`. Every
/// number the schema takes is an `Int` (a test holds the schema to that), so such a value
/// cannot be valid anywhere: refusing it before execution makes it a document error, as the
/// specification has it, instead of a failure of one field after the others ran.
fn is_beyond_int(scalar: Scalar<'_>) -> bool {
    let Scalar::Number(number) = scalar else {
        return false;
    };
    match number.as_i64() {
        Some(integer) => i32::try_from(integer).is_err(),
        // Past i64 either way, or a float (which validation already refuses for `Int`).
        None => number.as_u64().is_some(),
    }
}

/// Whether `test` holds for a scalar anywhere in a constant value (variables, defaults).
fn const_any(value: &ConstValue, test: fn(Scalar<'_>) -> bool) -> bool {
    match value {
        ConstValue::String(text) => test(Scalar::Text(text)),
        ConstValue::Number(number) => test(Scalar::Number(number)),
        ConstValue::List(items) => items.iter().any(|item| const_any(item, test)),
        ConstValue::Object(fields) => fields.values().any(|field| const_any(field, test)),
        _ => false,
    }
}

/// Whether `test` holds for a scalar anywhere in the request: the values of the variables the
/// document declares (an `ID` variable excepted: an integer is a valid `ID` input, checked by
/// the field that reads it; undeclared variables are ignored, as execution ignores them), the
/// literal arguments of the document, and the default values of its variables.
fn request_any(
    document: &ExecutableDocument,
    variables: &Variables,
    test: fn(Scalar<'_>) -> bool,
) -> bool {
    fn value_any(value: &Value, test: fn(Scalar<'_>) -> bool) -> bool {
        match value {
            Value::String(text) => test(Scalar::Text(text)),
            Value::Number(number) => test(Scalar::Number(number)),
            Value::List(items) => items.iter().any(|item| value_any(item, test)),
            Value::Object(fields) => fields.values().any(|field| value_any(field, test)),
            _ => false,
        }
    }
    fn field_any(field: &Field, test: fn(Scalar<'_>) -> bool) -> bool {
        field
            .arguments
            .iter()
            .chain(
                field
                    .directives
                    .iter()
                    .flat_map(|directive| &directive.node.arguments),
            )
            .any(|(_, value)| value_any(&value.node, test))
            || set_any(&field.selection_set.node, test)
    }
    fn set_any(set: &SelectionSet, test: fn(Scalar<'_>) -> bool) -> bool {
        set.items.iter().any(|selection| match &selection.node {
            Selection::Field(field) => field_any(&field.node, test),
            Selection::InlineFragment(inline) => set_any(&inline.node.selection_set.node, test),
            Selection::FragmentSpread(_) => false,
        })
    }
    let declared_value = |name: &async_graphql::Name| {
        document.operations.iter().any(|(_, operation)| {
            operation
                .node
                .variable_definitions
                .iter()
                .any(|definition| {
                    definition.node.name.node == *name
                        && base_type(&definition.node.var_type.node) != "ID"
                })
        })
    };
    variables
        .iter()
        .any(|(name, value)| declared_value(name) && const_any(value, test))
        || document.operations.iter().any(|(_, operation)| {
            set_any(&operation.node.selection_set.node, test)
                || operation
                    .node
                    .variable_definitions
                    .iter()
                    .any(|definition| {
                        definition
                            .node
                            .default_value
                            .as_ref()
                            .is_some_and(|value| const_any(&value.node, test))
                    })
        })
        || document
            .fragments
            .values()
            .any(|fragment| set_any(&fragment.node.selection_set.node, test))
}

/// The named type inside any list and non-null wrappers.
fn base_type(ty: &async_graphql::parser::types::Type) -> &str {
    match &ty.base {
        async_graphql::parser::types::BaseType::Named(name) => name.as_str(),
        async_graphql::parser::types::BaseType::List(inner) => base_type(inner),
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

    #[test]
    fn every_number_the_schema_takes_is_an_int() {
        // `is_beyond_int` refuses any integer past 32 bits anywhere in a request; a `Float`
        // (or a 64-bit scalar) argument would need a typed check instead.
        let sdl = crate::graphql::sdl();
        assert!(!sdl.contains("Float"), "the schema takes a Float now");
    }

    #[test]
    fn integers_past_32_bits_are_found_in_variables_arguments_and_defaults() {
        let beyond = |query: &str, variables: serde_json::Value| {
            let document = async_graphql::parser::parse_query(query).unwrap();
            request_any(&document, &Variables::from_json(variables), is_beyond_int)
        };
        let fine = "query($n: Int = 5) { products(first: $n) { totalCount } }";
        assert!(!beyond(fine, serde_json::json!({ "n": 2147483647 })));
        assert!(beyond(fine, serde_json::json!({ "n": 2147483648_i64 })));
        assert!(beyond(fine, serde_json::json!({ "n": u64::MAX })));
        let input = "mutation($i: CreateProductInput!) { createProduct(input: $i) { id } }";
        assert!(beyond(
            input,
            serde_json::json!({ "i": { "stock": -2147483649_i64 } })
        ));
        // Variables the document does not declare are not coerced, and an integer is an `ID`.
        assert!(!beyond(
            fine,
            serde_json::json!({ "sentAt": 1732345678901_i64 })
        ));
        let by_id = "query($id: ID!) { product(id: $id) { id } }";
        assert!(!beyond(by_id, serde_json::json!({ "id": 99999999999_i64 })));
        assert!(beyond(
            "{ products(first: 99999999999) { totalCount } }",
            serde_json::json!({})
        ));
        assert!(beyond(
            "query($n: Int = 99999999999) { products(first: $n) { totalCount } }",
            serde_json::json!({})
        ));
        assert!(beyond(
            "{ ...F } fragment F on Query { products(first: -3000000000) { totalCount } }",
            serde_json::json!({})
        ));
    }

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
