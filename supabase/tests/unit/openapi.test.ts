// The published API never drifts from the code: docs/openapi.json and docs/api.md are what the
// generator makes of the zod schemas now, every action of both functions is published with its
// answers and an example, and every example passes the very schemas the service validates with.
import assert from "node:assert/strict";
import {
  apiMarkdown,
  codesFor,
  ERROR_STATUS,
  FUNCTIONS,
  jsonSchema,
  namedSchemas,
  nameOf,
  openApiDocument,
  openApiJson,
} from "../../../scripts/lib/openapi.ts";
import {
  ERROR_EXAMPLE,
  EXAMPLES,
  NOTIFICATION_EXAMPLE,
} from "../../../scripts/lib/api_examples.ts";
import { requestSchema } from "../../functions/_shared/dispatcher.ts";
import * as operationsSchemas from "../../functions/_shared/operations_schemas.ts";

const ROOT = new URL("../../../", import.meta.url);
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

Deno.test("docs/openapi.json and docs/api.md match the zod schemas (run deno task gen)", async () => {
  assert.equal(await Deno.readTextFile(new URL("docs/openapi.json", ROOT)), openApiJson());
  assert.equal(await Deno.readTextFile(new URL("docs/api.md", ROOT)), apiMarkdown());
});

Deno.test("every action of both functions is published with its data schema, answers and an example", () => {
  const doc = openApiDocument() as Json;
  assert.equal(doc.openapi, "3.1.0");
  for (const fn of FUNCTIONS) {
    const post = doc.paths[`/functions/v1/${fn.name}`].post;
    const refs = post.requestBody.content["application/json"].schema.oneOf.map((r: Json) => r.$ref);
    assert.equal(refs.length, Object.keys(fn.actions).length);
    for (const [name, action] of Object.entries(fn.actions)) {
      const schemaName = `${name[0].toUpperCase()}${name.slice(1)}Request`;
      assert.ok(refs.includes(`#/components/schemas/${schemaName}`), `${fn.name} ${name}`);
      const published = doc.components.schemas[schemaName];
      assert.deepEqual(published.properties.action, { type: "string", const: name });
      assert.deepEqual(published.properties.data, jsonSchema(action.data, "input"));
      assert.ok(action.doc.responses.length > 0, `${name}: its doc lists what it answers`);
      assert.ok(EXAMPLES[name]?.length, `${name}: add an example (scripts/lib/api_examples.ts)`);
      for (const response of action.doc.responses) {
        const schemaName = nameOf(namedSchemas(), response.schema);
        assert.ok(schemaName, `${name}: its response schema is exported by a schema file`);
        assert.ok(post.responses[String(response.status)], `${name} answers ${response.status}`);
        assert.ok(doc.components.schemas[schemaName], `${schemaName} is published`);
      }
    }
    for (const status of new Set(Object.values(ERROR_STATUS))) {
      assert.deepEqual(post.responses[String(status)], {
        $ref: `#/components/responses/Error${status}`,
      });
      const published = doc.components.responses[`Error${status}`];
      assert.deepEqual(
        published.content["application/json"].schema.properties.error.properties.code.enum,
        codesFor(status),
      );
    }
  }
});

Deno.test("every $ref of the document resolves", () => {
  const doc = openApiDocument() as Json;
  const refs: string[] = [];
  const walk = (node: unknown) => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === "object") {
      for (const [key, value] of Object.entries(node)) {
        if (key === "$ref" && typeof value === "string") refs.push(value);
        else walk(value);
      }
    }
  };
  walk(doc);
  assert.ok(refs.length > 20);
  for (const ref of refs) {
    assert.match(ref, /^#\//);
    let target: unknown = doc;
    for (const part of ref.slice(2).split("/")) target = (target as Json)?.[part];
    assert.ok(target, `${ref} resolves`);
  }
});

Deno.test("every example is a valid request and its answer matches the response schema", () => {
  const named = namedSchemas();
  for (const fn of FUNCTIONS) {
    const requests = requestSchema(fn.actions);
    for (const [name, action] of Object.entries(fn.actions)) {
      for (const example of EXAMPLES[name] ?? []) {
        const parsed = requests.safeParse({ action: name, data: example.data });
        assert.ok(parsed.success, `${name} example: ${JSON.stringify(parsed.error?.issues)}`);
        const response = action.doc.responses.find((r) => r.status === example.status);
        assert.ok(response, `${name} example answers a documented status (${example.status})`);
        const schema = response.schema;
        assert.ok(nameOf(named, schema), `${name}: its response schema is named`);
        const checked = schema.safeParse(example.response);
        assert.ok(checked.success, `${name} answer: ${JSON.stringify(checked.error?.issues)}`);
        // z.object drops what it does not know: the example must hold nothing undocumented
        assert.deepEqual(checked.data, example.response, `${name} answer has no unknown field`);
      }
    }
  }
  assert.ok(operationsSchemas.NotificationBody.safeParse(NOTIFICATION_EXAMPLE).success);
  assert.equal(ERROR_STATUS[ERROR_EXAMPLE.error.code as keyof typeof ERROR_STATUS], 400);
});
