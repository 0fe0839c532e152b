//! Health and readiness probes, GraphiQL, and requests that are not GraphQL at all.

use crate::helpers::TestApp;

on_both_backends!(
    every_response_carries_a_request_id_and_echoes_the_clients,
    health_says_ok,
    ready_is_200_when_the_database_answers,
    graphiql_is_served_on_get,
    the_stock_board_is_served_at_the_root_from_this_server_only,
    a_body_that_is_not_a_graphql_request_gets_a_graphql_shaped_bad_input_error,
    a_broken_document_gets_a_document_code_and_400_under_the_graphql_media_type,
);

on_both_backends!(with_args ["--no-graphiql"] => no_graphiql_serves_neither_page_nor_files);
on_both_backends!(with_args ["--no-ui"] => no_ui_serves_no_board);

async fn the_stock_board_is_served_at_the_root_from_this_server_only(app: TestApp) {
    let response = app.client.get(&app.address).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("Stockroom"), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let files: Vec<&str> = page
        .split('"')
        .filter(|part| part.starts_with("/board/"))
        .collect();
    assert_eq!(files.len(), 2, "{page}");
    for file in files {
        let response = app
            .client
            .get(format!("{}{file}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{file}");
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let body = response.text().await.unwrap();
        // The script talks to this server only: relative URLs, never another origin.
        assert!(
            !body.contains("https://") && !body.contains("http://localhost"),
            "{file}"
        );
    }
    let stale = app
        .client
        .get(format!("{}/board/0000000000000000/board.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 404);
}

async fn no_ui_serves_no_board(app: TestApp) {
    let response = app.client.get(&app.address).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

async fn no_graphiql_serves_neither_page_nor_files(app: TestApp) {
    for path in [
        "/graphql",
        "/graphiql-assets/graphiql@3.8.3/graphiql.min.js",
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}

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

    // Every file the page loads comes from this server, versioned and cached for good.
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let files: Vec<&str> = page
        .split(['"', '\''])
        .filter(|part| part.starts_with("/graphiql-assets/"))
        .collect();
    assert_eq!(files.len(), 5, "{page}");
    for file in files {
        let response = app
            .client
            .get(format!("{}{file}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{file}");
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            kind.starts_with("text/javascript") || kind.starts_with("text/css"),
            "{file}: {kind}"
        );
        assert!(!response.bytes().await.unwrap().is_empty());
    }
    let missing = app
        .client
        .get(format!(
            "{}/graphiql-assets/graphiql@0.0.0/graphiql.min.js",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

async fn a_body_that_is_not_a_graphql_request_gets_a_graphql_shaped_bad_input_error(app: TestApp) {
    let bodies = [
        "{ not json",
        "{\"query\": 42}",
        "[{\"query\": 42}]",
        "{\"qeury\": \"{ __typename }\"}",
        "[5]",
        "",
    ];
    // A body that is not a GraphQL request is `400` whichever media type is asked for.
    for (accept, status) in [
        ("application/json", 400),
        ("application/graphql-response+json", 400),
    ] {
        for body in bodies {
            let response = app
                .client
                .post(format!("{}/graphql", app.address))
                .header("content-type", "application/json")
                .header("accept", accept)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{accept}: {body}");
            assert!(
                response.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with(accept),
                "{accept}: {body}"
            );
            let json: serde_json::Value = response.json().await.unwrap();
            assert_eq!(
                json["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
                "{accept}: {body}"
            );
            assert!(json.get("data").is_none(), "{accept}: {body}: {json}");
        }
    }
}

async fn a_broken_document_gets_a_document_code_and_400_under_the_graphql_media_type(app: TestApp) {
    for (query, code) in [
        ("{ products { ", "GRAPHQL_PARSE_FAILED"),
        ("", "GRAPHQL_PARSE_FAILED"),
        ("{ noSuchField }", "GRAPHQL_VALIDATION_FAILED"),
        (
            "query($q: Int!) { products(first: $q) { totalCount } }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ] {
        let response = app.graphql(query, serde_json::json!({ "q": "many" })).await;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], code,
            "{query:?}"
        );
        assert_eq!(response["data"], serde_json::Value::Null);

        let strict = app
            .client
            .post(format!("{}/graphql", app.address))
            .header("accept", "application/graphql-response+json")
            .json(&serde_json::json!({ "query": query, "variables": { "q": "many" } }))
            .send()
            .await
            .unwrap();
        assert_eq!(strict.status(), 400, "{query:?}");
        let body: serde_json::Value = strict.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], code, "{query:?}");
        assert!(body.get("data").is_none(), "{query:?}: {body}");
    }
}
