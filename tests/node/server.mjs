// Starts the real `stockroom` binary on a free port (and a fresh SQLite file unless a database
// URL is given) and resolves to `{ address, stop }` once it listens.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

export async function startServer(binaryPath, extraArgs = [], databaseUrl = undefined) {
  const binary = resolve(binaryPath);
  const folder = mkdtempSync(join(tmpdir(), "stockroom-node-"));
  const url = databaseUrl ?? `sqlite://${join(folder, "stockroom.db")}`;
  const server = spawn(
    binary,
    ["serve", "--database-url", url, "--listen", "127.0.0.1:0", "--log-format", "json", ...extraArgs],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const exited = new Promise((_, fail) =>
    server.on("exit", (code) => fail(new Error(`the server exited (${code})`))),
  );
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
  const address = await Promise.race([listening, exited]);
  return {
    address,
    backend: url.startsWith("postgres") ? "PostgreSQL" : "SQLite",
    stop() {
      server.removeAllListeners("exit");
      server.kill("SIGTERM");
      rmSync(folder, { recursive: true, force: true });
    },
  };
}
