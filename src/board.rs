//! The stock board at `GET /`: one page (HTML, CSS and JavaScript embedded from
//! `assets/board/`, no build step) that reads products through the public GraphQL API and keeps
//! them current over its WebSocket subscriptions. It makes no request to another origin.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::graphql::error_response;

const SCRIPT: &str = include_str!("../assets/board/board.js");
const STYLE: &str = include_str!("../assets/board/board.css");

/// A fingerprint of the board's files: their URLs carry it, so a browser may keep them for good
/// (a changed file is a new URL).
static FINGERPRINT: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = DefaultHasher::new();
    (SCRIPT, STYLE).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
});

/// `GET /`: the board.
pub async fn page() -> Html<String> {
    Html(
        include_str!("../assets/board/index.html")
            .replace("{{ASSETS}}", &format!("/board/{}", *FINGERPRINT)),
    )
}

/// `GET /board/{fingerprint}/{file}`: the board's script or style sheet.
pub async fn asset(Path((version, file)): Path<(String, String)>) -> Response {
    let (content_type, body) = match file.as_str() {
        "board.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "board.css" => ("text/css; charset=utf-8", STYLE),
        _ => return error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such file"),
    };
    if version != *FINGERPRINT {
        return error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such file");
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        body,
    )
        .into_response()
}
