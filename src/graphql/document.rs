//! Reading an executable document before it runs: which operation a request selects, and the
//! root fields of an operation. Authorization, the document limits and the HTTP layer all ask
//! these same questions, so they are answered in one place.

use std::collections::HashSet;

use async_graphql::Positioned;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Field, OperationDefinition, OperationType, Selection,
    SelectionSet,
};

/// The operation a request runs: the named one, or the only one.
pub(super) fn selected_operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(&operation.node),
        (DocumentOperations::Multiple(operations), Some(name)) => operations
            .iter()
            .find(|(operation_name, _)| operation_name.as_str() == name)
            .map(|(_, operation)| &operation.node),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next().map(|operation| &operation.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// A root field as an operation selects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RootField<'a> {
    /// Its key in the response: the alias, or else the name.
    pub key: &'a str,
    /// The schema field.
    pub name: &'a str,
}

/// The root fields an operation selects, through fragments and inline fragments (each named
/// fragment entered once, so a cycle cannot loop; validation refuses cycles anyway).
pub(super) fn root_fields<'a>(
    operation: &'a OperationDefinition,
    document: &'a ExecutableDocument,
) -> Vec<RootField<'a>> {
    fn collect<'a>(
        set: &'a SelectionSet,
        document: &'a ExecutableDocument,
        entered: &mut HashSet<&'a str>,
        fields: &mut Vec<RootField<'a>>,
    ) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let key = field
                        .node
                        .alias
                        .as_ref()
                        .map_or(name, |alias| alias.node.as_str());
                    fields.push(RootField { key, name });
                }
                Selection::InlineFragment(inline) => {
                    collect(&inline.node.selection_set.node, document, entered, fields);
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if let Some(fragment) = document.fragments.get(name)
                        && entered.insert(name.as_str())
                    {
                        collect(&fragment.node.selection_set.node, document, entered, fields);
                    }
                }
            }
        }
    }
    let mut fields = Vec::new();
    collect(
        &operation.selection_set.node,
        document,
        &mut HashSet::new(),
        &mut fields,
    );
    fields
}

/// Makes each root field of a mutation run once however often the document selects it under
/// the same response key, as the specification merges such fields: a plain repeat (same field,
/// same arguments, no directives) is folded into the first, its selections added to the
/// first's. (async-graphql would run each repeat, so a change would apply twice.)
pub(super) fn merge_repeated_mutation_fields(document: &mut ExecutableDocument) {
    let operations: Vec<&mut OperationDefinition> = match &mut document.operations {
        DocumentOperations::Single(operation) => vec![&mut operation.node],
        DocumentOperations::Multiple(operations) => operations
            .values_mut()
            .map(|operation| &mut operation.node)
            .collect(),
    };
    for operation in operations {
        if operation.ty != OperationType::Mutation {
            continue;
        }
        let items = std::mem::take(&mut operation.selection_set.node.items);
        let mut kept: Vec<Positioned<Selection>> = Vec::with_capacity(items.len());
        for selection in items {
            let Selection::Field(field) = &selection.node else {
                kept.push(selection);
                continue;
            };
            let first = kept.iter_mut().find_map(|earlier| match &mut earlier.node {
                Selection::Field(earlier) if same_plain_field(&earlier.node, &field.node) => {
                    Some(earlier)
                }
                _ => None,
            });
            match first {
                Some(first) => {
                    let Selection::Field(field) = selection.node else {
                        unreachable!("matched as a field above")
                    };
                    first
                        .node
                        .selection_set
                        .node
                        .items
                        .extend(field.node.selection_set.node.items);
                }
                None => kept.push(selection),
            }
        }
        operation.selection_set.node.items = kept;
    }
}

/// Whether two root selections are the same field under the same key with the same arguments
/// and neither has directives.
fn same_plain_field(first: &Field, second: &Field) -> bool {
    first.response_key().node == second.response_key().node
        && first.name.node == second.name.node
        && first.directives.is_empty()
        && second.directives.is_empty()
        && first.arguments.len() == second.arguments.len()
        && first.arguments.iter().zip(&second.arguments).all(
            |((name, value), (other_name, other_value))| {
                name.node == other_name.node && value.node == other_value.node
            },
        )
}

/// A response key a mutation still selects more than once at its root after
/// [`merge_repeated_mutation_fields`] (through fragments, or with directives): such a document
/// is refused, since each selection would run.
pub(super) fn repeated_mutation_key(document: &ExecutableDocument) -> Option<String> {
    fn keys<'a>(
        set: &'a SelectionSet,
        document: &'a ExecutableDocument,
        entering: &mut Vec<&'a str>,
        found: &mut Vec<&'a str>,
    ) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => found.push(field.node.response_key().node.as_str()),
                Selection::InlineFragment(inline) => {
                    keys(&inline.node.selection_set.node, document, entering, found);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    // A cycle is refused by validation later; here it only must not loop.
                    if entering.contains(&name) {
                        continue;
                    }
                    if let Some(fragment) = document.fragments.get(name) {
                        entering.push(name);
                        keys(&fragment.node.selection_set.node, document, entering, found);
                        entering.pop();
                    }
                }
            }
        }
    }
    document
        .operations
        .iter()
        .filter(|(_, operation)| operation.node.ty == OperationType::Mutation)
        .find_map(|(_, operation)| {
            let mut found = Vec::new();
            keys(
                &operation.node.selection_set.node,
                document,
                &mut Vec::new(),
                &mut found,
            );
            let mut seen = HashSet::new();
            found
                .into_iter()
                .find(|key| !seen.insert(*key))
                .map(str::to_owned)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_fields_are_found_through_fragments_with_their_response_keys() {
        let document = async_graphql::parser::parse_query(
            "query A { a: product(id: 1) { id } ...F ... on Query { c: products { totalCount } } }
             query B { reservation(id: 2) { id } }
             fragment F on Query { productBySku(sku: \"x\") { id } ...F }",
        )
        .unwrap();
        assert!(
            selected_operation(&document, None).is_none(),
            "two operations, no name"
        );
        let operation = selected_operation(&document, Some("A")).unwrap();
        let fields = root_fields(operation, &document);
        assert_eq!(
            fields,
            [
                RootField {
                    key: "a",
                    name: "product"
                },
                RootField {
                    key: "productBySku",
                    name: "productBySku"
                },
                RootField {
                    key: "c",
                    name: "products"
                },
            ]
        );
    }
}
