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

async function post(body: string, headers: Record<string, string> = {}, fn = "job-operations") {
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

test("a body over 8 MiB is 413 before it is parsed", async () => {
  const { res, body } = await post("x".repeat(8 * 1024 * 1024 + 1));
  assert.equal(res.status, 413);
  assert.equal(body.error.code, "PAYLOAD_TOO_LARGE");
});

test("over 1 MiB is 413 for actions other than createJob", async () => {
  const big = JSON.stringify({ action: "listJobs", data: { product_id: "x".repeat(1024 * 1024) } });
  const { res, body } = await post(big);
  assert.equal(res.status, 413);
  assert.equal(body.error.code, "PAYLOAD_TOO_LARGE");
  // the same size is fine for createJob (it then fails validation on the long field)
  const create = JSON.stringify({
    action: "createJob",
    data: jobData({ product_id: "x".repeat(1024 * 1024) }),
  });
  const created = await post(create);
  assert.equal(created.res.status, 400);
});

test("a missing or unknown action is 400 UNKNOWN_ACTION listing the valid ones", async () => {
  for (const body of [{}, { action: "dropTables", data: {} }, { action: 7 }, [1], "createJob"]) {
    const { res, body: answer } = await post(JSON.stringify(body));
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(answer.error.code, "UNKNOWN_ACTION");
    assert.match(answer.error.message, /createJob/);
  }
});

test("x-request-id is echoed when well formed, generated otherwise, and in error bodies", async () => {
  const echoed = await post(JSON.stringify({ action: "listJobs", data: {} }), {
    "x-request-id": "abc.DEF:1-2_3",
  });
  assert.equal(echoed.res.headers.get("x-request-id"), "abc.DEF:1-2_3");
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
  // JSON before token
  const json = await rawFetch("job-operations", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{",
  });
  assert.equal(json.status, 400);
  await json.body?.cancel();
  // token before action
  const token = await rawFetch("job-operations", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ action: "nope" }),
  });
  assert.equal(token.status, 401);
  await token.body?.cancel();
  // role for the function before action
  const role = await post(JSON.stringify({ action: "nope" }), {}, "task-operations");
  assert.equal(role.res.status, 403);
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
