// Compiles the Relay documents in relay/ against the checked-in ../../schema.graphql with
// relay-compiler (relay.config.json) into __generated__/ (not committed), then runs it again with
// --validate, which must find nothing left to write. Fails on a non-zero exit, on any warning or
// error in its output, or on a missing artifact. Usage: node relay-check.mjs
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const here = new URL(".", import.meta.url).pathname;
const generated = join(here, "__generated__");
const compiler = join(here, "node_modules", ".bin", "relay-compiler");

// Every operation and fragment in relay/, by the artifact relay-compiler writes for it.
const artifacts = [
  "ProductListQuery", "ProductList_query", "ProductListPaginationQuery",
  "RecentProductsQuery", "RecentProducts_query", "RecentProductsPaginationQuery",
  "ProductDetails_product", "ProductDetailsRefetchQuery", "ProductDetailsQuery",
  "ProductMovements_product", "ProductMovementsPaginationQuery",
  "NodeLookupQuery", "NodeLookupManyQuery", "ProductStatusQuery",
  "CreateProductMutation", "ReduceStockMutation", "LowStockSubscription",
];

function compile(...args) {
  const result = spawnSync(compiler, ["--output", "verbose", ...args], { cwd: here, encoding: "utf8" });
  // Without colours; npm's own notices about the user's npm configuration are not the compiler's.
  const output = `${result.stdout}${result.stderr}`
    .replace(/\x1b\[[0-9;]*m/g, "")
    .split("\n")
    .filter((line) => line.trim() && !line.startsWith("npm warn"));
  const bad = output.filter((line) => /warn|error|fail/i.test(line));
  if (result.error || result.status !== 0 || bad.length) {
    console.error(`relay-compiler ${args.join(" ")} failed (exit ${result.status}):`);
    console.error(result.error ?? output.join("\n"));
    process.exit(1);
  }
  return output;
}

rmSync(generated, { recursive: true, force: true });
mkdirSync(generated);
const output = compile();
compile("--validate");
const missing = artifacts.filter((name) => !existsSync(join(generated, `${name}.graphql.js`)));
if (missing.length) {
  console.error(`relay-compiler wrote no artifact for: ${missing.join(", ")}`);
  process.exit(1);
}
// The artifacts are CommonJS (`"eagerEsModules": false`); this package is ESM.
writeFileSync(join(generated, "package.json"), '{ "type": "commonjs" }\n');
console.log(`relay-compiler: ${artifacts.length} artifacts, no warnings (${output.find((l) => l.includes("compiled documents")).trim()})`);
