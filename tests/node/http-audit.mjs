// Runs the GraphQL-over-HTTP specification's own audit suite (`serverAudits` from the
// `graphql-http` npm package, a client we did not write) against the real binary, and fails
// unless every audit — MUST, SHOULD and MAY alike — is `ok`.
//
//   node http-audit.mjs path/to/stockroom [open|auth] [DATABASE_URL]
//
// Without DATABASE_URL it runs on a fresh SQLite file. In `auth` mode the server requires
// bearer tokens and the audits send none (they only ask for `__typename` and `__type`).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { serverAudits } from "graphql-http";

const binary = resolve(process.argv[2] ?? "../../target/debug/stockroom");
const mode = process.argv[3] ?? "open";
const folder = mkdtempSync(join(tmpdir(), "stockroom-http-audit-"));
const databaseUrl = process.argv[4] ?? `sqlite://${join(folder, "stockroom.db")}`;
const backend = databaseUrl.startsWith("postgres") ? "PostgreSQL" : "SQLite";

const args = ["serve", "--database-url", databaseUrl, "--listen", "127.0.0.1:0", "--log-format", "json"];
if (mode === "auth") {
  args.push("--jwt-secret", "an-audit-secret-that-is-at-least-32-bytes-long");
}
const server = spawn(binary, args, { stdio: ["ignore", "pipe", "inherit"] });
const deadline = setTimeout(() => finish(1, "timed out after 60 s"), 60_000);

function finish(code, message) {
  clearTimeout(deadline);
  if (message) console.error(`graphql-http audit (${mode}, ${backend}): ${message}`);
  server.kill("SIGTERM");
  rmSync(folder, { recursive: true, force: true });
  process.exit(code);
}

server.on("exit", (code) => finish(1, `the server exited early (${code})`));

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

const results = [];
for (const { id, name, fn } of serverAudits({ url: `http://${address}/graphql`, fetchFn: fetch })) {
  const result = await fn();
  results.push(result);
  const reason = result.status === "ok" ? "" : ` — ${result.reason}`;
  console.log(`${result.status.padEnd(5)} ${id} ${name}${reason}`);
}
const count = (level, status) =>
  results.filter((r) => r.name.startsWith(level) && (status === undefined || r.status === status)).length;
for (const level of ["MUST", "SHOULD", "MAY"]) {
  console.log(`${level}: ${count(level, "ok")}/${count(level)} ok`);
}
const failed = results.filter((r) => r.status !== "ok").length;
console.log(`graphql-http audit (${mode}, ${backend}): ${results.length - failed} passed, ${failed} failed`);
finish(failed === 0 ? 0 : 1);
