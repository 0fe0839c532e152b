// Runs the GraphQL-over-HTTP specification's own audit suite (`serverAudits` from the
// `graphql-http` npm package, a client we did not write) against the real binary, and fails
// unless every audit — MUST, SHOULD and MAY alike — is `ok`.
//
//   node http-audit.mjs path/to/stockroom [open|auth] [DATABASE_URL]
//
// Without DATABASE_URL it runs on a fresh SQLite file. In `auth` mode the server requires
// bearer tokens and the audits send none (they only ask for `__typename` and `__type`).
import { serverAudits } from "graphql-http";
import { startServer } from "./server.mjs";

const [binary = "../../target/debug/stockroom", mode = "open", databaseUrl] = process.argv.slice(2);
const args = mode === "auth" ? ["--jwt-secret", "an-audit-secret-that-is-at-least-32-bytes-long"] : [];
const server = await startServer(binary, args, databaseUrl);
const deadline = setTimeout(() => {
  console.error("graphql-http audit: timed out after 60 s");
  server.stop();
  process.exit(1);
}, 60_000);

const results = [];
for (const { id, name, fn } of serverAudits({ url: `http://${server.address}/graphql`, fetchFn: fetch })) {
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
console.log(`graphql-http audit (${mode}, ${server.backend}): ${results.length - failed} passed, ${failed} failed`);
clearTimeout(deadline);
server.stop();
process.exit(failed === 0 ? 0 : 1);
