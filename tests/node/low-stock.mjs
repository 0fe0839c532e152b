// Subscribes to Stockroom's `lowStock` with the `graphql-ws` npm client and checks that a
// reduction crossing the reorder level is delivered. Starts its own server on a fresh SQLite
// file: `node low-stock.mjs [path/to/stockroom]` (default ../../target/debug/stockroom).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const binary = resolve(process.argv[2] ?? new URL("../../target/debug/stockroom", import.meta.url).pathname);
const folder = mkdtempSync(join(tmpdir(), "stockroom-graphql-ws-"));
const server = spawn(binary, [
  "serve",
  "--database-url", `sqlite://${join(folder, "stockroom.db")}`,
  "--listen", "127.0.0.1:0",
  "--log-format", "json",
], { stdio: ["ignore", "pipe", "inherit"] });

const deadline = setTimeout(() => fail("timed out after 30 s"), 30_000);

function finish(code) {
  clearTimeout(deadline);
  server.kill("SIGTERM");
  rmSync(folder, { recursive: true, force: true });
  process.exit(code);
}

function fail(message) {
  console.error(`graphql-ws check failed: ${message}`);
  finish(1);
}

server.on("exit", (code) => fail(`the server exited early (${code})`));

// The server logs its address as JSON: {"address":"127.0.0.1:PORT", ...}.
const address = await new Promise((done) => {
  createInterface({ input: server.stdout }).on("line", (line) => {
    try {
      const entry = JSON.parse(line);
      if (entry.address) done(entry.address);
    } catch {
      // not a JSON log line
    }
  });
});
server.removeAllListeners("exit");

async function graphql(query, variables) {
  const response = await fetch(`http://${address}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) fail(JSON.stringify(body.errors));
  return body.data;
}

const { createProduct } = await graphql(
  'mutation { createProduct(input: { name: "Node check", sku: "NODE-1", stock: 10, reorderLevel: 5 }) { id } }',
);
const client = createClient({ url: `ws://${address}/graphql/ws`, webSocketImpl: WebSocket });
const events = client.iterate({
  query: "subscription($ids: [ID!]) { lowStock(productIds: $ids) { stock reorderLevel crossedThreshold product { sku } } }",
  variables: { ids: [createProduct.id] },
});
const firstEvent = events.next();

// The protocol has no "subscribed" acknowledgement, so reduce one unit at a time until an
// event arrives; the first one must be the crossing from 6 to 5.
let stock = 10;
let event;
while (!event && stock > 0) {
  await graphql("mutation($id: ID!) { reduceStock(id: $id, quantity: 1) { newStock } }", { id: createProduct.id });
  stock -= 1;
  event = await Promise.race([firstEvent, new Promise((done) => setTimeout(done, 200))]);
}
if (!event) fail("no lowStock event arrived");
const { lowStock } = event.value.data;
if (lowStock.product.sku !== "NODE-1" || lowStock.reorderLevel !== 5 || lowStock.stock > 5) {
  fail(`unexpected event ${JSON.stringify(lowStock)}`);
}
if (lowStock.crossedThreshold !== (lowStock.stock === 5)) {
  fail(`crossedThreshold is wrong in ${JSON.stringify(lowStock)}`);
}
console.log(`graphql-ws client received lowStock: ${JSON.stringify(lowStock)}`);
await events.return();
await client.dispose();
finish(0);
