// GraphiQL in headless Chromium (Playwright) against the real binary, every other origin
// blocked (a request to one fails the test): the page loads from the server alone, runs a query
// and shows its result, and runs a `lowStock` subscription that shows the event a reduction made
// from outside (over HTTP, by this script) causes; its documentation explorer reads the
// schema's descriptions. Authentication is on: the token goes in GraphiQL's headers, which it
// keeps in the browser and also sends for subscriptions. Screenshots go to target/browser/.
// Usage: node graphiql.mjs <path/to/stockroom> [path/to/chromium]
import { runInBrowser } from "./harness.mjs";

await runInBrowser("graphiql", async ({ origin, graphql, page, shot, token }) => {
  const { createProduct } = await graphql(
    `mutation { createProduct(input: { name: "Browser widget", sku: "BROWSER-1", stock: 10, reorderLevel: 3 }) { id } }`,
  );
  await page.goto(`${origin}/graphql`, { waitUntil: "load" });
  await page.locator(".graphiql-container").waitFor({ timeout: 30_000 });
  // The token, typed into the Headers tab as a user would (GraphiQL keeps it in the browser).
  await page.getByText("Headers", { exact: true }).click();
  await page.locator(".graphiql-editor-tool .graphiql-editor").last().click();
  await page.evaluate((value) => {
    const editors = document.querySelectorAll(".graphiql-editor-tool .CodeMirror");
    editors[editors.length - 1].CodeMirror.setValue(value);
  }, JSON.stringify({ Authorization: `Bearer ${token}` }));
  await page.waitForTimeout(500);

  const setQuery = async (text) => {
    await page.locator(".graphiql-query-editor .CodeMirror").first().click();
    await page.evaluate((value) => {
      document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.setValue(value);
    }, text);
    // GraphiQL parses the editor's text after a short debounce; run only once it has.
    await page.waitForTimeout(500);
  };
  const result = page.locator(".graphiql-response .CodeMirror-code");

  // A query, run with the toolbar's button.
  await setQuery('{ productBySku(sku: "browser-1") { sku stock status } }');
  await page.locator(".graphiql-execute-button").click();
  await result.filter({ hasText: "BROWSER-1" }).waitFor({ timeout: 15_000 });
  const queried = (await result.innerText()).replace(/\s+/g, "");
  if (!queried.includes('"stock":10')) throw new Error(`the query's result is not shown: ${queried}`);
  await shot("graphiql-query.png");

  // A subscription; the event comes from a reduction made outside the browser.
  await setQuery("subscription { lowStock { stock crossedThreshold product { sku status } } }");
  await page.locator(".graphiql-execute-button").click();
  // Give the WebSocket time to subscribe before the change happens.
  await page.waitForTimeout(1_500);
  await graphql(`mutation($id: ID!) { reduceStock(id: $id, quantity: 8) { newStock } }`, { id: createProduct.id });
  await result.filter({ hasText: "LOW_STOCK" }).waitFor({ timeout: 15_000 });
  await shot("graphiql-subscription.png");

  // The documentation explorer, from the schema's own descriptions.
  await page.getByRole("button", { name: /documentation explorer/i }).click();
  await page.locator(".graphiql-doc-explorer").getByText("Query", { exact: true }).first().click();
  await page.locator(".graphiql-doc-explorer", { hasText: "Products in creation order" }).waitFor({ timeout: 15_000 });
  await shot("graphiql-docs.png");
});
