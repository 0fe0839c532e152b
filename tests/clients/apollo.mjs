// Apollo Client 4 against the real server over HTTP, with a normalized InMemoryCache whose
// `products` and `Product.movements` lists are merged by `relayStylePagination`:
// - pages the product list forward (first/after) to its end with fetchMore, and backward
//   (last/before) to its start, and checks the merged cached list holds every product in order;
// - reduces one product's stock and checks the watched list shows the new stock and status
//   straight from the cache (by `Product:<id>`), with no second request;
// - reads a product's movements (newest first), paged forward too, and checks they agree with
//   the mutation's movement.
// Usage: node apollo.mjs <path/to/stockroom> [database-url]
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { loadDevMessages, loadErrorMessages } from "@apollo/client/dev";
import { relayStylePagination } from "@apollo/client/utilities";
import { run } from "./harness.mjs";

loadDevMessages();
loadErrorMessages();

const PRODUCT = gql`
  fragment ProductRow on Product {
    id
    name
    sku
    stock
    available
    status
    version
  }
`;

const PRODUCTS = gql`
  ${PRODUCT}
  query Products($search: String, $first: Int, $after: String, $last: Int, $before: String) {
    products(search: $search, first: $first, after: $after, last: $last, before: $before) {
      edges {
        cursor
        node {
          ...ProductRow
        }
      }
      pageInfo {
        hasNextPage
        hasPreviousPage
        startCursor
        endCursor
      }
    }
  }
`;

const CREATE = gql`
  ${PRODUCT}
  mutation Create($input: CreateProductInput!) {
    createProduct(input: $input) {
      ...ProductRow
    }
  }
`;

const REDUCE = gql`
  mutation Reduce($id: ID!, $quantity: Int!) {
    reduceStock(id: $id, quantity: $quantity, reason: "sold") {
      newStock
      product {
        id
        stock
        available
        status
        version
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

const MOVEMENTS = gql`
  query Movements($id: ID!, $first: Int, $after: String) {
    product(id: $id) {
      id
      stock
      movements(first: $first, after: $after) {
        edges {
          cursor
          node {
            id
            kind
            delta
            stockBefore
            stockAfter
            reason
          }
        }
        pageInfo {
          hasNextPage
          endCursor
        }
      }
    }
  }
`;

function newClient(address, requests) {
  return new ApolloClient({
    link: new HttpLink({
      uri: `http://${address}/graphql`,
      fetch: (...args) => {
        requests.count += 1;
        return fetch(...args);
      },
    }),
    cache: new InMemoryCache({
      typePolicies: {
        Query: { fields: { products: relayStylePagination(["search", "status"]) } },
        Product: { fields: { movements: relayStylePagination() } },
      },
    }),
  });
}

// Subscribes to a watched query and resolves `next(predicate)` with the first result that
// satisfies it (already seen or still to come).
function watch(client, options) {
  const observable = client.watchQuery(options);
  const results = [];
  const waiting = [];
  const subscription = observable.subscribe({
    next(result) {
      results.push(result);
      for (const w of [...waiting]) if (w.predicate(result)) w.done(result);
    },
    error(error) {
      for (const w of waiting) w.fail(error);
    },
  });
  return {
    observable,
    unsubscribe: () => subscription.unsubscribe(),
    latest: () => results.at(-1),
    next(predicate) {
      const seen = results.findLast(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((done, fail) => waiting.push({ predicate, done, fail }));
    },
  };
}

const skusOf = (data) => data.products.edges.map((edge) => edge.node.sku);
const loaded = (result) => result.dataState === "complete" && !result.loading;

await run("apollo", async ({ address, check, tag }) => {
  const requests = { count: 0 };
  const client = newClient(address, requests);

  // Five products, created in this order.
  const created = [];
  for (let i = 1; i <= 5; i += 1) {
    const { data } = await client.mutate({
      mutation: CREATE,
      variables: { input: { name: `Widget ${i}`, sku: `${tag}-${i}`, stock: 10, reorderLevel: 3 } },
    });
    check(data.createProduct?.sku === `${tag}-${i}`, `createProduct returned ${JSON.stringify(data)}`);
    created.push(data.createProduct);
  }
  const expected = created.map((product) => product.sku);

  // Forward: first 2, then fetchMore after the end cursor until there is no next page.
  const forward = watch(client, { query: PRODUCTS, variables: { search: tag, first: 2 } });
  let result = await forward.next(loaded);
  check(result.data.products.edges.length === 2, `first page has 2 edges: ${skusOf(result.data)}`);
  let pages = 1;
  while (result.data.products.pageInfo.hasNextPage) {
    const before = result.data.products.edges.length;
    const { endCursor } = result.data.products.pageInfo;
    await forward.observable.fetchMore({ variables: { after: endCursor } });
    result = await forward.next((r) => loaded(r) && r.data.products.edges.length > before);
    pages += 1;
    check(pages <= 3, `forward paging ended after ${pages} pages`);
  }
  check(pages === 3, `5 products in pages of 2 take 3 pages forward (took ${pages})`);
  check(
    JSON.stringify(skusOf(result.data)) === JSON.stringify(expected),
    `merged forward list ${skusOf(result.data)} is ${expected}`,
  );
  const cached = client.readQuery({ query: PRODUCTS, variables: { search: tag, first: 2 } });
  check(
    JSON.stringify(skusOf(cached)) === JSON.stringify(expected),
    `cached forward list ${skusOf(cached)} is ${expected}`,
  );
  check(!cached.products.pageInfo.hasNextPage, "cached list knows it reached the end");

  // Backward, in a fresh cache: last 2, then fetchMore before the start cursor.
  const backwardClient = newClient(address, { count: 0 });
  const backward = watch(backwardClient, { query: PRODUCTS, variables: { search: tag, last: 2 } });
  let back = await backward.next(loaded);
  check(
    JSON.stringify(skusOf(back.data)) === JSON.stringify(expected.slice(3)),
    `last page ${skusOf(back.data)} is ${expected.slice(3)}`,
  );
  pages = 1;
  while (back.data.products.pageInfo.hasPreviousPage) {
    const before = back.data.products.edges.length;
    const { startCursor } = back.data.products.pageInfo;
    await backward.observable.fetchMore({ variables: { before: startCursor } });
    back = await backward.next((r) => loaded(r) && r.data.products.edges.length > before);
    pages += 1;
    check(pages <= 3, `backward paging ended after ${pages} pages`);
  }
  check(pages === 3, `5 products in pages of 2 take 3 pages backward (took ${pages})`);
  check(
    JSON.stringify(skusOf(back.data)) === JSON.stringify(expected),
    `merged backward list ${skusOf(back.data)} is ${expected}`,
  );
  backward.unsubscribe();

  // A mutation's payload updates the product in the watched list through the normalized cache.
  const target = created[2];
  check(client.cache.identify(target) === `Product:${target.id}`, "products are normalized by id");
  const requestsBefore = requests.count;
  const { data: reduced } = await client.mutate({
    mutation: REDUCE,
    variables: { id: target.id, quantity: 8 },
  });
  check(reduced.reduceStock.newStock === 2, `reduceStock left ${reduced.reduceStock.newStock}, not 2`);
  check(reduced.reduceStock.product.id === target.id, "reduceStock returns the product it changed");
  result = await forward.next((r) => loaded(r) && r.data.products.edges[2]?.node.stock === 2);
  const row = result.data.products.edges[2].node;
  check(row.sku === target.sku && row.status === "LOW_STOCK", `list row after reduceStock: ${JSON.stringify(row)}`);
  check(row.version === target.version + 1, `version moved from ${target.version} to ${row.version}`);
  check(result.data.products.edges.length === 5, "the list kept all 5 products");
  check(requests.count === requestsBefore + 1, `only the mutation went out (${requests.count - requestsBefore} requests)`);
  forward.unsubscribe();

  // The product's movements: newest first, the reduction then the initial stock; paged by one.
  const history = watch(client, { query: MOVEMENTS, variables: { id: target.id, first: 1 } });
  let movements = await history.next(loaded);
  check(movements.data.product.stock === 2, "product(id) reads the new stock");
  while (movements.data.product.movements.pageInfo.hasNextPage) {
    const before = movements.data.product.movements.edges.length;
    const { endCursor } = movements.data.product.movements.pageInfo;
    await history.observable.fetchMore({ variables: { after: endCursor } });
    movements = await history.next((r) => loaded(r) && r.data.product.movements.edges.length > before);
    check(before < 3, "movements paging ends");
  }
  history.unsubscribe();
  const ledger = movements.data.product.movements.edges.map((edge) => edge.node);
  check(ledger.length === 2, `2 movements, got ${JSON.stringify(ledger)}`);
  check(ledger[0].id === reduced.reduceStock.movement.id, "the newest movement is the mutation's");
  check(
    ledger[0].kind === "REDUCE" && ledger[0].delta === -8 && ledger[0].stockBefore === 10 &&
      ledger[0].stockAfter === 2 && ledger[0].reason === "sold",
    `reduction movement: ${JSON.stringify(ledger[0])}`,
  );
  check(
    ledger[1].kind === "INITIAL" && ledger[1].delta === 10 && ledger[1].stockAfter === 10,
    `initial movement: ${JSON.stringify(ledger[1])}`,
  );
  const stored = client.cache.extract();
  check(stored[`StockMovement:${ledger[0].id}`]?.kind === "REDUCE", "movements are normalized by id");
});
