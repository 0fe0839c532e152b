// The stock board at `/` in headless Chromium (Playwright) against the real binary, every other
// origin blocked (a request to one fails the test): it lists the products, pages and searches,
// and a product turns LOW_STOCK live, with an alert in the feed, when a reduction is made from
// outside (over HTTP, by this script); its stock history draws; it reads on a phone-sized
// screen. Authentication is on: the board asks for nothing until a token is put in its token
// field. Screenshots go to target/browser/. Usage: node board.mjs <path/to/stockroom> [chromium]
import { runInBrowser } from "./harness.mjs";

await runInBrowser("board", async ({ origin, graphql, page, shot, token }) => {
  const ids = [];
  for (let index = 1; index <= 25; index += 1) {
    const sku = `BOARD-${String(index).padStart(2, "0")}`;
    const { createProduct } = await graphql(
      `mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }`,
      { input: { name: `Board item ${index}`, sku, stock: 20, reorderLevel: 5 } },
    );
    ids.push(createProduct.id);
  }
  await graphql(`mutation($id: ID!) { addStock(id: $id, quantity: 15) { newStock } }`, { id: ids[0] });

  await page.goto(origin, { waitUntil: "load" });
  // Without a token the API refuses, and the board says so.
  await page.locator("#error", { hasText: "UNAUTHENTICATED" }).waitFor({ timeout: 15_000 });
  await page.getByLabel(/Bearer token/).fill(token);
  await page.getByRole("button", { name: "Use token" }).click();
  const rows = page.locator("#products tbody tr");
  await rows.first().waitFor({ timeout: 15_000 });
  if ((await rows.count()) !== 20) throw new Error(`a page shows ${await rows.count()} rows, not 20`);
  await page.locator("#summary", { hasText: "25 products" }).waitFor();
  await page.locator("#connection.live").waitFor({ timeout: 15_000 });

  // Paging forward and back.
  await page.getByRole("button", { name: "Next page" }).click();
  await page.locator("#products tbody tr", { hasText: "BOARD-25" }).waitFor();
  await page.getByRole("button", { name: "Previous page" }).click();
  await page.locator("#products tbody tr", { hasText: "BOARD-01" }).waitFor();

  // A reduction from outside turns the row LOW_STOCK live and raises an alert.
  const row = page.locator(`#products tbody tr[data-id="${ids[1]}"]`);
  if ((await row.getAttribute("data-status")) !== "IN_STOCK") throw new Error("BOARD-02 should start IN_STOCK");
  await graphql(`mutation($id: ID!) { reduceStock(id: $id, quantity: 16) { newStock } }`, { id: ids[1] });
  await page.locator(`#products tbody tr.low[data-id="${ids[1]}"]`).waitFor({ timeout: 15_000 });
  const stock = await row.locator(".stock").innerText();
  if (stock !== "4") throw new Error(`BOARD-02 shows stock ${stock}, not 4`);
  await page.locator("#alerts li", { hasText: "BOARD-02 is low" }).waitFor({ timeout: 15_000 });
  await page.locator("#movements li", { hasText: "BOARD-02: -16" }).waitFor({ timeout: 15_000 });

  // The history of the product with two movements draws both points.
  await page.getByRole("button", { name: "Show the stock history of BOARD-01" }).click();
  await page.locator("#chart-caption", { hasText: "from 20 to 35" }).waitFor({ timeout: 15_000 });
  await shot("board.png");

  // Search by keyboard.
  await page.getByLabel("Search name or SKU").fill("board-02");
  await page.keyboard.press("Enter");
  await page.locator("#summary", { hasText: "1 product" }).waitFor();

  // A phone-sized screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await shot("board-phone.png");
});
