//! Health and readiness probes, GraphiQL, and requests that are not GraphQL at all.

use crate::helpers::TestApp;

on_both_backends!(
    every_response_carries_a_request_id_and_echoes_the_clients,
    health_says_ok,
    ready_is_200_when_the_database_answers,
    graphiql_is_served_on_get,
    a_body_that_is_not_a_graphql_request_gets_a_graphql_shaped_bad_input_error,
    a_syntax_error_gets_bad_user_input,
);

async fn every_response_carries_a_request_id_and_echoes_the_clients(app: TestApp) {
    let generated = app
        .client
        .get(format!("{}/health", app.address))
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let refused = app
        .client
        .get(format!("{}/products/nope", app.address))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    assert_eq!(refused.headers()["x-request-id"], "client-chosen-42");
}

async fn health_says_ok(app: TestApp) {
    let response = app
        .client
        .get(format!("{}/health", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
}

async fn ready_is_200_when_the_database_answers(app: TestApp) {
    let response = app
        .client
        .get(format!("{}/ready", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
}

async fn graphiql_is_served_on_get(app: TestApp) {
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("graphiql"), "{page}");
    assert!(page.contains("/graphql/ws"));
}

async fn a_body_that_is_not_a_graphql_request_gets_a_graphql_shaped_bad_input_error(app: TestApp) {
    let bodies = ["{ not json", "{\"query\": 42}", "[{\"query\": 42}]"];
    for body in bodies {
        let response = app
            .client
            .post(format!("{}/graphql", app.address))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let json: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            json["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
    }
}

async fn a_syntax_error_gets_bad_user_input(app: TestApp) {
    for query in ["{ products { ", "", "{ noSuchField }"] {
        let response = app.graphql(query, serde_json::json!({})).await;

        assert_eq!(
            response["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{query:?}"
        );
        assert_eq!(response["data"], serde_json::Value::Null);
    }
}
