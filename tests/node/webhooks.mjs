// Webhooks checked by an implementation we did not write: the `standardwebhooks` npm package
// verifies the signature of every request Stockroom sends. Starts the real binary (a fresh
// SQLite file, or the PostgreSQL database given) with a fast retry schedule and checks:
//   1. every committed change reaches a receiver, signed, with each product's sequence
//      complete and in order; a tampered body fails verification;
//   2. a receiver answering 500, then timing out, then 200 gets three attempts on schedule,
//      each with a valid signature and the same webhook-id;
//   3. a receiver answering 410 disables its webhook.
// Usage: node webhooks.mjs path/to/stockroom [postgres://.../database]
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";
import { startServer } from "./server.mjs";

const SCHEDULE_MS = [300, 300];
const server = await startServer(process.argv[2], [
  "--webhook-allow-private-targets",
  "--webhook-retry-schedule", SCHEDULE_MS.map((ms) => `${ms}ms`).join(","),
  "--webhook-timeout", "1s",
], process.argv[3]);
const deadline = setTimeout(() => fail("timed out after 60 s"), 60_000);

function fail(message) {
  console.error(`webhooks check (${server.backend}) failed: ${message}`);
  server.stop();
  process.exit(1);
}

async function graphql(query, variables = {}) {
  const response = await fetch(`http://${server.address}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) fail(`${query.slice(0, 60)}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/** A receiver on 127.0.0.1 that records each request and answers with `respond(request)`. */
async function receiver(respond) {
  const requests = [];
  const http = createServer((request, response) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const entry = { headers: request.headers, body: Buffer.concat(chunks), at: Date.now() };
      requests.push(entry);
      respond(entry, response, requests.length);
    });
  });
  await new Promise((done) => http.listen(0, "127.0.0.1", done));
  return { url: `http://127.0.0.1:${http.address().port}/hook`, requests, close: () => http.close() };
}

async function createWebhook(url, eventTypes = []) {
  const data = await graphql(
    `mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { id secret webhook { id enabled } } }`,
    { input: { url, eventTypes, description: "checked by standardwebhooks" } },
  );
  return data.createWebhook;
}

async function until(what, check, ms = 20_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((done) => setTimeout(done, 50));
  }
  fail(`waited ${ms} ms for ${what}`);
}

function verified(secret, entry) {
  return new Webhook(secret).verify(entry.body, entry.headers);
}

// 1. Every change, signed, sequences complete.
const all = await receiver((_, response) => response.writeHead(200).end("ok"));
const hook = await createWebhook(all.url);
if (!hook.secret.startsWith("whsec_")) fail(`secret ${hook.secret} lacks whsec_`);
const products = [];
for (let index = 0; index < 3; index += 1) {
  const data = await graphql(
    `mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }`,
    { input: { name: `Hooked ${index}`, sku: `HOOK-${index}`, stock: 10, reorderLevel: 4 } },
  );
  products.push(data.createProduct.id);
}
// The products change side by side; each product's changes one after the other.
await Promise.all(products.map(async (id) => {
  for (let round = 0; round < 4; round += 1) {
    await graphql(`mutation($id: ID!) { reduceStock(id: $id, quantity: 2) { newStock } }`, { id });
  }
  await graphql(`mutation($id: ID!) { addStock(id: $id, quantity: 30) { newStock } }`, { id });
}));
// Per product: created, 4 reductions (10→2: low at 4), one addition (restocked): 5 changes +
// stock.low + stock.restocked = 8 events, sequences 1..8.
const expected = products.length * 8;
const distinct = () => new Set(all.requests.map((r) => r.headers["webhook-id"])).size;
await until(`${expected} deliveries (got ${distinct()} so far)`, () => distinct() >= expected);
const sequences = new Map();
for (const entry of all.requests) {
  const event = verified(hook.secret, entry);
  if (event.id !== entry.headers["webhook-id"]) fail("webhook-id is not the event id");
  const seen = sequences.get(event.productId) ?? [];
  seen.push(event.sequence);
  sequences.set(event.productId, seen);
}
for (const id of products) {
  const seen = sequences.get(id) ?? [];
  const expectedSequence = [1, 2, 3, 4, 5, 6, 7, 8];
  if (JSON.stringify(seen) !== JSON.stringify(expectedSequence)) {
    fail(`product ${id} arrived as sequences ${seen}, expected ${expectedSequence} in order`);
  }
}
const tampered = { ...all.requests[0], body: Buffer.from(all.requests[0].body.toString().replace("sequence", "sequencE")) };
try {
  verified(hook.secret, tampered);
  fail("a tampered body verified");
} catch (error) {
  if (!String(error).includes("signature")) fail(`unexpected verification error ${error}`);
}

// 2. 500, then a timeout, then 200.
const flaky = await receiver((_, response, count) => {
  if (count === 1) response.writeHead(500).end("boom");
  else if (count === 2) setTimeout(() => response.writeHead(200).end("too late"), 2_500);
  else response.writeHead(200).end("ok");
});
const flakyHook = await createWebhook(flaky.url, ["stock.out"]);
await graphql(`mutation($id: ID!) { reduceStock(id: $id, quantity: 32) { newStock } }`, { id: products[0] });
await until("three attempts", () => flaky.requests.length >= 3);
const ids = new Set(flaky.requests.map((entry) => entry.headers["webhook-id"]));
if (ids.size !== 1) fail(`retries carried ${ids.size} webhook-ids`);
for (const entry of flaky.requests) {
  if (verified(flakyHook.secret, entry).type !== "stock.out") fail("the retried event is not stock.out");
}
const gaps = [flaky.requests[1].at - flaky.requests[0].at, flaky.requests[2].at - flaky.requests[1].at];
// Attempt 2 follows the 500 after ~300 ms (±20% jitter); attempt 3 follows the 1 s timeout of
// attempt 2 after another ~300 ms.
if (gaps[0] < SCHEDULE_MS[0] * 0.8 - 50 || gaps[0] > SCHEDULE_MS[0] * 1.2 + 1_000) fail(`first retry after ${gaps[0]} ms`);
if (gaps[1] < 1_000 + SCHEDULE_MS[1] * 0.8 - 50 || gaps[1] > 1_000 + SCHEDULE_MS[1] * 1.2 + 1_000) fail(`second retry after ${gaps[1]} ms`);
await until("the delivery log to say SUCCEEDED after 3 attempts", async () => {
  const data = await graphql(
    `query($id: ID!) { webhookDeliveries(webhookId: $id) { edges { node { status attempts lastStatusCode eventType } } } }`,
    { id: flakyHook.id },
  );
  const node = data.webhookDeliveries.edges[0]?.node;
  return node?.status === "SUCCEEDED" && node.attempts === 3 && node.lastStatusCode === 200 && node.eventType === "stock.out";
});

// 3. 410 disables.
const gone = await receiver((_, response) => response.writeHead(410).end("gone"));
const goneHook = await createWebhook(gone.url);
await graphql(`mutation($id: ID!) { addStock(id: $id, quantity: 1) { newStock } }`, { id: products[1] });
await until("the webhook to be disabled", async () => {
  const data = await graphql(`{ webhooks { id enabled disabledReason } }`);
  const found = data.webhooks.find((webhook) => webhook.id === goneHook.id);
  return found && !found.enabled && found.disabledReason?.includes("410");
});
const attemptsBefore = gone.requests.length;
await graphql(`mutation($id: ID!) { addStock(id: $id, quantity: 1) { newStock } }`, { id: products[1] });
await new Promise((done) => setTimeout(done, 1_500));
if (gone.requests.length !== attemptsBefore) fail("a disabled webhook still received requests");

clearTimeout(deadline);
for (const open of [all, flaky, gone]) open.close();
server.stop();
console.log(
  `webhooks check (${server.backend}) passed: ${all.requests.length} requests verified by standardwebhooks, ` +
    `retries after ${gaps.join(" and ")} ms, 410 disabled the webhook`,
);
process.exit(0);
