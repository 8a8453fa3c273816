// Unit tests of the shared helpers: canonical JSON, UTF-8 sizes, cursors (their key is the
// database's), zod issue paths.
import assert from "node:assert/strict";
import { base64url } from "jose";
import postgres from "postgres";
import { closeDb } from "../../functions/_shared/db.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";
import { canonicalJson, sha256Hex } from "../../functions/job-operations/canonical_json.ts";
import fc from "fast-check";
import { jsonBytesOver, utf8Length } from "../../functions/_shared/validation.ts";
import { decodeCursor, encodeCursor } from "../../functions/job-operations/cursor.ts";
import { ApiError } from "../../functions/_shared/errors.ts";
import { requestSchema } from "../../functions/_shared/dispatcher.ts";
import { jobOperationsActions } from "../../functions/job-operations/handler.ts";
import { logRequest, requestIdsOf } from "../../functions/_shared/request.ts";

Deno.test("canonicalJson sorts keys at every level and ignores undefined", () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [3, { f: 1, e: 2 }], c: null }, u: undefined }),
    '{"a":{"c":null,"d":[3,{"e":2,"f":1}]},"b":1}',
  );
  assert.equal(canonicalJson(JSON.parse('{"__proto__":1,"a":2}')), '{"__proto__":1,"a":2}');
});

Deno.test("sha256Hex matches a known digest", async () => {
  assert.equal(
    await sha256Hex("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

Deno.test("utf8Length equals TextEncoder's count", () => {
  for (const s of ["", "abc", "é", "€", "😀", "a😀b€", "\ud800", "x".repeat(1000)]) {
    assert.equal(utf8Length(s), new TextEncoder().encode(s).length, JSON.stringify(s));
  }
});

Deno.test("jsonBytesOver measures what JSON.stringify would write, without writing it", () => {
  const wellFormed = fc.jsonValue({ stringUnit: "binary" }).filter((v) =>
    JSON.stringify(v) === JSON.stringify(v, (_, x) => typeof x === "string" ? x.toWellFormed() : x)
  );
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue(), wellFormed, fc.constant(-0)), (value) => {
      const bytes = utf8Length(JSON.stringify(value));
      assert.equal(jsonBytesOver(value, bytes), false);
      assert.equal(jsonBytesOver(value, bytes - 1), true);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("cursors round-trip, reject tampering, and are signed with the database's own key", async () => {
  const position = { t: "1795897494797630", i: "d881cdd3-4843-42f5-b3be-d3faa1b759de" };
  try {
    const cursor = await encodeCursor(position);
    assert.deepEqual(await decodeCursor(cursor), position);
    const [body, mac] = cursor.split(".");
    await assert.rejects(decodeCursor(`${body}x.${mac}`), ApiError);
    await assert.rejects(
      decodeCursor(`${body}.${mac.replace(/^./, (c) => (c === "A" ? "B" : "A"))}`),
      ApiError,
    );
    // no CURSOR_SECRET here: the key is the one the migration generated in this database
    const db = postgres(Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL, { max: 1 });
    try {
      const [{ key }] = await db<{ key: Uint8Array }[]>`
        select key from job_service.signing_keys where name = 'list_cursor'`;
      const hmac = await crypto.subtle.importKey(
        "raw",
        key as Uint8Array<ArrayBuffer>,
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      );
      const expected = new Uint8Array(
        await crypto.subtle.sign("HMAC", hmac, base64url.decode(body) as Uint8Array<ArrayBuffer>),
      );
      assert.equal(base64url.encode(expected), mac);
    } finally {
      await db.end();
    }
  } finally {
    await closeDb();
  }
});

Deno.test("the request schema is a discriminated union over exactly the actions", () => {
  const schema = requestSchema(jobOperationsActions);
  const ok = schema.safeParse({ action: "getJob", data: { job_id: crypto.randomUUID() } });
  assert.equal(ok.success, true);
  const wrong = schema.safeParse({ action: "getJob", data: { job_id: crypto.randomUUID(), x: 1 } });
  assert.equal(wrong.success, false);
});

Deno.test("config.toml declares both functions and every path in it resolves", async () => {
  const supabaseDir = new URL("../../", import.meta.url);
  const toml = await Deno.readTextFile(new URL("config.toml", supabaseDir));
  for (const fn of ["job-operations", "task-operations"]) {
    const section = new RegExp(`\\[functions\\.${fn}\\]([^\\[]*)`).exec(toml)?.[1];
    assert.ok(section, `[functions.${fn}] is declared`);
    for (const key of ["import_map", "entrypoint"]) {
      const path = new RegExp(`${key}\\s*=\\s*"([^"]+)"`).exec(section)?.[1];
      assert.ok(path, `${fn}.${key} is set`);
      const stat = await Deno.stat(new URL(path, supabaseDir));
      assert.ok(stat.isFile, `${fn}.${key} = ${path} exists`);
    }
  }
  const importMap = JSON.parse(await Deno.readTextFile(new URL("../deno.json", supabaseDir)));
  for (const [name, target] of Object.entries(importMap.imports as Record<string, string>)) {
    assert.match(
      target,
      /^npm:/,
      `${name} comes from npm (JSR and deno.land are unreachable here)`,
    );
  }
});

Deno.test("request ids: a fresh server id per request, the caller's kept beside it and logged", () => {
  const withId = (id?: string) =>
    new Request("http://x/", { headers: id === undefined ? {} : { "x-request-id": id } });
  const a = requestIdsOf(withId("client.id:1-2_3"));
  const b = requestIdsOf(withId("client.id:1-2_3"));
  assert.match(a.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(a.id, b.id, "the caller cannot choose or repeat the server's id");
  assert.equal(a.client, "client.id:1-2_3");
  assert.equal(requestIdsOf(withId("bad id")).client, null);
  assert.equal(requestIdsOf(withId("x".repeat(129))).client, null);
  assert.equal(requestIdsOf(withId()).client, null);

  const lines: string[] = [];
  const log = console.log;
  console.log = (line: string) => lines.push(line);
  try {
    logRequest({
      function: "job-operations",
      request_id: a.id,
      client_request_id: a.client,
      status: 200,
      duration_ms: 1,
    });
  } finally {
    console.log = log;
  }
  const line = JSON.parse(lines[0]);
  assert.equal(line.request_id, a.id);
  assert.equal(line.client_request_id, "client.id:1-2_3");
});
