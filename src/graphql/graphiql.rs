//! GraphiQL from inside the binary: the page at `GET /graphql` and the pinned GraphiQL, React
//! and graphql-ws files it loads (embedded at build time from `assets/graphiql/`, refreshed by
//! `assets/graphiql/refresh.sh`). Nothing is fetched from another origin, so GraphiQL works on
//! a machine with no internet access.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::GraphqlSettings;
use super::http::error_response;

/// Where the files are served; each file's URL carries its package version, so a browser may
/// keep it for good (a new version is a new URL).
pub const ASSETS_PATH: &str = "/graphiql-assets";

/// A file the page loads.
struct Asset {
    /// Its name under [`ASSETS_PATH`], version included.
    name: &'static str,
    /// Its media type.
    content_type: &'static str,
    /// Its bytes.
    body: &'static [u8],
}

const ASSETS: [Asset; 5] = [
    Asset {
        name: "graphiql@3.8.3/graphiql.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/graphiql/graphiql.min.js"),
    },
    Asset {
        name: "graphiql@3.8.3/graphiql.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/graphiql/graphiql.min.css"),
    },
    Asset {
        name: "react@18.3.1/react.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/graphiql/react.production.min.js"),
    },
    Asset {
        name: "react-dom@18.3.1/react-dom.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    },
    Asset {
        name: "graphql-ws@5.16.0/graphql-ws.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/graphiql/graphql-ws.min.js"),
    },
];

/// The GraphiQL page. The token a user puts in the headers editor (`{"Authorization": "Bearer
/// ..."}`, kept in the browser) is sent with every HTTP request by GraphiQL and, for
/// subscriptions, as the WebSocket's `connection_init` payload.
pub fn page() -> Html<String> {
    let asset = |name: &str| format!("{ASSETS_PATH}/{name}");
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Stockroom GraphiQL</title>
  <link rel="stylesheet" href="{css}">
  <style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="{react}"></script>
  <script src="{react_dom}"></script>
  <script src="{graphql_ws}"></script>
  <script src="{graphiql}"></script>
  <script>
    const here = new URL("/graphql", window.location.href);
    const socket = new URL("/graphql/ws", window.location.href);
    socket.protocol = here.protocol === "https:" ? "wss:" : "ws:";
    // The headers GraphiQL keeps (shouldPersistHeaders) also authenticate subscriptions.
    const savedHeaders = () => {{
      try {{ return JSON.parse(localStorage.getItem("graphiql:headers") || "{{}}") || {{}}; }}
      catch (_) {{ return {{}}; }}
    }};
    const fetcher = GraphiQL.createFetcher({{
      url: here.href,
      wsClient: graphqlWs.createClient({{
        url: socket.href,
        lazy: true,
        connectionParams: savedHeaders,
      }}),
    }});
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{ fetcher, shouldPersistHeaders: true }}),
    );
  </script>
</body>
</html>
"#,
        css = asset(ASSETS[1].name),
        react = asset(ASSETS[2].name),
        react_dom = asset(ASSETS[3].name),
        graphql_ws = asset(ASSETS[4].name),
        graphiql = asset(ASSETS[0].name),
    ))
}

/// `GET /graphiql-assets/{package@version}/{file}`: one embedded file, cached for a year
/// (nothing when GraphiQL is switched off).
pub async fn asset(
    State(settings): State<GraphqlSettings>,
    Path((package, file)): Path<(String, String)>,
) -> Response {
    let name = format!("{package}/{file}");
    let found = ASSETS.iter().find(|asset| asset.name == name);
    let Some(asset) = found.filter(|_| settings.graphiql) else {
        return error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such file");
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_every_file_from_this_server_only() {
        let Html(page) = page();
        for asset in &ASSETS {
            assert!(
                page.contains(&format!("{ASSETS_PATH}/{}", asset.name)),
                "{}",
                asset.name
            );
            assert!(!asset.body.is_empty());
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
