// GraphiQL in headless Chromium (Playwright) against the real binary, with every request to
// another origin blocked and counted as a failure: the page must load from the server alone,
// run a query and show its result, and run a `lowStock` subscription that shows the event a
// reduction made from outside (over HTTP, by this script) causes. Screenshots go to
// target/browser/. Usage: node graphiql.mjs <path/to/stockroom> [path/to/chromium]
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const binary = resolve(process.argv[2] ?? "target/debug/stockroom");
const browserPath = process.argv[3] ?? "/usr/bin/chromium";
const shots = resolve(new URL("../../target/browser", import.meta.url).pathname);
mkdirSync(shots, { recursive: true });

const folder = mkdtempSync(join(tmpdir(), "stockroom-browser-"));
const server = spawn(
  binary,
  ["serve", "--database-url", `sqlite://${join(folder, "stockroom.db")}`, "--listen", "127.0.0.1:0", "--log-format", "json"],
  { stdio: ["ignore", "pipe", "inherit"] },
);
let browser;
const deadline = setTimeout(() => finish(new Error("timed out after 90 s")), 90_000);

async function finish(error) {
  clearTimeout(deadline);
  await browser?.close().catch(() => {});
  server.kill("SIGTERM");
  rmSync(folder, { recursive: true, force: true });
  if (error) {
    console.error(`graphiql (browser): FAILED: ${error.stack ?? error}`);
    process.exit(1);
  }
  console.log(`graphiql (browser): ok (screenshots in ${shots})`);
  process.exit(0);
}

try {
  const address = await new Promise((done, fail) => {
    server.on("exit", (code) => fail(new Error(`the server exited (${code})`)));
    createInterface({ input: server.stdout }).on("line", (line) => {
      try {
        const entry = JSON.parse(line);
        if (entry.address) done(entry.address);
      } catch {
        // not a JSON log line
      }
    });
  });
  const origin = `http://${address}`;
  const graphql = async (query, variables = {}) => {
    const response = await fetch(`${origin}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query, variables }),
    });
    const body = await response.json();
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data;
  };
  const { createProduct } = await graphql(
    `mutation { createProduct(input: { name: "Browser widget", sku: "BROWSER-1", stock: 10, reorderLevel: 3 }) { id } }`,
  );

  browser = await chromium.launch({
    executablePath: browserPath,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run",
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const foreign = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith("data:") || url.startsWith("blob:")) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  context.on("websocket", (socket) => {
    if (!socket.url().startsWith(`ws://${address}/`)) foreign.push(socket.url());
  });
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));

  await page.goto(`${origin}/graphql`, { waitUntil: "load" });
  await page.locator(".graphiql-container").waitFor({ timeout: 30_000 });

  // A query, typed into the editor and run with the toolbar's button.
  const setQuery = async (text) => {
    const editor = page.locator(".graphiql-query-editor .CodeMirror").first();
    await editor.click();
    await page.evaluate((value) => {
      document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.setValue(value);
    }, text);
    // GraphiQL parses the editor's text after a short debounce; run only once it has.
    await page.waitForTimeout(500);
  };
  const result = page.locator(".graphiql-response .CodeMirror-code");
  await setQuery("{ productBySku(sku: \"browser-1\") { sku stock status } }");
  await page.locator(".graphiql-execute-button").click();
  await result.filter({ hasText: "BROWSER-1" }).waitFor({ timeout: 15_000 });
  const queried = await result.innerText();
  if (!/"stock":\s*10/.test(queried.replace(/\s+/g, " ").replace(/" :/g, '":'))) {
    throw new Error(`the query's result is not shown: ${queried}`);
  }
  await page.screenshot({ path: join(shots, "graphiql-query.png") });

  // A subscription; the event comes from a reduction made outside the browser.
  await setQuery("subscription { lowStock { stock crossedThreshold product { sku status } } }");
  await page.locator(".graphiql-execute-button").click();
  // Give the WebSocket time to subscribe before the change happens.
  await page.waitForTimeout(1_500);
  await graphql(`mutation($id: ID!) { reduceStock(id: $id, quantity: 8) { newStock } }`, { id: createProduct.id });
  await result
    .filter({ hasText: "LOW_STOCK" })
    .waitFor({ timeout: 15_000 })
    .catch(async (error) => {
      await page.screenshot({ path: join(shots, "graphiql-subscription-failed.png") });
      throw error;
    });
  await page.screenshot({ path: join(shots, "graphiql-subscription.png") });

  if (foreign.length) throw new Error(`requests to other origins: ${foreign.join(", ")}`);
  if (pageErrors.length) throw new Error(`errors in the page: ${pageErrors.join("; ")}`);
  await finish();
} catch (error) {
  await finish(error);
}
