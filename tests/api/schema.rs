//! The checked-in `schema.graphql` must be what `stockroom schema` prints.

#[test]
fn checked_in_schema_matches_the_generated_one() {
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
            .expect("schema.graphql exists at the top of the repository");
    let generated = stockroom::graphql::sdl();
    assert!(
        checked_in == generated,
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql` and commit it"
    );
}

/// Every root field of the schema — above all every mutation — must have a declared role, and
/// every declared role must name a real field.
#[test]
fn every_root_field_has_a_declared_role() {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    use stockroom::auth::policy;

    let document = async_graphql::parser::parse_schema(stockroom::graphql::sdl()).unwrap();
    let mut root_fields = Vec::new();
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(definition) = definition else {
            continue;
        };
        let name = definition.node.name.node.as_str();
        if !["Query", "Mutation", "Subscription"].contains(&name) {
            continue;
        }
        let TypeKind::Object(object) = &definition.node.kind else {
            continue;
        };
        for field in &object.fields {
            root_fields.push((name.to_owned(), field.node.name.node.to_string()));
        }
    }

    let mutations = root_fields
        .iter()
        .filter(|(root, _)| root == "Mutation")
        .count();
    assert!(
        mutations >= 6,
        "the walk found the mutations: {root_fields:?}"
    );
    let undeclared: Vec<_> = root_fields
        .iter()
        .filter(|(_, field)| policy::required_role(field).is_none())
        .collect();
    assert!(
        undeclared.is_empty(),
        "root fields with no declared role: {undeclared:?}"
    );
    let stale: Vec<_> = policy::POLICY
        .iter()
        .filter(|(name, _)| !root_fields.iter().any(|(_, field)| field == name))
        .collect();
    assert!(
        stale.is_empty(),
        "roles declared for fields that do not exist: {stale:?}"
    );
}
