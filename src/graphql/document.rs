//! Reading an executable document before it runs: which operation a request selects, and the
//! root fields of an operation. Authorization, the document limits and the HTTP layer all ask
//! these same questions, so they are answered in one place.

use std::collections::HashSet;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
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
