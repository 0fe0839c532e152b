// The stock board: products from the public GraphQL API, kept current by its WebSocket
// subscriptions (graphql-transport-ws). No build step, no other origin.
"use strict";

const PAGE_SIZE = 20;
const FEED_LENGTH = 50;
const PRODUCT_FIELDS = "id sku name stock reserved available reorderLevel status";

const byId = (id) => document.getElementById(id);
const state = { search: "", status: "", page: { first: PAGE_SIZE }, info: null, rows: new Map() };

function token() {
  return localStorage.getItem("stockroom:token") || "";
}

function showError(message) {
  const box = byId("error");
  box.textContent = message;
  box.hidden = !message;
}

async function graphql(query, variables = {}) {
  const headers = { "content-type": "application/json", accept: "application/graphql-response+json" };
  if (token()) headers.authorization = `Bearer ${token()}`;
  const response = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  const body = await response.json();
  if (body.errors && body.errors.length) {
    throw new Error(body.errors.map((error) => `${error.message} (${error.extensions?.code ?? "error"})`).join("; "));
  }
  return body.data;
}

// ---- products -----------------------------------------------------------------------------

async function loadProducts() {
  const data = await graphql(
    `query Board($first: Int, $after: String, $last: Int, $before: String, $search: String, $status: StockStatus) {
      products(first: $first, after: $after, last: $last, before: $before, search: $search, status: $status) {
        totalCount
        nodes { ${PRODUCT_FIELDS} }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      }
    }`,
    { ...state.page, search: state.search || null, status: state.status || null },
  );
  const { nodes, pageInfo, totalCount } = data.products;
  state.info = pageInfo;
  state.rows.clear();
  const body = byId("products").tBodies[0];
  body.replaceChildren(...nodes.map(productRow));
  byId("summary").textContent = `${totalCount} product${totalCount === 1 ? "" : "s"}`;
  byId("previous").disabled = !pageInfo.hasPreviousPage;
  byId("next").disabled = !pageInfo.hasNextPage;
  showError("");
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function statusBadge(status) {
  const badge = document.createElement("span");
  badge.className = status === "LOW_STOCK" ? "badge low" : "badge in";
  badge.textContent = status === "LOW_STOCK" ? "Low stock" : "In stock";
  return badge;
}

function productRow(product) {
  const row = document.createElement("tr");
  row.dataset.id = product.id;
  const sku = document.createElement("td");
  const open = document.createElement("button");
  open.type = "button";
  open.className = "link";
  open.textContent = product.sku;
  open.setAttribute("aria-label", `Show the stock history of ${product.sku}`);
  open.addEventListener("click", () => showHistory(product.id, product.sku).catch((error) => showError(error.message)));
  sku.append(open);
  const status = document.createElement("td");
  status.className = "status";
  row.append(
    sku,
    cell(product.name),
    cell(product.stock, "num stock"),
    cell(product.reserved, "num reserved"),
    cell(product.available, "num available"),
    cell(product.reorderLevel, "num"),
    status,
  );
  state.rows.set(product.id, row);
  updateRow(product);
  return row;
}

function updateRow(product) {
  const row = state.rows.get(product.id);
  if (!row) return;
  row.querySelector(".stock").textContent = product.stock;
  row.querySelector(".reserved").textContent = product.reserved;
  row.querySelector(".available").textContent = product.available;
  row.querySelector(".status").replaceChildren(statusBadge(product.status));
  row.classList.toggle("low", product.status === "LOW_STOCK");
  row.dataset.status = product.status;
}

// ---- history ------------------------------------------------------------------------------

async function showHistory(id, sku) {
  const data = await graphql(
    `query History($id: ID!) { node(id: $id) { ... on Product { movements(first: 100) { nodes { stockAfter createdAt } } } } }`,
    { id },
  );
  const points = (data.node?.movements.nodes ?? []).slice().reverse();
  const chart = byId("chart");
  const width = 600;
  const height = 160;
  const pad = 10;
  const most = Math.max(1, ...points.map((point) => point.stockAfter));
  const x = (index) => pad + (points.length < 2 ? 0 : (index * (width - 2 * pad)) / (points.length - 1));
  const y = (value) => height - pad - (value * (height - 2 * pad)) / most;
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#1a56b0");
  line.setAttribute("stroke-width", "2");
  line.setAttribute("points", points.map((point, index) => `${x(index)},${y(point.stockAfter)}`).join(" "));
  chart.replaceChildren(line);
  const last = points[points.length - 1];
  byId("chart-caption").textContent = points.length
    ? `${sku}: stock after each of its last ${points.length} movements, from ${points[0].stockAfter} to ${last.stockAfter} (highest ${most}).`
    : `${sku} has no movements.`;
  byId("history").hidden = false;
}

// ---- live feed over graphql-transport-ws --------------------------------------------------

function feed(listId, text) {
  const list = byId(listId);
  const item = document.createElement("li");
  item.textContent = text;
  list.prepend(item);
  while (list.children.length > FEED_LENGTH) list.lastElementChild.remove();
}

const SUBSCRIPTIONS = {
  movements: `subscription { stockChanged { kind delta stockAfter createdAt product { ${PRODUCT_FIELDS} } } }`,
  alerts: `subscription { lowStock { stock available reorderLevel crossedThreshold product { ${PRODUCT_FIELDS} } } }`,
};

function onEvent(id, payload) {
  if (payload.errors) {
    // The server ended the subscription (it may have missed events): start over.
    throw new Error(payload.errors.map((error) => error.message).join("; "));
  }
  if (id === "movements") {
    const movement = payload.data.stockChanged;
    updateRow(movement.product);
    const sign = movement.delta > 0 ? "+" : "";
    feed("movements", `${movement.product.sku}: ${sign}${movement.delta} (${movement.kind}) → ${movement.stockAfter}`);
  } else {
    const alert = payload.data.lowStock;
    updateRow(alert.product);
    feed("alerts", `${alert.product.sku} is low: ${alert.available} available, reorder at ${alert.reorderLevel}`);
  }
}

let retry = 0;
function connect() {
  const url = new URL("/graphql/ws", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url, "graphql-transport-ws");
  const status = byId("connection");
  socket.addEventListener("open", () => {
    socket.send(JSON.stringify({ type: "connection_init", payload: token() ? { Authorization: `Bearer ${token()}` } : {} }));
  });
  socket.addEventListener("message", (message) => {
    const frame = JSON.parse(message.data);
    if (frame.type === "connection_ack") {
      retry = 0;
      status.textContent = "Live updates: connected";
      status.className = "live";
      for (const [id, query] of Object.entries(SUBSCRIPTIONS)) {
        socket.send(JSON.stringify({ id, type: "subscribe", payload: { query } }));
      }
    } else if (frame.type === "ping") {
      socket.send(JSON.stringify({ type: "pong" }));
    } else if (frame.type === "next") {
      try {
        onEvent(frame.id, frame.payload);
      } catch (error) {
        showError(`${error.message}; reconnecting`);
        socket.close();
      }
    } else if (frame.type === "error" || frame.type === "complete") {
      socket.close();
    }
  });
  socket.addEventListener("close", () => {
    status.textContent = "Live updates: reconnecting…";
    status.className = "";
    // Back off up to 30 s; reload the page of products on return, since events were missed.
    const wait = Math.min(30_000, 500 * 2 ** retry++);
    setTimeout(() => {
      loadProducts().catch((error) => showError(error.message));
      connect();
    }, wait);
  });
}

// ---- controls -----------------------------------------------------------------------------

byId("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  state.search = byId("search").value.trim();
  state.status = byId("status").value;
  state.page = { first: PAGE_SIZE };
  loadProducts().catch((error) => showError(error.message));
});
byId("next").addEventListener("click", () => {
  state.page = { first: PAGE_SIZE, after: state.info?.endCursor };
  loadProducts().catch((error) => showError(error.message));
});
byId("previous").addEventListener("click", () => {
  state.page = { last: PAGE_SIZE, before: state.info?.startCursor };
  loadProducts().catch((error) => showError(error.message));
});
byId("token").value = token();
byId("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem("stockroom:token", byId("token").value.trim());
  // Reloading starts the connection afresh with the new token.
  window.location.reload();
});

loadProducts().catch((error) => showError(error.message));
connect();
