//! `GET /metrics`: Prometheus text with bounded labels.

use serde_json::json;

use crate::helpers::{TestApp, assert_error, id_of};
use crate::ws::{Protocol, WsClient, wait_for_subscribers};

on_both_backends!(with_args ["--metrics-listen", "127.0.0.1:0"] =>
    metrics_count_requests_operations_stock_outcomes_subscriptions_and_the_pool);
on_both_backends!(metrics_are_not_served_on_the_api_address);

/// The value of the first series whose line starts with `prefix`.
fn series(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

async fn metrics_count_requests_operations_stock_outcomes_subscriptions_and_the_pool(app: TestApp) {
    let id = id_of(&app.create_product("Measured", "MET-1", 1, 0).await);
    app.reduce_stock(&id, 1).await;
    assert_error(&app.reduce_stock(&id, 1).await, "INSUFFICIENT_STOCK");
    app.graphql("{ thisFieldDoesNotExist }", json!({})).await;
    let mut client = WsClient::connect(&app, Protocol::TransportWs).await;
    client
        .subscribe("m", "subscription { stockChanged { delta } }", json!({}))
        .await;
    wait_for_subscribers(&app, 1).await;

    let metrics_address = app.metrics_address.as_deref().expect("--metrics-listen");
    let response = app
        .client
        .get(format!("{metrics_address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();

    let at_least = |prefix: &str, minimum: f64| {
        let value =
            series(&text, prefix).unwrap_or_else(|| panic!("no series {prefix} in:\n{text}"));
        assert!(value >= minimum, "{prefix} = {value}");
    };
    at_least(
        r#"stockroom_http_requests_total{route="/graphql",method="POST",status="200"}"#,
        4.0,
    );
    at_least(
        r#"stockroom_graphql_operations_total{field="reduceStock",outcome="ok"}"#,
        1.0,
    );
    at_least(
        r#"stockroom_graphql_operations_total{field="reduceStock",outcome="error"}"#,
        1.0,
    );
    at_least(
        r#"stockroom_stock_changes_total{operation="reduceStock",outcome="success"}"#,
        1.0,
    );
    at_least(
        r#"stockroom_stock_changes_total{operation="reduceStock",outcome="INSUFFICIENT_STOCK"}"#,
        1.0,
    );
    at_least(
        r#"stockroom_http_request_duration_seconds_bucket{route="/graphql",method="POST",le="+Inf"}"#,
        4.0,
    );
    at_least("stockroom_active_subscriptions", 1.0);
    at_least(r#"stockroom_db_pool_connections{state="idle"}"#, 0.0);
    // Client-chosen names never become labels (an invalid document is not even executed).
    assert!(!text.contains("thisFieldDoesNotExist"));
}

async fn metrics_are_not_served_on_the_api_address(app: TestApp) {
    assert!(app.metrics_address.is_none());
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
