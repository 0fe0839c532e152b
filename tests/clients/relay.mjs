// relay-runtime 21 (no React) running the operations relay-compiler generated from relay/
// (run relay-check.mjs first) against the real server, over HTTP and graphql-ws:
// - the product list @connection paged forward (first/after) and backward (last/before) through
//   the @refetchable pagination queries, merged by Relay's connection handler in creation order;
// - the @refetchable Product fragment refetched through node(id:), node and nodes (with an unknown
//   id), and Product.movements paged through its refetch query;
// - createProduct with @prependNode puts the new product at the head of the stored connection;
//   reduceStock updates the stored product by id, with no other request; a lowStock
//   subscription delivers the crossing of the reorder level;
// - productStatus stored next to products (under its own key: see getDataID); any warning from
//   the store (such as conflicting types for one id) fails the run.
// Usage: node relay.mjs <path/to/stockroom> [database-url]
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { createClient as createWsClient } from "graphql-ws";
import RelayRuntime from "relay-runtime";
import WebSocket from "ws";
import { run, subscribed } from "./harness.mjs";

const {
  Environment, Network, Observable, RecordSource, Store,
  commitMutation, createOperationDescriptor, fetchQuery, getRequest, getSelector, requestSubscription,
} = RelayRuntime;
const require = createRequire(import.meta.url);
const artifact = (name) => require(`./__generated__/${name}.graphql.js`);
if (!existsSync(new URL("./__generated__/package.json", import.meta.url))) {
  console.error("relay: no compiled artifacts; run `node relay-check.mjs` first");
  process.exit(1);
}

await run("relay", async ({ address, check, tag }) => {
  const ws = createWsClient({ url: `ws://${address}/graphql/ws`, webSocketImpl: WebSocket, lazy: true });
  const requests = { count: 0 };
  const post = async (query, variables, operationName) => {
    requests.count += 1;
    const response = await fetch(`http://${address}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query, variables, operationName }),
    });
    return response.json();
  };
  const environment = new Environment({
    network: Network.create(
      (params, variables) => post(params.text, variables, params.name),
      (params, variables) =>
        Observable.create((sink) => ws.subscribe({ query: params.text, variables, operationName: params.name }, sink)),
    ),
    store: new Store(new RecordSource()),
    // A ProductStatus carries its product's id (a status is a view of the product); Relay keys
    // records by id alone, so the status is stored under a key of its own.
    getDataID: (record, typeName) =>
      typeName === "ProductStatus" ? `ProductStatus:${record.id}` : record.id,
  });

  // Fetches a query, keeps its data in the store, and returns what it reads.
  const query = async (name, variables) => {
    const request = artifact(name);
    await fetchQuery(environment, request, variables).toPromise();
    const operation = createOperationDescriptor(getRequest(request), variables);
    environment.retain(operation);
    return environment.lookup(operation.fragment).data;
  };
  // Reads a fragment from the store through a fragment reference.
  const read = (name, ref) => environment.lookup(getSelector(artifact(name), ref)).data;
  const mutate = (name, variables) =>
    new Promise((resolve, reject) =>
      commitMutation(environment, {
        mutation: artifact(name),
        variables,
        onCompleted: (response, errors) => (errors?.length ? reject(new Error(JSON.stringify(errors))) : resolve(response)),
        onError: reject,
      }),
    );

  try {
    // Five products, created in this order (into no connection yet).
    const created = [];
    for (let i = 1; i <= 5; i += 1) {
      const response = await mutate("CreateProductMutation", {
        input: { name: `Part ${i}`, sku: `${tag}-${i}`, stock: 10, reorderLevel: 3 },
        connections: [],
      });
      check(response.createProduct?.id, `createProduct returned ${JSON.stringify(response)}`);
      created.push(response.createProduct.id);
    }

    // Forward: the first 2, then the pagination query after the end cursor until the end.
    const list = await query("ProductListQuery", { count: 2, search: tag });
    let page = read("ProductList_query", list).products;
    check(page.edges.length === 2 && page.totalCount === 5, `first page: ${JSON.stringify(page)}`);
    let pages = 1;
    while (page.pageInfo.hasNextPage && pages < 4) {
      await query("ProductListPaginationQuery", { count: 2, cursor: page.pageInfo.endCursor, search: tag });
      page = read("ProductList_query", list).products;
      pages += 1;
    }
    const ids = (connection) => connection.edges.map((edge) => edge.node.id);
    check(pages === 3, `5 products in pages of 2 take 3 pages forward (took ${pages})`);
    check(JSON.stringify(ids(page)) === JSON.stringify(created), `forward connection ${ids(page)} is ${created}`);

    // Backward: the last 2, then the pagination query before the start cursor until the start.
    const recent = await query("RecentProductsQuery", { count: 2, search: tag });
    let back = read("RecentProducts_query", recent).products;
    check(JSON.stringify(ids(back)) === JSON.stringify(created.slice(3)), `last page ${ids(back)}`);
    pages = 1;
    while (back.pageInfo.hasPreviousPage && pages < 4) {
      await query("RecentProductsPaginationQuery", { count: 2, cursor: back.pageInfo.startCursor, search: tag });
      back = read("RecentProducts_query", recent).products;
      pages += 1;
    }
    check(pages === 3, `5 products in pages of 2 take 3 pages backward (took ${pages})`);
    check(JSON.stringify(ids(back)) === JSON.stringify(created), `backward connection ${ids(back)} is ${created}`);

    // The @refetchable Product fragment, refetched through node(id:).
    const target = created[2];
    const refetched = await query("ProductDetailsRefetchQuery", { id: target });
    const details = read("ProductDetails_product", refetched.node);
    check(details.id === target && details.sku === `${tag}-3` && details.stock === 10, `refetched: ${JSON.stringify(details)}`);

    // node and nodes: a product, a reservation, a movement and an unknown id, in order.
    const reservation = await post(
      "mutation ($id: ID!) { reserveStock(productId: $id, quantity: 1) { id } }",
      { id: created[4] },
    );
    check(reservation.data?.reserveStock?.id, `reserveStock: ${JSON.stringify(reservation)}`);
    const one = await query("NodeLookupQuery", { id: created[0] });
    check(one.node?.__typename === "Product" && read("ProductDetails_product", one.node.product).sku === `${tag}-1`, `node: ${JSON.stringify(one)}`);

    // Product.movements, paged through its refetch query (node(id:)).
    const reduced = await mutate("ReduceStockMutation", { id: target, quantity: 4, reason: "sold" });
    check(reduced.reduceStock?.newStock === 6, `reduceStock: ${JSON.stringify(reduced)}`);
    const product = (await query("ProductDetailsQuery", { id: target })).product;
    let ledger = read("ProductMovements_product", product).movements;
    check(ledger.edges.length === 2 && ledger.pageInfo.hasNextPage === false, `movements: ${JSON.stringify(ledger)}`);
    await mutate("ReduceStockMutation", { id: target, quantity: 1, reason: "sold" });
    const fresh = (await query("ProductDetailsQuery", { id: target })).product;
    ledger = read("ProductMovements_product", fresh).movements;
    check(ledger.edges.length === 2 && ledger.pageInfo.hasNextPage, "2 of 3 movements, more to come");
    await query("ProductMovementsPaginationQuery", { id: target, count: 2, cursor: ledger.pageInfo.endCursor });
    ledger = read("ProductMovements_product", fresh).movements;
    const kinds = ledger.edges.map((edge) => `${edge.node.kind}${edge.node.delta}`);
    check(JSON.stringify(kinds) === JSON.stringify(["REDUCE-1", "REDUCE-4", "INITIAL10"]), `merged movements ${kinds}`);
    check(!ledger.pageInfo.hasNextPage, "the movements connection reached its end");

    const movementId = reduced.reduceStock.movement.id;
    const unknown = randomUUID();
    const many = await query("NodeLookupManyQuery", {
      ids: [created[1], reservation.data.reserveStock.id, unknown, movementId],
    });
    const kindsOf = many.nodes.map((node) => node?.__typename ?? null);
    check(
      JSON.stringify(kindsOf) === JSON.stringify(["Product", "Reservation", null, "StockMovement"]),
      `nodes: ${JSON.stringify(many.nodes)}`,
    );
    check(many.nodes[3].id === movementId && many.nodes[3].kind === "REDUCE", `nodes[3]: ${JSON.stringify(many.nodes[3])}`);

    // @prependNode: the new product goes to the head of the stored connection.
    const connection = read("ProductList_query", list).products.__id;
    const added = await mutate("CreateProductMutation", {
      input: { name: "Part 6", sku: `${tag}-6`, stock: 4, reorderLevel: 3 },
      connections: [connection],
    });
    page = read("ProductList_query", list).products;
    check(page.edges.length === 6 && page.edges[0].node.id === added.createProduct.id, `after @prependNode: ${ids(page)}`);

    // A lowStock subscription, then a reduction that crosses the reorder level: the mutation's
    // payload updates the product in the stored connection with no other request.
    const event = new Promise((resolve, reject) => {
      const subscription = requestSubscription(environment, {
        subscription: artifact("LowStockSubscription"),
        variables: { productIds: [target] },
        onNext: (response) => {
          subscription.dispose();
          resolve(response.lowStock);
        },
        onError: reject,
      });
    });
    await subscribed(ws);
    const requestsBefore = requests.count;
    const crossing = await mutate("ReduceStockMutation", { id: target, quantity: 3 });
    check(crossing.reduceStock.newStock === 2, `reduceStock: ${JSON.stringify(crossing)}`);
    check(requests.count === requestsBefore + 1, "only the mutation went out");
    const row = read("ProductDetails_product", read("ProductList_query", list).products.edges[3].node);
    check(row.id === target && row.stock === 2 && row.status === "LOW_STOCK", `stored row: ${JSON.stringify(row)}`);
    const low = await event;
    check(
      low.crossedThreshold && low.stock === 2 && low.product.id === target && low.movement?.id === crossing.reduceStock.movement.id,
      `lowStock event: ${JSON.stringify(low)}`,
    );

    // productStatus next to the products already stored.
    const status = await query("ProductStatusQuery", { id: target });
    check(status.productStatus?.stock === 2, `productStatus: ${JSON.stringify(status)}`);
  } finally {
    await ws.dispose();
  }
});
