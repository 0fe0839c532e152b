// Shared by the client scripts: starts the real `stockroom` binary (argv[2]) on a fresh SQLite
// file, or on the database URL in argv[3], and runs one check script against it within a time
// limit. Anything a client library prints with console.warn / console.error fails the run, and
// the server is stopped however the run ends.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { format } from "node:util";

export function startServer(binaryPath, databaseUrl) {
  const folder = mkdtempSync(join(tmpdir(), "stockroom-clients-"));
  const url = databaseUrl ?? `sqlite://${join(folder, "stockroom.db")}`;
  const server = spawn(
    resolve(binaryPath),
    ["serve", "--database-url", url, "--listen", "127.0.0.1:0", "--log-format", "json"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const exited = new Promise((_, fail) => {
    server.on("error", fail);
    server.on("exit", (code) => fail(new Error(`the server exited (${code})`)));
  });
  exited.catch(() => {});
  // The server logs its address as JSON once it listens: {"address":"127.0.0.1:PORT", ...}.
  const listening = new Promise((done) => {
    createInterface({ input: server.stdout }).on("line", (line) => {
      try {
        const entry = JSON.parse(line);
        if (entry.address) done(entry.address);
      } catch {
        // not a JSON log line
      }
    });
  });
  return {
    address: Promise.race([listening, exited]),
    backend: url.startsWith("postgres") ? "PostgreSQL" : "SQLite",
    exited,
    stop() {
      server.removeAllListeners("exit");
      server.kill("SIGTERM");
      rmSync(folder, { recursive: true, force: true });
    },
  };
}

// Runs `main({ address, check, tag })`; `check(condition, message)` counts passed checks and
// throws with `message` on a failed one; `tag` is unique to this run, so that the products it
// creates can be told apart in a shared database.
export async function run(name, main, { timeoutMs = 60_000 } = {}) {
  const [binary, databaseUrl] = process.argv.slice(2);
  if (!binary) {
    console.error(`usage: node ${name}.mjs <path/to/stockroom> [database-url]`);
    process.exit(2);
  }
  const printed = [];
  const realError = console.error;
  for (const level of ["warn", "error"]) {
    console[level] = (...args) => printed.push(`console.${level}: ${format(...args)}`);
  }
  let server;
  let code = 1;
  let timer;
  let checks = 0;
  const check = (condition, message) => {
    if (!condition) throw new Error(`check failed: ${message}`);
    checks += 1;
  };
  try {
    const timeout = new Promise((_, fail) => {
      timer = setTimeout(() => fail(new Error(`timed out after ${timeoutMs / 1000} s`)), timeoutMs);
    });
    server = startServer(binary, databaseUrl);
    const address = await Promise.race([server.address, timeout]);
    const tag = randomBytes(4).toString("hex");
    await Promise.race([main({ address, check, tag }), timeout, server.exited]);
    if (printed.length) throw new Error("the client library printed warnings or errors");
    console.log(`${name}: ok on ${server.backend}, ${checks} checks passed`);
    code = 0;
  } catch (error) {
    realError(`${name}: FAILED${server ? ` on ${server.backend}` : ""} after ${checks} passed checks`);
    realError(error instanceof Error ? error.stack : error);
    if (printed.length) realError(`the client library printed:\n${printed.join("\n")}`);
  } finally {
    clearTimeout(timer);
    server?.stop();
  }
  process.exit(code);
}

// graphql-transport-ws acknowledges no subscription. The server reads one connection's messages
// in order, so once a query sent on the same connection after a subscription has been answered,
// the subscription has been taken in; a moment more lets it start listening.
export async function subscribed(ws) {
  await new Promise((resolve, reject) =>
    ws.subscribe({ query: "{ __typename }" }, { next() {}, error: reject, complete: resolve }),
  );
  await new Promise((resolve) => setTimeout(resolve, 100));
}
