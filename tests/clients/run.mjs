// Runs every client check in turn: relay-compiler over relay/ (relay-check.mjs), then Apollo
// Client, urql graphcache and relay-runtime against the real server, each on its own server
// (a fresh SQLite file, or the PostgreSQL database given). Runs them all, fails if any failed.
// Usage: node run.mjs <path/to/stockroom> [database-url]
import { spawnSync } from "node:child_process";
import { join } from "node:path";

const [binary, databaseUrl] = process.argv.slice(2);
if (!binary) {
  console.error("usage: node run.mjs <path/to/stockroom> [database-url]");
  process.exit(2);
}
const here = new URL(".", import.meta.url).pathname;
const steps = [
  ["relay-check.mjs"],
  ["apollo.mjs", binary, ...(databaseUrl ? [databaseUrl] : [])],
  ["urql.mjs", binary, ...(databaseUrl ? [databaseUrl] : [])],
  ["relay.mjs", binary, ...(databaseUrl ? [databaseUrl] : [])],
];
const failed = [];
for (const [script, ...args] of steps) {
  const { status } = spawnSync(process.execPath, [join(here, script), ...args], { stdio: "inherit" });
  if (status !== 0) failed.push(script);
}
if (failed.length) {
  console.error(`client checks failed: ${failed.join(", ")}`);
  process.exit(1);
}
console.log("client checks: all passed");
