// Loads the schema the way code generators, GraphiQL and Apollo's tools do: graphql-js's own
// `getIntrospectionQuery` with every option on, at the server's default limits, then builds a
// client schema from the answer. An introspection query that fans out (lists nested in lists)
// must still be refused.
//
//   node introspection.mjs path/to/stockroom
import { buildClientSchema, getIntrospectionQuery } from "graphql";
import { startServer } from "./server.mjs";

const server = await startServer(process.argv[2] ?? "../../target/debug/stockroom");
let failures = 0;

async function post(query) {
  const response = await fetch(`http://${server.address}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ query }),
  });
  return response.json();
}

const standard = getIntrospectionQuery({
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
  oneOf: true,
});
const answer = await post(standard);
if (answer.errors) {
  console.error("the standard introspection query was refused:", JSON.stringify(answer.errors));
  failures += 1;
} else {
  const schema = buildClientSchema(answer.data);
  const product = schema.getType("Product");
  if (!product || !schema.getMutationType()?.getFields().reduceStock) {
    console.error("the introspected schema lacks Product or reduceStock");
    failures += 1;
  } else {
    console.log(`ok    graphql-js getIntrospectionQuery (every option): ${Object.keys(schema.getTypeMap()).length} types`);
  }
}

const fanOut = await post("{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }");
if (fanOut.errors?.[0]?.extensions?.code !== "GRAPHQL_VALIDATION_FAILED") {
  console.error("a fanning-out introspection query was not refused:", JSON.stringify(fanOut).slice(0, 300));
  failures += 1;
} else {
  console.log("ok    an introspection query nesting four lists is refused");
}

server.stop();
console.log(`introspection: ${2 - failures} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
