// Shared by the browser tests: the real binary on a fresh SQLite file, headless Chromium with
// every request to another origin aborted (and remembered, so the test can fail on it), and a
// small GraphQL client for changes made from outside the page.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

export const screenshots = resolve(new URL("../../target/browser", import.meta.url).pathname);

// Runs `test({ origin, graphql, page, shot, token })` and exits 0 or 1. The server runs with
// authentication on: `token` is an admin's bearer token, which `graphql` sends.
export async function runInBrowser(name, test) {
  const binary = resolve(process.argv[2] ?? "target/debug/stockroom");
  const browserPath = process.argv[3] ?? "/usr/bin/chromium";
  mkdirSync(screenshots, { recursive: true });
  const folder = mkdtempSync(join(tmpdir(), "stockroom-browser-"));
  const env = { ...process.env, STOCKROOM_JWT_SECRET: randomBytes(32).toString("hex") };
  const databaseUrl = `sqlite://${join(folder, "stockroom.db")}`;
  const server = spawn(
    binary,
    ["serve", "--database-url", databaseUrl, "--listen", "127.0.0.1:0", "--log-format", "json"],
    { stdio: ["ignore", "pipe", "inherit"], env },
  );
  const issued = spawnSync(binary, ["token", "--role", "admin", "--subject", "browser-test", "--database-url", databaseUrl], {
    env,
    encoding: "utf8",
  });
  const token = issued.stdout.trim();
  let browser;
  let page;
  const finish = async (error) => {
    clearTimeout(deadline);
    if (error && page) await page.screenshot({ path: join(screenshots, `${name}-failed.png`) }).catch(() => {});
    await browser?.close().catch(() => {});
    server.kill("SIGTERM");
    rmSync(folder, { recursive: true, force: true });
    if (error) {
      console.error(`${name} (browser): FAILED: ${error.stack ?? error}`);
      process.exit(1);
    }
    console.log(`${name} (browser): ok (screenshots in ${screenshots})`);
    process.exit(0);
  };
  const deadline = setTimeout(() => finish(new Error("timed out after 90 s")), 90_000);
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
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      });
      const body = await response.json();
      if (body.errors) throw new Error(JSON.stringify(body.errors));
      return body.data;
    };
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
    page = await context.newPage();
    const pageErrors = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    const shot = (file) => page.screenshot({ path: join(screenshots, file), fullPage: true });
    if (issued.status !== 0 || !token) throw new Error(`stockroom token failed: ${issued.stderr}`);
    await test({ origin, graphql, page, shot, token });
    if (foreign.length) throw new Error(`requests to other origins: ${foreign.join(", ")}`);
    if (pageErrors.length) throw new Error(`errors in the page: ${pageErrors.join("; ")}`);
    await finish();
  } catch (error) {
    await finish(error);
  }
}
