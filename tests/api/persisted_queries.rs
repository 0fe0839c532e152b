//! Automatic persisted queries (`extensions.persistedQuery`): a client sends a query's hash
//! alone once the server has seen its text; every check still runs on it.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stockroom::domain::Role;

use crate::helpers::{TestApp, error_code, token};

on_both_backends!(secured: a_known_hash_stands_for_its_query_and_every_check_still_applies);

fn hash(query: &str) -> String {
    Sha256::digest(query.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

async fn send(app: &TestApp, body: Value) -> Value {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&body);
    if let Some(token) = &app.token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

fn persisted(query: Option<&str>, sha: &str, variables: Value) -> Value {
    let mut body = json!({
        "variables": variables,
        "extensions": { "persistedQuery": { "version": 1, "sha256Hash": sha } },
    });
    if let Some(query) = query {
        body["query"] = json!(query);
    }
    body
}

async fn a_known_hash_stands_for_its_query_and_every_check_still_applies(app: TestApp) {
    let admin = app.with_token(Some(token(Role::Admin, "admin")));
    let viewer = app.with_token(Some(token(Role::Viewer, "viewer")));
    admin.create_product("Hashed", "APQ-1", 5, 1).await;
    let query = "query($sku: String!) { productBySku(sku: $sku) { sku stock } }";
    let sha = hash(query);

    // Unknown hash: the documented code, so the client sends the text.
    let unknown = send(&viewer, persisted(None, &sha, json!({ "sku": "APQ-1" }))).await;
    assert_eq!(
        error_code(&unknown),
        Some("PERSISTED_QUERY_NOT_FOUND"),
        "{unknown:#}"
    );
    assert_eq!(unknown["errors"][0]["message"], "PersistedQueryNotFound");

    let registered = send(
        &viewer,
        persisted(Some(query), &sha, json!({ "sku": "APQ-1" })),
    )
    .await;
    assert_eq!(
        registered["data"]["productBySku"],
        json!({ "sku": "APQ-1", "stock": 5 })
    );
    let by_hash = send(&viewer, persisted(None, &sha, json!({ "sku": "apq-1" }))).await;
    assert_eq!(
        by_hash["data"]["productBySku"],
        json!({ "sku": "APQ-1", "stock": 5 }),
        "{by_hash:#}"
    );

    // GET never runs a document it cannot see: a hash alone must come with POST.
    let over_get = viewer
        .client
        .get(format!("{}/graphql", app.address))
        .bearer_auth(viewer.token.clone().unwrap())
        .query(&[(
            "extensions",
            json!({ "persistedQuery": { "version": 1, "sha256Hash": sha } }).to_string(),
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(over_get.status(), 400);

    // A text that does not match its hash is refused.
    let mismatch = send(
        &viewer,
        persisted(Some("{ products { totalCount } }"), &sha, json!({})),
    )
    .await;
    assert_eq!(
        error_code(&mismatch),
        Some("BAD_USER_INPUT"),
        "{mismatch:#}"
    );

    // Authorization runs on a hashed document too: a mutation the admin registered stays the
    // admin's to run.
    let mutation =
        "mutation { deleteProduct(id: \"00000000-0000-7000-8000-000000000000\") { id } }";
    let mutation_sha = hash(mutation);
    let by_admin = send(&admin, persisted(Some(mutation), &mutation_sha, json!({}))).await;
    assert_eq!(error_code(&by_admin), Some("NOT_FOUND"), "{by_admin:#}");
    let by_viewer = send(&viewer, persisted(None, &mutation_sha, json!({}))).await;
    assert_eq!(error_code(&by_viewer), Some("FORBIDDEN"), "{by_viewer:#}");
    let anonymous = send(&app, persisted(None, &sha, json!({ "sku": "APQ-1" }))).await;
    assert_eq!(
        error_code(&anonymous),
        Some("UNAUTHENTICATED"),
        "{anonymous:#}"
    );

    // And so do the document limits: a query nested too deep is refused, by text or by hash.
    let deep = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "ofType { ".repeat(20),
        " }".repeat(20)
    );
    let deep_sha = hash(&deep);
    let refused = send(&admin, persisted(Some(&deep), &deep_sha, json!({}))).await;
    assert_eq!(
        error_code(&refused),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{refused:#}"
    );
    let again = send(&admin, persisted(None, &deep_sha, json!({}))).await;
    assert_eq!(
        error_code(&again),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{again:#}"
    );
}
