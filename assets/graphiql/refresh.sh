#!/usr/bin/env bash
# Refreshes the GraphiQL files the binary serves (embedded at build time) from the npm registry.
# The versions here and in src/graphql/graphiql.rs must agree; change both, run this, rebuild.
set -euo pipefail
cd "$(dirname "$0")"
GRAPHIQL=3.8.3
REACT=18.3.1
GRAPHQL_WS=5.16.0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "graphiql@${GRAPHIQL}" "react@${REACT}" "react-dom@${REACT}" "graphql-ws@${GRAPHQL_WS}" >/dev/null)
unpack() { mkdir -p "$work/$1" && tar xzf "$work/$2" -C "$work/$1"; }
unpack graphiql "graphiql-${GRAPHIQL}.tgz"
unpack react "react-${REACT}.tgz"
unpack react-dom "react-dom-${REACT}.tgz"
unpack graphql-ws "graphql-ws-${GRAPHQL_WS}.tgz"
cp "$work/graphiql/package/graphiql.min.js" "$work/graphiql/package/graphiql.min.css" .
cp "$work/react/package/umd/react.production.min.js" .
cp "$work/react-dom/package/umd/react-dom.production.min.js" .
cp "$work/graphql-ws/package/umd/graphql-ws.min.js" .
cp "$work/graphiql/package/LICENSE" LICENSE-graphiql
cp "$work/react/package/LICENSE" LICENSE-react
cp "$work/react-dom/package/LICENSE" LICENSE-react-dom
cp "$work/graphql-ws/package/LICENSE.md" LICENSE-graphql-ws
echo "graphiql ${GRAPHIQL}, react ${REACT}, react-dom ${REACT}, graphql-ws ${GRAPHQL_WS}" > VERSIONS
