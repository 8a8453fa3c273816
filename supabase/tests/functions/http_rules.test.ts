// The common rules of the HTTP contract: methods, content types, sizes, JSON, actions, request
// ids, CORS, and the order in which the checks answer.
import assert from "node:assert/strict";
import {
  asService,
  asUser,
  jobData,
  rawFetch,
  serviceToken,
  test,
  userToken,
} from "../helpers/service.ts";

async function post(body: BodyInit, headers: Record<string, string> = {}, fn = "job-operations") {
  const res = await rawFetch(fn, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${await userToken(crypto.randomUUID())}`,
      "Content-Type": "application/json",
      ...headers,
    },
    body,
  });
  const text = await res.text();
  return { res, body: text ? JSON.parse(text) : null };
}

test("OPTIONS is a 204 CORS preflight", async () => {
  const res = await rawFetch("job-operations", { method: "OPTIONS" });
  await res.body?.cancel();
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  const allowed = res.headers.get("access-control-allow-headers")!;
  for (const h of ["authorization", "x-client-info", "apikey", "content-type", "x-request-id"]) {
    assert.ok(allowed.includes(h), h);
  }
  assert.match(res.headers.get("access-control-allow-methods")!, /POST/);
});

test("other methods are 405 METHOD_NOT_ALLOWED, with CORS and JSON", async () => {
  for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
    const res = await rawFetch("job-operations", { method });
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.match(res.headers.get("content-type")!, /application\/json/);
    assert.equal((await res.json()).error.code, "METHOD_NOT_ALLOWED");
  }
});

test("a body that is not JSON by content type is 415", async () => {
  const { res, body } = await post("{}", { "Content-Type": "text/plain" });
  assert.equal(res.status, 415);
  assert.equal(body.error.code, "UNSUPPORTED_MEDIA_TYPE");
});

test("unparseable JSON is 400 INVALID_JSON", async () => {
  for (const text of ["{", "", "{'a':1}", "[1,]"]) {
    const { res, body } = await post(text);
    assert.equal(res.status, 400, text);
    assert.equal(body.error.code, "INVALID_JSON");
  }
});

test("a body over 8 MiB is 413 before it is parsed, declared or not", async () => {
  const { res, body } = await post("x".repeat(8 * 1024 * 1024 + 1));
  assert.equal(res.status, 413);
  assert.equal(body.error.code, "PAYLOAD_TOO_LARGE");
  assert.deepEqual(body.error.details, { limit_bytes: 8 * 1024 * 1024 });
  // sent without a Content-Length (chunked), it is refused once 8 MiB have been read
  const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent > 9 * 1024 * 1024) return controller.close();
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  const chunked = await post(stream);
  assert.equal(chunked.res.status, 413);
  assert.deepEqual(chunked.body.error.details, { limit_bytes: 8 * 1024 * 1024 });
});

test("JSON with more values or deeper nesting than any valid request is 413 before it is parsed", async () => {
  const deep = await post(`{"action":"listJobs","data":${"[".repeat(68)}${"]".repeat(68)}}`);
  assert.equal(deep.res.status, 413);
  assert.deepEqual(deep.body.error.details, { limit_depth: 68 });
  // 68 levels are within the bound: the validator answers
  const within = await post(`{"action":"listJobs","data":${"[".repeat(67)}${"]".repeat(67)}}`);
  assert.equal(within.body.error.code, "VALIDATION_ERROR");
  const many = await post(
    JSON.stringify({ action: "listJobs", data: { x: Array(200_000).fill(0) } }),
  );
  assert.equal(many.res.status, 413);
  assert.deepEqual(many.body.error.details, { limit_values: 200_000 });
});

test("over 1 MiB is 413 for actions other than createJob", async () => {
  const half = "x".repeat(600 * 1024);
  const big = JSON.stringify({
    action: "listJobs",
    data: { product_id: half, sending_group_id: half },
  });
  const { res, body } = await post(big);
  assert.equal(res.status, 413);
  assert.equal(body.error.code, "PAYLOAD_TOO_LARGE");
  assert.deepEqual(body.error.details, { limit_bytes: 1024 * 1024 });
  // the same size is fine for createJob (it then fails validation on the long fields)
  const create = JSON.stringify({
    action: "createJob",
    data: jobData({ product_id: half, sending_group_id: half }),
  });
  const created = await post(create);
  assert.equal(created.res.status, 400);
  assert.equal(created.body.error.code, "VALIDATION_ERROR");
});

test("a string longer than any valid request has is 413 before it is parsed", async () => {
  const long = JSON.stringify({
    action: "createJob",
    data: jobData({ metadata: { note: "x".repeat(1024 * 1024) } }),
  });
  const { res, body } = await post(long);
  assert.equal(res.status, 413);
  assert.deepEqual(body.error.details, { limit_string_bytes: 1024 * 1024 });
  // a string of 1 MiB, quotes included, is within the bound: validation answers
  const within = JSON.stringify({
    action: "createJob",
    data: jobData({ metadata: { note: "x".repeat(1024 * 1024 - 2) } }),
  });
  const answer = await post(within);
  assert.equal(answer.body.error.code, "VALIDATION_ERROR");
});

test("a missing or unknown action is 400 UNKNOWN_ACTION listing the valid ones", async () => {
  for (const body of [{}, { action: "dropTables", data: {} }, { action: 7 }, [1], "createJob"]) {
    const { res, body: answer } = await post(JSON.stringify(body));
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(answer.error.code, "UNKNOWN_ACTION");
    assert.match(answer.error.message, /createJob/);
  }
});

test("x-request-id is the server's own, never the caller's, and in error bodies", async () => {
  const sent = await post(JSON.stringify({ action: "listJobs", data: {} }), {
    "x-request-id": "abc.DEF:1-2_3",
  });
  const first = sent.res.headers.get("x-request-id")!;
  assert.notEqual(first, "abc.DEF:1-2_3");
  assert.match(first, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const again = await post(JSON.stringify({ action: "listJobs", data: {} }), {
    "x-request-id": "abc.DEF:1-2_3",
  });
  assert.notEqual(again.res.headers.get("x-request-id"), first, "one id per request");
  const replaced = await post(JSON.stringify({ action: "nope" }), {
    "x-request-id": "bad id with spaces",
  });
  const generated = replaced.res.headers.get("x-request-id")!;
  assert.notEqual(generated, "bad id with spaces");
  assert.match(generated, /^[A-Za-z0-9._:-]{1,128}$/);
  assert.equal(replaced.body.error.request_id, generated);
});

test("checks answer in the spec's order", async () => {
  // bad method beats everything
  const method = await rawFetch("job-operations", {
    method: "GET",
    headers: { "Content-Type": "text/plain" },
  });
  assert.equal(method.status, 405);
  await method.body?.cancel();
  // content type before token
  const type = await rawFetch("job-operations", {
    method: "POST",
    headers: { "Content-Type": "text/plain" },
    body: "{",
  });
  assert.equal(type.status, 415);
  await type.body?.cancel();
  // token before size, JSON and action: the body of a caller without a valid token is never read
  for (const body of ["{", "x".repeat(8 * 1024 * 1024 + 1), JSON.stringify({ action: "nope" })]) {
    const token = await rawFetch("job-operations", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
    });
    assert.equal(token.status, 401, body.slice(0, 10));
    await token.body?.cancel();
  }
  // role for the function before size, JSON and action
  for (const body of ["{", "x".repeat(8 * 1024 * 1024 + 1), JSON.stringify({ action: "nope" })]) {
    const role = await post(body, {}, "task-operations");
    assert.equal(role.res.status, 403, body.slice(0, 10));
  }
  // size before JSON
  const size = await post(`{${"[".repeat(100)}`);
  assert.equal(size.body.error.code, "PAYLOAD_TOO_LARGE");
  // JSON before action
  const json = await post("{");
  assert.equal(json.body.error.code, "INVALID_JSON");
  // action before validation
  const action = await post(JSON.stringify({ action: "nope", data: 5 }));
  assert.equal(action.body.error.code, "UNKNOWN_ACTION");
  // role for the action (listJobs.user_id) before validation
  const field = await post(
    JSON.stringify({ action: "listJobs", data: { user_id: "x", limit: 0 } }),
  );
  assert.equal(field.res.status, 403);
  // validation before existence
  const invalid = await post(JSON.stringify({ action: "getJob", data: { job_id: "not-a-uuid" } }));
  assert.equal(invalid.res.status, 400);
});

test("task-operations answers UNKNOWN_ACTION listing its actions", async () => {
  const res = await rawFetch("task-operations", {
    method: "POST",
    headers: {
      Authorization: `Bearer ${await serviceToken()}`,
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ action: "createJob", data: {} }),
  });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.error.code, "UNKNOWN_ACTION");
  assert.deepEqual(body.error.details.valid_actions, [
    "addTasks",
    "claimTasks",
    "heartbeat",
    "completeTask",
    "completeTasks",
    "failTask",
  ]);
});

test("unknown function paths are 404 JSON", async () => {
  const res = await rawFetch("no-such-function", { method: "POST" });
  assert.equal(res.status, 404);
  assert.equal((await res.json()).error.code, "NOT_FOUND");
});

test("hostile bodies get a documented 4xx, never a 500", async () => {
  const user = await asUser();
  const service = await asService();
  const hostile: unknown[] = [
    null,
    [],
    "text",
    12,
    { __proto__: { admin: true } },
    { product_id: "'; drop table jobs; --", sending_group_id: '" or 1=1 --' },
    { product_id: "p", sending_group_id: "g", priority: 1e308 },
    { product_id: "p", sending_group_id: "g", priority: -0 },
    { product_id: "p", sending_group_id: "g", max_parallel_tasks: 2 ** 53 },
    { product_id: "p", sending_group_id: "g", tasks: Array(10).fill(null) },
    { product_id: "p", sending_group_id: "g", retry_config: null },
    { product_id: "p".repeat(10_000), sending_group_id: {} },
    { job_id: "00000000-0000-0000-0000-000000000000'--" },
  ];
  for (const caller of [user, service]) {
    for (const action of ["createJob", "getJob", "listJobs"]) {
      for (const data of hostile) {
        const res = await caller.call(action, data);
        assert.ok(res.status < 500, `${action} ${JSON.stringify(data)} → ${res.status}`);
        if (res.status >= 400) {
          assert.ok(
            ["VALIDATION_ERROR", "FORBIDDEN"].includes(res.error!.code),
            `${action}: ${res.error!.code}`,
          );
        }
      }
    }
  }
});
