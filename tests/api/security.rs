//! Authentication, roles, and limits on abusive requests.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use reqwest::Method;
use serde_json::{Value, json};
use stockroom::config::Cli;
use stockroom::domain::Role;
use stockroom::startup::{Application, StartupError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    TestApp, assert_error, assert_no_errors, assert_rest_error, error_code, id_of, test_auth, token,
};
use crate::ws::{Protocol, WsClient, wait_for_subscribers};

on_both_backends!(secured:
    every_mutation_allows_exactly_the_roles_the_policy_names_and_refusals_change_nothing,
    every_rest_endpoint_allows_exactly_the_roles_the_policy_names,
    queries_need_a_token_and_any_role_reads,
    bad_tokens_are_unauthenticated_over_graphql_and_rest,
    movements_record_the_authenticated_subject_as_actor,
    websocket_connections_without_a_valid_token_are_closed_before_any_subscription,
);

on_both_backends!(secured:
    tokens_may_carry_a_list_of_audiences_but_no_control_characters_in_their_subject,
);

on_both_backends!(
    a_graphql_post_that_is_not_declared_json_runs_nothing,
    open_mode_answers_only_requests_addressed_to_a_loopback_name,
    an_operation_may_ask_for_at_most_five_total_counts_and_an_empty_page_still_costs_a_page,
    a_query_nested_fifty_levels_deep_is_refused_also_inside_fragments,
    a_thousand_aliased_mutations_are_refused_before_any_runs,
    batches_are_capped,
    a_ten_mebibyte_body_gets_413,
    mutations_sent_with_get_are_refused_and_queries_work,
);

/// Who calls, in the role matrix.
#[derive(Clone, Copy, Debug)]
enum Who {
    Nobody,
    As(Role),
}

const CALLERS: [Who; 4] = [
    Who::Nobody,
    Who::As(Role::Viewer),
    Who::As(Role::Manager),
    Who::As(Role::Admin),
];

fn as_caller(app: &TestApp, who: Who) -> TestApp {
    match who {
        Who::Nobody => app.with_token(None),
        Who::As(role) => app.with_token(Some(token(role, &format!("{role:?}").to_lowercase()))),
    }
}

/// `None` when `who` may run something that needs `required`, else the code it gets.
fn expected_refusal(who: Who, required: Role) -> Option<&'static str> {
    match who {
        Who::Nobody => Some("UNAUTHENTICATED"),
        Who::As(role) if role < required => Some("FORBIDDEN"),
        Who::As(_) => None,
    }
}

async fn snapshot(admin: &TestApp, id: &str) -> (Value, usize) {
    let product = admin
        .graphql(
            "query($id: ID!) { products(includeDeleted: true, first: 100) { totalCount }
               product(id: $id) { stock version name deletedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_no_errors(&product);
    (product["data"].clone(), admin.movements(id).await.len())
}

async fn every_mutation_allows_exactly_the_roles_the_policy_names_and_refusals_change_nothing(
    app: TestApp,
) {
    let admin = as_caller(&app, Who::As(Role::Admin));
    let location = admin
        .graphql(
            "mutation { createLocation(input: { code: \"MATRIX\", name: \"Matrix\", priority: 3 }) { id } }",
            json!({}),
        )
        .await;
    assert_no_errors(&location);
    let location = location["data"]["createLocation"]["id"].clone();
    let empty_location = admin
        .graphql(
            "mutation { createLocation(input: { code: \"EMPTY\", name: \"Empty\" }) { id } }",
            json!({}),
        )
        .await;
    assert_no_errors(&empty_location);
    let empty_location = empty_location["data"]["createLocation"]["id"].clone();
    let main_location = admin
        .graphql("{ locationByCode(code: \"MAIN\") { id } }", json!({}))
        .await["data"]["locationByCode"]["id"]
        .clone();
    // A webhook nobody can reach (a public address, the discard port), whose first delivery
    // gives `redeliverWebhookEvent` something to send again.
    let webhook = admin
        .graphql(
            "mutation { createWebhook(input: { url: \"http://93.184.215.14:9/hook\", eventTypes: [\"product.created\"] }) { id } }",
            json!({}),
        )
        .await;
    assert_no_errors(&webhook);
    let webhook = webhook["data"]["createWebhook"]["id"].clone();
    admin.create_product("Hooked", "MATRIX-HOOK", 1, 0).await;
    let delivery = admin
        .graphql(
            "query($id: ID!) { webhookDeliveries(webhookId: $id) { edges { node { id } } } }",
            json!({ "id": webhook }),
        )
        .await;
    assert_no_errors(&delivery);
    let delivery = delivery["data"]["webhookDeliveries"]["edges"][0]["node"]["id"].clone();
    let mutations: [(&str, Role, &str); 19] = [
        (
            "createProduct",
            Role::Manager,
            "mutation($sku: String!) { createProduct(input: { name: \"New\", sku: $sku, stock: 1 }) { id } }",
        ),
        (
            "updateProduct",
            Role::Manager,
            "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"Renamed\" }) { id } }",
        ),
        (
            "addStock",
            Role::Manager,
            "mutation($id: ID!) { addStock(id: $id, quantity: 5) { newStock } }",
        ),
        (
            "reduceStock",
            Role::Manager,
            "mutation($id: ID!) { reduceStock(id: $id, quantity: 5) { newStock } }",
        ),
        (
            "deleteProduct",
            Role::Admin,
            "mutation($id: ID!) { deleteProduct(id: $id) { id } }",
        ),
        (
            "restoreProduct",
            Role::Admin,
            "mutation($id: ID!) { restoreProduct(id: $id) { id } }",
        ),
        (
            "reserveStock",
            Role::Manager,
            "mutation($id: ID!) { reserveStock(productId: $id, quantity: 3) { id } }",
        ),
        (
            "commitReservation",
            Role::Manager,
            "mutation($reservation: ID!) { commitReservation(id: $reservation) { id } }",
        ),
        (
            "releaseReservation",
            Role::Manager,
            "mutation($reservation: ID!) { releaseReservation(id: $reservation) { id } }",
        ),
        (
            "transferStock",
            Role::Manager,
            "mutation($id: ID!, $main: ID!, $location: ID!) { transferStock(productId: $id, fromLocationId: $main, toLocationId: $location, quantity: 2) { newStock } }",
        ),
        (
            "writeOffStock",
            Role::Manager,
            "mutation($id: ID!, $main: ID!) { writeOffStock(productId: $id, locationId: $main, quantity: 2, reason: \"broken\") { newStock } }",
        ),
        (
            "syncStock",
            Role::Manager,
            "mutation($productSku: String!) { syncStock(input: { source: \"matrix\", rows: [{ sku: $productSku, onHand: 7 }] }) { committed applied } }",
        ),
        (
            "createLocation",
            Role::Admin,
            "mutation($sku: String!) { createLocation(input: { code: $sku, name: \"New\" }) { id } }",
        ),
        (
            "updateLocation",
            Role::Admin,
            "mutation($location: ID!, $sku: String!) { updateLocation(id: $location, input: { name: $sku }) { id } }",
        ),
        (
            "archiveLocation",
            Role::Admin,
            "mutation($empty: ID!) { archiveLocation(id: $empty) { id } }",
        ),
        (
            "createWebhook",
            Role::Admin,
            "mutation { createWebhook(input: { url: \"https://93.184.215.14/matrix\", eventTypes: [\"lot.expired\"] }) { id secret } }",
        ),
        (
            "updateWebhook",
            Role::Admin,
            "mutation($webhook: ID!, $sku: String!) { updateWebhook(id: $webhook, input: { description: $sku }) { id } }",
        ),
        (
            "redeliverWebhookEvent",
            Role::Admin,
            "mutation($delivery: ID!) { redeliverWebhookEvent(deliveryId: $delivery) { id status } }",
        ),
        // Last: the admin's call deletes the webhook the two above use.
        (
            "deleteWebhook",
            Role::Admin,
            "mutation($webhook: ID!) { deleteWebhook(id: $webhook) { id } }",
        ),
    ];
    // The matrix covers every mutation of the schema: a new one must be added here.
    for field in root_fields_of(&stockroom::graphql::sdl(), "Mutation") {
        assert!(
            mutations.iter().any(|(name, ..)| *name == field),
            "the role matrix misses the mutation {field}"
        );
    }
    for (index, (name, required, document)) in mutations.iter().enumerate() {
        for (caller, who) in CALLERS.iter().enumerate() {
            let product = id_of(
                &admin
                    .create_product("Matrix", &format!("M-{index}-{caller}"), 50, 0)
                    .await,
            );
            let reservation = admin
                .graphql(
                    "mutation($id: ID!) { reserveStock(productId: $id, quantity: 2) { id } }",
                    json!({ "id": product }),
                )
                .await;
            assert_no_errors(&reservation);
            let reservation = reservation["data"]["reserveStock"]["id"].clone();
            if *name == "restoreProduct" {
                let deleted = admin
                    .graphql(
                        "mutation($id: ID!) { deleteProduct(id: $id) { id } }",
                        json!({ "id": product }),
                    )
                    .await;
                assert_no_errors(&deleted);
            }
            let before = snapshot(&admin, &product).await;

            let variables = json!({
                "id": product,
                "sku": format!("NEW-{index}-{caller}"),
                "productSku": format!("M-{index}-{caller}"),
                "reservation": reservation,
                "location": location,
                "empty": empty_location,
                "main": main_location,
                "webhook": webhook,
                "delivery": delivery,
            });
            let response = as_caller(&app, *who).graphql(document, variables).await;

            match expected_refusal(*who, *required) {
                None => assert_no_errors(&response),
                Some(code) => {
                    assert_eq!(
                        error_code(&response),
                        Some(code),
                        "{name} as {who:?}: {response:#}"
                    );
                    assert_eq!(
                        snapshot(&admin, &product).await,
                        before,
                        "{name} as {who:?} changed something"
                    );
                }
            }
        }
    }
}

async fn every_rest_endpoint_allows_exactly_the_roles_the_policy_names(app: TestApp) {
    let admin = as_caller(&app, Who::As(Role::Admin));
    let product = id_of(&admin.create_product("Rest", "REST-M", 100, 0).await);
    let endpoints: [(Method, String, Option<Value>, Role, u16); 6] = [
        (
            Method::POST,
            "/products".into(),
            Some(json!({ "name": "N", "sku": "will-vary" })),
            Role::Manager,
            201,
        ),
        (
            Method::PUT,
            format!("/products/{product}/add"),
            Some(json!({ "quantity": 1 })),
            Role::Manager,
            200,
        ),
        (
            Method::PUT,
            format!("/products/{product}/reduce"),
            Some(json!({ "quantity": 1 })),
            Role::Manager,
            200,
        ),
        (
            Method::POST,
            "/products/bulk-update".into(),
            Some(json!({ "source": "matrix", "rows": [{ "sku": "REST-M", "delta": 1 }] })),
            Role::Manager,
            200,
        ),
        (
            Method::GET,
            format!("/products/{product}"),
            None,
            Role::Viewer,
            200,
        ),
        (
            Method::GET,
            format!("/products/{product}/status"),
            None,
            Role::Viewer,
            200,
        ),
    ];
    for (method, path, body, required, success) in endpoints {
        for (caller, who) in CALLERS.iter().enumerate() {
            let before = snapshot(&admin, &product).await;
            let body = body.clone().map(|mut body| {
                if body.get("sku").is_some() {
                    body["sku"] = json!(format!("REST-{caller}"));
                }
                body
            });
            let response = as_caller(&app, *who)
                .rest(method.clone(), &path, body)
                .await;
            match expected_refusal(*who, required) {
                None => assert_eq!(
                    response.status, success,
                    "{method} {path} as {who:?}: {:#}",
                    response.body
                ),
                Some(code) => {
                    let status = if code == "UNAUTHENTICATED" { 401 } else { 403 };
                    assert_rest_error(&response, status, code);
                    assert_eq!(snapshot(&admin, &product).await, before);
                }
            }
        }
    }
}

async fn queries_need_a_token_and_any_role_reads(app: TestApp) {
    let query = "{ products { totalCount } stockMovements { totalCount } }";
    let anonymous = app.graphql(query, json!({})).await;
    assert_error(&anonymous, "UNAUTHENTICATED");

    let viewer = as_caller(&app, Who::As(Role::Viewer))
        .graphql(query, json!({}))
        .await;
    assert_no_errors(&viewer);
}

/// The field names of `type <name>` in an SDL text (fields sit one tab in; descriptions are
/// skipped).
fn root_fields_of(sdl: &str, name: &str) -> Vec<String> {
    let body = sdl
        .split(&format!("\ntype {name} {{\n"))
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("the type is in the schema");
    let mut in_description = false;
    let mut fields = Vec::new();
    for line in body.lines() {
        if line.trim() == "\"\"\"" {
            in_description = !in_description;
            continue;
        }
        if in_description || !line.starts_with('\t') || line.starts_with("\t\t") {
            continue;
        }
        let field = line.trim().split(['(', ':']).next().unwrap_or_default();
        if field.starts_with(|c: char| c.is_ascii_alphabetic()) {
            fields.push(field.to_owned());
        }
    }
    assert!(!fields.is_empty(), "no fields found in type {name}");
    fields
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn signed(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn bad_tokens_are_unauthenticated_over_graphql_and_rest(app: TestApp) {
    let auth = test_auth();
    let secret = crate::helpers::TEST_SECRET;
    let valid = |extra: Value| {
        let mut claims = json!({ "sub": "mallory", "role": "admin", "exp": now() + 600,
                                 "iss": auth.issuer, "aud": auth.audience });
        for (key, value) in extra.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        claims
    };
    let unsigned = {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(valid(json!({})).to_string());
        format!("{header}.{claims}.")
    };
    let tokens = [
        (
            "expired",
            signed(valid(json!({ "exp": now() - 120 })), secret),
        ),
        (
            "wrong signature",
            signed(valid(json!({})), "another-secret"),
        ),
        ("alg none", unsigned),
        (
            "wrong audience",
            signed(valid(json!({ "aud": "someone-else" })), secret),
        ),
        (
            "wrong issuer",
            signed(valid(json!({ "iss": "someone-else" })), secret),
        ),
        (
            "missing role",
            signed(valid(json!({ "role": null })), secret),
        ),
        (
            "unknown role",
            signed(valid(json!({ "role": "superuser" })), secret),
        ),
        ("missing exp", signed(valid(json!({ "exp": null })), secret)),
        ("garbage", "not.a.token".to_owned()),
    ];
    let admin = as_caller(&app, Who::As(Role::Admin));
    let product = id_of(&admin.create_product("Guarded", "TOK-1", 10, 0).await);

    for (case, bad) in tokens {
        let caller = app.with_token(Some(bad));
        let response = caller.reduce_stock(&product, 1).await;
        assert_eq!(
            error_code(&response),
            Some("UNAUTHENTICATED"),
            "{case}: {response:#}"
        );
        let rest = caller
            .rest(
                Method::PUT,
                &format!("/products/{product}/reduce"),
                Some(json!({ "quantity": 1 })),
            )
            .await;
        assert_rest_error(&rest, 401, "UNAUTHENTICATED");
    }
    assert_eq!(admin.product(&product).await["stock"], 10);
}

async fn movements_record_the_authenticated_subject_as_actor(app: TestApp) {
    let alice = app.with_token(Some(token(Role::Manager, "alice")));
    let product = id_of(&alice.create_product("Audited", "ACT-1", 10, 0).await);

    let response = alice.reduce_stock(&product, 2).await;

    assert_no_errors(&response);
    assert_eq!(
        response["data"]["reduceStock"]["movement"]["actor"],
        "alice"
    );
    let movements = alice.movements(&product).await;
    assert!(
        movements
            .iter()
            .all(|movement| movement["actor"] == "alice")
    );
}

async fn websocket_connections_without_a_valid_token_are_closed_before_any_subscription(
    app: TestApp,
) {
    let expired = signed(
        json!({ "sub": "eve", "role": "admin", "exp": now() - 600, "aud": "stockroom", "iss": "stockroom-tests" }),
        crate::helpers::TEST_SECRET,
    );
    for payload in [
        json!({}),
        json!({ "Authorization": "Bearer nonsense" }),
        json!({ "Authorization": format!("Bearer {expired}") }),
    ] {
        for protocol in [Protocol::TransportWs, Protocol::LegacyGraphqlWs] {
            let refused = WsClient::try_connect(&app, protocol, payload.clone()).await;
            assert!(refused.is_err(), "{payload} over {protocol:?} was accepted");
        }
    }
    assert_eq!(app.services().events().subscriber_count(), 0);

    // A viewer's token is enough to subscribe.
    let viewer = app.with_token(Some(token(Role::Viewer, "dashboard")));
    let mut client = WsClient::connect(&viewer, Protocol::TransportWs).await;
    client
        .subscribe("s", "subscription { stockChanged { delta } }", json!({}))
        .await;
    wait_for_subscribers(&app, 1).await;
    let manager = app.with_token(Some(token(Role::Manager, "ops")));
    let product = id_of(&manager.create_product("Live", "WS-AUTH", 5, 0).await);
    assert_no_errors(&manager.reduce_stock(&product, 1).await);
    assert_eq!(
        client.next_data("stockChanged").await["delta"],
        5,
        "the INITIAL movement"
    );
    assert_eq!(client.next_data("stockChanged").await["delta"], -1);
}

fn deep_introspection(levels: usize) -> String {
    let mut query = String::from("{ __schema { types { ");
    query.push_str(&"ofType { ".repeat(levels));
    query.push_str("name");
    query.push_str(&" }".repeat(levels));
    query.push_str(" } } }");
    query
}

/// `{ __schema { types { ...F0 } } }` where each of `count` fragments nests five `ofType`s.
fn deep_fragments(count: usize) -> String {
    let mut document = String::from("{ __schema { types { ...F0 } } }\n");
    for level in 0..count {
        let inner = if level + 1 < count {
            format!("...F{}", level + 1)
        } else {
            "name".to_owned()
        };
        document.push_str(&format!(
            "fragment F{level} on __Type {{ ofType {{ ofType {{ ofType {{ ofType {{ ofType {{ {inner} }} }} }} }} }} }}\n"
        ));
    }
    document
}

async fn a_query_nested_fifty_levels_deep_is_refused_also_inside_fragments(app: TestApp) {
    // Refused by the parser's own recursion limit or by the depth limit, whichever comes first.
    let direct = app.graphql(&deep_introspection(50), json!({})).await;
    assert!(
        matches!(
            crate::helpers::error_code(&direct),
            Some("GRAPHQL_PARSE_FAILED" | "GRAPHQL_VALIDATION_FAILED")
        ),
        "{direct}"
    );
    let message = direct["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("nested too deep") || message.contains("recursion depth"),
        "{direct}"
    );

    // Depth spread over fragments of five levels each: 50 levels, and 20 levels (under the
    // parser's own limit of 32, so the configured --max-query-depth of 12 is what refuses it).
    for fragments in [10, 4] {
        let hidden = app.graphql(&deep_fragments(fragments), json!({})).await;
        assert!(
            matches!(
                crate::helpers::error_code(&hidden),
                Some("GRAPHQL_PARSE_FAILED" | "GRAPHQL_VALIDATION_FAILED")
            ),
            "{hidden}"
        );
        let message = hidden["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("nested too deep") || message.contains("recursion depth"),
            "{hidden}"
        );
        if fragments == 4 {
            assert!(message.contains("nested too deep"), "{hidden}");
        }
    }

    // A legitimate query still works.
    assert_no_errors(&app.graphql(&deep_introspection(3), json!({})).await);
}

async fn a_thousand_aliased_mutations_are_refused_before_any_runs(app: TestApp) {
    let product = id_of(&app.create_product("Target", "ALIAS-1", 10, 0).await);
    let mut document = String::from("mutation($id: ID!) {");
    for alias in 0..1000 {
        document.push_str(&format!(
            " a{alias}: addStock(id: $id, quantity: 1) {{ newStock }}"
        ));
    }
    document.push('}');

    let response = app.graphql(&document, json!({ "id": product })).await;

    assert_error(&response, "GRAPHQL_VALIDATION_FAILED");
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aliases"),
        "{response}"
    );
    assert_eq!(app.product(&product).await["stock"], 10, "no resolver ran");
    assert_eq!(app.movements(&product).await.len(), 1);
}

async fn batches_are_capped(app: TestApp) {
    let url = format!("{}/graphql", app.address);
    let operation = json!({ "query": "{ products { totalCount } }" });
    let small: Vec<Value> = vec![operation.clone(); 3];
    let large: Vec<Value> = vec![operation; 100];

    let accepted = app.client.post(&url).json(&small).send().await.unwrap();
    assert_eq!(accepted.status(), 200);
    let answers: Value = accepted.json().await.unwrap();
    assert_eq!(answers.as_array().unwrap().len(), 3);

    let refused = app.client.post(&url).json(&large).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
}

/// Announces a 10 MiB body and reads the answer before sending it, as a client that honours an
/// early answer would (the server answers from `Content-Length` alone and closes).
async fn announce_ten_mebibytes(app: &TestApp, path: &str) -> (u16, Value) {
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{{\"query\": \"",
        10 * 1024 * 1024
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn a_ten_mebibyte_body_gets_413(app: TestApp) {
    // Each endpoint answers in its own error shape.
    let (status, body) = announce_ten_mebibytes(&app, "/graphql").await;
    assert_eq!(status, 413);
    assert_eq!(
        body,
        json!({ "errors": [{ "message": "the request body is too large", "extensions": { "code": "BAD_USER_INPUT" } }] })
    );
    let (status, body) = announce_ten_mebibytes(&app, "/products").await;
    assert_eq!(status, 413);
    assert_eq!(
        body,
        json!({ "error": true, "message": "the request body is too large", "code": "BAD_USER_INPUT" })
    );
    // The server keeps serving.
    assert_no_errors(&app.graphql("{ products { totalCount } }", json!({})).await);
}

async fn mutations_sent_with_get_are_refused_and_queries_work(app: TestApp) {
    let product = id_of(&app.create_product("Linked", "GET-1", 10, 0).await);
    let get = |query: String| {
        let app = &app;
        async move {
            app.client
                .get(format!("{}/graphql", app.address))
                .query(&[("query", query)])
                .send()
                .await
                .unwrap()
        }
    };

    let mutation = get(format!(
        "mutation {{ reduceStock(id: \"{product}\", quantity: 5) {{ newStock }} }}"
    ))
    .await;
    assert_eq!(mutation.status(), 405);
    let body: Value = mutation.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(app.product(&product).await["stock"], 10);

    let query = get(format!("{{ product(id: \"{product}\") {{ stock }} }}")).await;
    assert_eq!(query.status(), 200);
    let body: Value = query.json().await.unwrap();
    assert_eq!(body["data"]["product"]["stock"], 10);
}

#[tokio::test]
async fn open_mode_refuses_to_listen_beyond_loopback() {
    let cli = Cli::try_parse_from([
        "stockroom",
        "--listen",
        "0.0.0.0:8080",
        "--database-url",
        "sqlite::memory:",
    ])
    .unwrap();

    let refused = Application::build(&cli.config)
        .await
        .err()
        .expect("refused");

    assert!(
        matches!(refused, StartupError::OpenModeOnPublicAddress(_)),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("STOCKROOM_JWT_SECRET"),
        "{refused}"
    );
}

async fn a_graphql_post_that_is_not_declared_json_runs_nothing(app: TestApp) {
    let id = id_of(&app.create_product("Cross-site", "CSRF-1", 10, 0).await);
    let body = json!({
        "query": "mutation($id: ID!) { reduceStock(id: $id, quantity: 5) { newStock } }",
        "variables": { "id": id },
    })
    .to_string();
    // What a web page on another site can send without a CORS preflight, and worse.
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/graphql-response+json"),
        None,
    ] {
        let mut request = app
            .client
            .post(format!("{}/graphql", app.address))
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{answer}"
        );
    }
    assert_eq!(app.product(&id).await["stock"], 10, "nothing ran");

    let declared = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 200);
    assert_eq!(app.product(&id).await["stock"], 5);
}

async fn open_mode_answers_only_requests_addressed_to_a_loopback_name(app: TestApp) {
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let send = |host: String| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/graphql", app.address))
                .header("host", host)
                .json(&json!({ "query": "{ products { totalCount } }" }))
                .send()
                .await
                .unwrap()
        }
    };
    // A page on `evil.example` that rebinds its name to 127.0.0.1 still sends its own name.
    for host in ["evil.example", &format!("evil.example:{port}"), "10.0.0.7"] {
        let refused = send(host.to_owned()).await;
        assert_eq!(refused.status(), 403, "{host}");
        let answer: Value = refused.json().await.unwrap();
        assert_eq!(answer["errors"][0]["extensions"]["code"], "FORBIDDEN");
    }
    let rest = app
        .client
        .get(format!("{}/health", app.address))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 403);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(send(host.clone()).await.status(), 200, "{host}");
    }
    // A `Host` that is not text names no loopback either (raw bytes: no client library sends
    // such a header).
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let body =
        r#"{"query":"mutation { createProduct(input: { name: \"X\", sku: \"HOST-1\" }) { id } }"}"#;
    let mut head = format!(
        "POST /graphql HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\nHost: evil.example",
        body.len()
    )
    .into_bytes();
    head.extend_from_slice(b"\xff\r\n\r\n");
    head.extend_from_slice(body.as_bytes());
    socket.write_all(&head).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let created = app
        .graphql("{ productBySku(sku: \"HOST-1\") { id } }", json!({}))
        .await;
    assert_eq!(created["data"]["productBySku"], Value::Null);
}

async fn tokens_may_carry_a_list_of_audiences_but_no_control_characters_in_their_subject(
    app: TestApp,
) {
    let claims = |sub: &str, aud: Value| json!({ "sub": sub, "role": "manager", "exp": now() + 600, "iss": "stockroom-tests", "aud": aud });
    let secret = crate::helpers::TEST_SECRET;
    let listed = app.with_token(Some(signed(
        claims("carol", json!(["another-service", "stockroom"])),
        secret,
    )));
    assert_no_errors(
        &listed
            .graphql("{ products { totalCount } }", json!({}))
            .await,
    );
    let not_listed = app.with_token(Some(signed(
        claims("carol", json!(["another-service"])),
        secret,
    )));
    assert_error(
        &not_listed
            .graphql("{ products { totalCount } }", json!({}))
            .await,
        "UNAUTHENTICATED",
    );
    for subject in ["nul\u{0}byte", "line\nbreak", "bell\u{7}"] {
        let caller = app.with_token(Some(signed(claims(subject, json!("stockroom")), secret)));
        let response = caller
            .try_create_product(json!({ "name": "Control", "sku": "CTRL-1" }))
            .await;
        assert_error(&response, "UNAUTHENTICATED");
        let rest = caller
            .rest(
                Method::POST,
                "/products",
                Some(json!({ "name": "C", "sku": "CTRL-2" })),
            )
            .await;
        assert_rest_error(&rest, 401, "UNAUTHENTICATED");
    }
}

async fn an_operation_may_ask_for_at_most_five_total_counts_and_an_empty_page_still_costs_a_page(
    app: TestApp,
) {
    let counts = |how_many: usize| {
        let fields: Vec<String> = (0..how_many)
            .map(|index| format!("c{index}: products(first: 0) {{ totalCount }}"))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    assert_no_errors(&app.graphql(&counts(5), json!({})).await);
    let six = app.graphql(&counts(6), json!({})).await;
    assert_error(&six, "GRAPHQL_VALIDATION_FAILED");
    assert!(
        six["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("totalCount"),
        "{six}"
    );
    // Through a fragment spread twice, counts still add up.
    let spread = app
        .graphql(
            "{ a: products { ...C } b: products { ...C } c: products { ...D } }
             fragment C on ProductConnection { totalCount }
             fragment D on ProductConnection { ...C ...C ...C ...C }",
            json!({}),
        )
        .await;
    assert_error(&spread, "GRAPHQL_VALIDATION_FAILED");

    // `first: 0` still runs the page's query: it is priced like a page of one, so an empty
    // page of a huge selection is refused as the same page with one item would be.
    let huge = format!("nodes {{ {} }}", "id ".repeat(6000));
    for first in [0, 1] {
        let response = app
            .graphql(
                &format!("{{ products(first: {first}) {{ {huge} }} }}"),
                json!({}),
            )
            .await;
        assert_error(&response, "GRAPHQL_VALIDATION_FAILED");
        assert!(
            response["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("too complex"),
            "{response}"
        );
    }
}

#[tokio::test]
async fn a_token_secret_shorter_than_32_bytes_is_refused_at_start() {
    let cli = Cli::try_parse_from([
        "stockroom",
        "--database-url",
        "sqlite::memory:",
        "--listen",
        "127.0.0.1:0",
        "--jwt-secret",
        "only-31-bytes-long-secret-value",
    ])
    .unwrap();
    let error = Application::build(&cli.config)
        .await
        .err()
        .expect("refused");
    assert!(matches!(error, StartupError::WeakSecret), "{error}");
    assert!(error.to_string().contains("at least 32 bytes"), "{error}");
}
