// urql with the normalized graphcache exchange, given the server's own schema (introspected) and
// NO `keys` config, against the real server over HTTP and WebSocket (graphql-ws). graphcache
// warns about every object it cannot key by `id`, and about data that does not match the schema;
// any such warning fails the run. Checks:
// - a products page with each product's movements nested, node(id), nodes(ids) (in order, null
//   for an unknown id) and productStatus(id);
// - reduceStock, then the same products page read from the cache alone shows the new stock and
//   status, with no second request;
// - a lowStock subscription delivers the reduction that crossed the reorder level;
// - verifyLedger; and, from the schema, that every object type graphcache stores (reachable from
//   Query, or linked from a mutation's or subscription's payload) has an `id`, apart from the
//   connection, edge and PageInfo types graphcache embeds by name.
// Usage: node urql.mjs <path/to/stockroom> [database-url]
import { randomUUID } from "node:crypto";
import { Client, fetchExchange, gql, subscriptionExchange } from "@urql/core";
import { cacheExchange } from "@urql/exchange-graphcache";
import { getIntrospectionQuery } from "graphql";
import { createClient as createWsClient } from "graphql-ws";
import WebSocket from "ws";
import { run, subscribed } from "./harness.mjs";

const CREATE = gql`
  mutation Create($input: CreateProductInput!) {
    createProduct(input: $input) {
      id
      sku
      stock
      status
    }
  }
`;

const PRODUCTS = gql`
  query Products($search: String!) {
    products(search: $search, first: 10) {
      totalCount
      pageInfo {
        hasNextPage
        hasPreviousPage
        startCursor
        endCursor
      }
      edges {
        cursor
        node {
          id
          sku
          stock
          available
          status
          movements(first: 5) {
            totalCount
            pageInfo {
              hasNextPage
              endCursor
            }
            edges {
              cursor
              node {
                id
                kind
                delta
                stockAfter
              }
            }
          }
        }
      }
    }
  }
`;

const NODES = gql`
  query Nodes($id: ID!, $ids: [ID!]!) {
    node(id: $id) {
      __typename
      id
      ... on Product {
        sku
      }
    }
    nodes(ids: $ids) {
      __typename
      id
      ... on Product {
        sku
        stock
      }
      ... on StockMovement {
        kind
        stockAfter
      }
    }
  }
`;

const STATUS = gql`
  query Status($id: ID!) {
    productStatus(id: $id) {
      id
      sku
      stock
      reorderLevel
      status
    }
  }
`;

const LEDGER = gql`
  query Ledger {
    verifyLedger {
      id
      ok
      productsChecked
      mismatches {
        id
        productId
        stock
        ledgerStock
      }
    }
  }
`;

const REDUCE = gql`
  mutation Reduce($id: ID!, $quantity: Int!) {
    reduceStock(id: $id, quantity: $quantity) {
      newStock
      product {
        id
        stock
        available
        status
      }
      movement {
        id
        kind
        delta
        stockAfter
      }
    }
  }
`;

const LOW_STOCK = gql`
  subscription LowStock($ids: [ID!]) {
    lowStock(productIds: $ids) {
      crossedThreshold
      stock
      product {
        id
        stock
        status
      }
      movement {
        id
        kind
      }
    }
  }
`;

// The object types graphcache stores that have no `id`: every object reachable from Query, and
// what the payloads of mutations and subscriptions link to (the payloads themselves are not
// stored). graphcache embeds connection, edge and PageInfo types without asking for a key.
function withoutId(schema) {
  const types = new Map(schema.types.map((type) => [type.name, type]));
  const named = (ref) => (ref.ofType ? named(ref.ofType) : ref.name);
  const seen = new Set();
  const missing = new Set();
  const visit = (name, where, stored) => {
    const type = types.get(name);
    if (type.kind === "INTERFACE" || type.kind === "UNION") {
      for (const possible of type.possibleTypes) visit(possible.name, where, stored);
      return;
    }
    if (type.kind !== "OBJECT") return;
    if (stored && !/^__|PageInfo|(Connection|Edge)$/.test(name) && !type.fields.some((f) => f.name === "id")) {
      missing.add(`${name} (at ${where})`);
    }
    if (seen.has(name)) return;
    seen.add(name);
    for (const field of type.fields) visit(named(field.type), `${name}.${field.name}`, true);
  };
  for (const [root, stored] of [[schema.queryType, true], [schema.mutationType, false], [schema.subscriptionType, false]]) {
    for (const field of types.get(root.name).fields) visit(named(field.type), `${root.name}.${field.name}`, stored);
  }
  return [...missing];
}

// Resolves with an operation's data, or throws its error.
async function data(promise) {
  const result = await promise;
  if (result.error) throw new Error(`${result.operation.kind} failed: ${result.error.message}`);
  return result.data;
}

await run("urql", async ({ address, check, tag }) => {
  const introspection = await fetch(`http://${address}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: getIntrospectionQuery() }),
  }).then((response) => response.json());
  check(introspection.data?.__schema, "the server answers introspection");

  const ws = createWsClient({ url: `ws://${address}/graphql/ws`, webSocketImpl: WebSocket, lazy: true });
  const requests = { count: 0 };
  const client = new Client({
    url: `http://${address}/graphql`,
    fetch: (...args) => {
      requests.count += 1;
      return fetch(...args);
    },
    exchanges: [
      cacheExchange({ schema: introspection.data }),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...request, query: request.query ?? "" }, sink) }),
        }),
      }),
    ],
  });

  try {
    const created = [];
    for (let i = 1; i <= 3; i += 1) {
      const { createProduct } = await data(
        client.mutation(CREATE, { input: { name: `Gadget ${i}`, sku: `${tag}-${i}`, stock: 10, reorderLevel: 4 } }).toPromise(),
      );
      check(createProduct?.sku === `${tag}-${i}`, `createProduct returned ${JSON.stringify(createProduct)}`);
      created.push(createProduct);
    }
    const target = created[1];

    // A page of products, each with its movements.
    const page = await data(client.query(PRODUCTS, { search: tag }).toPromise());
    const rows = page.products.edges.map((edge) => edge.node);
    check(page.products.totalCount === 3 && rows.length === 3, `3 products listed: ${JSON.stringify(page.products)}`);
    check(rows.every((row, i) => row.id === created[i].id), "products listed in creation order");
    for (const row of rows) {
      const ledger = row.movements.edges.map((edge) => edge.node);
      check(
        row.movements.totalCount === 1 && ledger.length === 1 && ledger[0].kind === "INITIAL" && ledger[0].stockAfter === 10,
        `${row.sku} has its initial movement: ${JSON.stringify(row.movements)}`,
      );
    }

    // node, nodes and productStatus.
    const initialMovement = rows[0].movements.edges[0].node;
    const unknown = randomUUID();
    const found = await data(client.query(NODES, { id: target.id, ids: [created[2].id, unknown, initialMovement.id, target.id] }).toPromise());
    check(found.node?.__typename === "Product" && found.node.sku === target.sku, `node(id): ${JSON.stringify(found.node)}`);
    const [third, missing, movement, second] = found.nodes;
    check(found.nodes.length === 4, `nodes returns one entry per id: ${JSON.stringify(found.nodes)}`);
    check(third?.__typename === "Product" && third.id === created[2].id, `nodes[0]: ${JSON.stringify(third)}`);
    check(missing === null, `nodes[1] (unknown id) is null: ${JSON.stringify(missing)}`);
    check(movement?.__typename === "StockMovement" && movement.kind === "INITIAL", `nodes[2]: ${JSON.stringify(movement)}`);
    check(second?.__typename === "Product" && second.sku === target.sku, `nodes[3]: ${JSON.stringify(second)}`);
    const { productStatus } = await data(client.query(STATUS, { id: target.id }).toPromise());
    check(
      productStatus?.id === target.id && productStatus.stock === 10 && productStatus.status === "IN_STOCK",
      `productStatus: ${JSON.stringify(productStatus)}`,
    );

    // lowStock over graphql-ws: the reduction below takes the target from 10 to 3 (reorder level 4).
    let onEvent;
    const event = new Promise((resolve, reject) => {
      onEvent = (result) => (result.error ? reject(result.error) : resolve(result.data.lowStock));
    });
    const subscription = client.subscription(LOW_STOCK, { ids: [target.id] }).subscribe(onEvent);
    await subscribed(ws);

    // reduceStock, then the page again from the cache alone.
    const { reduceStock } = await data(client.mutation(REDUCE, { id: target.id, quantity: 7 }).toPromise());
    check(reduceStock.newStock === 3 && reduceStock.product.status === "LOW_STOCK", `reduceStock: ${JSON.stringify(reduceStock)}`);
    const requestsBefore = requests.count;
    const cached = await data(client.query(PRODUCTS, { search: tag }, { requestPolicy: "cache-only" }).toPromise());
    const row = cached.products.edges[1].node;
    check(row.id === target.id && row.stock === 3 && row.available === 3 && row.status === "LOW_STOCK", `cached row: ${JSON.stringify(row)}`);
    check(requests.count === requestsBefore, "the cached page needed no request");
    const status = await data(client.query(STATUS, { id: target.id }, { requestPolicy: "network-only" }).toPromise());
    check(status.productStatus.stock === 3 && status.productStatus.status === "LOW_STOCK", `productStatus after: ${JSON.stringify(status)}`);

    const low = await event;
    subscription.unsubscribe();
    check(
      low.crossedThreshold && low.stock === 3 && low.product.id === target.id && low.movement?.id === reduceStock.movement.id,
      `lowStock event: ${JSON.stringify(low)}`,
    );

    const { verifyLedger } = await data(client.query(LEDGER, {}).toPromise());
    check(verifyLedger.ok && verifyLedger.mismatches.length === 0, `verifyLedger: ${JSON.stringify(verifyLedger)}`);
    const unkeyed = withoutId(introspection.data.__schema);
    check(!unkeyed.length, `object types graphcache stores have an id; these have none: ${unkeyed.join(", ")}`);
  } finally {
    await ws.dispose();
  }
});
