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
