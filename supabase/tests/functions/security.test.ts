// Security: forged, tampered, expired and wrong-role or wrong-audience tokens on both functions;
// one user reaching for another user's job through every action; SQL injection attempts in every
// string field (stored and matched verbatim, never executed); and error answers that never leak
// SQL, stack traces or another user's data. (Row-level security per table and role is pgTAP:
// supabase/tests/database/06_rls_every_table.test.sql.)
import assert from "node:assert/strict";
import { base64url, generateKeyPair, SignJWT } from "jose";
import { asService, asUser, jobData, serviceUrl, test, testDb, token } from "../helpers/service.ts";
import { assertNoLeak } from "../helpers/hostile.ts";

type Fn = "job-operations" | "task-operations";

interface Answer {
  status: number;
  body: { data?: unknown; error?: { code: string; message: string; details?: unknown } };
  headers: Headers;
  ms: number;
}

async function call(
  fn: Fn,
  action: string,
  data: unknown,
  headers: Record<string, string>,
): Promise<Answer> {
  const started = performance.now();
  const res = await fetch(`${await serviceUrl()}/functions/v1/${fn}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify({ action, data }),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? JSON.parse(text) : {},
    headers: res.headers,
    ms: performance.now() - started,
  };
}
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

/** Every action of both functions with a body that would be valid for the service. */
function everyAction(jobId: string, taskId: number, userId: string): [Fn, string, unknown][] {
  return [
    ["job-operations", "createJob", jobData({ user_id: userId })],
    ["job-operations", "updateBatchJob", { job_id: jobId, status: "paused" }],
    ["job-operations", "deleteJob", { job_id: jobId, force: true }],
    ["job-operations", "getJob", { job_id: jobId }],
    ["job-operations", "listJobs", {}],
    ["job-operations", "runMaintenance", {}],
    ["task-operations", "addTasks", { job_id: jobId, tasks: [{ payload: 1 }] }],
    ["task-operations", "claimTasks", { worker_id: "w", limit: 1, job_id: jobId }],
    ["task-operations", "heartbeat", { worker_id: "w", tasks: [{ task_id: taskId }] }],
    ["task-operations", "completeTask", { worker_id: "w", task_id: taskId }],
    ["task-operations", "completeTasks", { worker_id: "w", tasks: [{ task_id: taskId }] }],
    ["task-operations", "failTask", {
      worker_id: "w",
      task_id: taskId,
      error: { code: "TIMEOUT", message: "m" },
    }],
  ];
}

/** What must not change while hostile callers try their luck: the job, its tasks, audit, events. */
async function jobState(jobId: string) {
  const [row] = await testDb()`
    select j.status, j.updated_at, j.priority, j.current_phase,
           (select count(*)::int from tasks where job_id = j.id) as tasks,
           (select count(*)::int from tasks where job_id = j.id and status = 'running') as running,
           (select count(*)::int from job_errors where job_id = j.id) as errors,
           (select count(*)::int from job_events where job_id = j.id) as events,
           (select count(*)::int from audit_log where job_id = j.id) as audit
    from jobs j where j.id = ${jobId}`;
  return { ...row };
}

/** Alice's job with two tasks, one of them held by a worker: what the attackers aim at. */
async function victim() {
  const alice = await asUser();
  const marker = `alice-secret-${crypto.randomUUID().slice(0, 8)}`;
  const created = await alice.call<{ id: string }>(
    "createJob",
    jobData({
      product_id: `${marker}-product`,
      sending_group_id: `${marker}-group`,
      metadata: { note: `${marker}-metadata` },
      idempotency_key: `${marker}-key`,
      tasks: [{ payload: { to: `${marker}@example.com` } }, { payload: 2 }],
    }),
  );
  assert.equal(created.status, 201);
  const service = await asService();
  const claimed = await service.task<{ tasks: { task_id: number }[] }>("claimTasks", {
    worker_id: "alice-worker",
    limit: 1,
    job_id: created.data.id,
    lease_ms: 600_000,
  });
  return {
    alice,
    marker,
    jobId: created.data.id,
    taskId: claimed.data.tasks[0].task_id,
    secrets: [marker, alice.userId!],
  };
}

// ----- tokens -----

const b64 = (value: unknown) => base64url.encode(JSON.stringify(value));

/**
 * Tokens signed with an asymmetric key the project does not have. This server has neither a JWKS
 * nor SUPABASE_URL (the test server's local set-up), so nothing can verify them: 503
 * AUTH_NOT_CONFIGURED, never accepted (against a JWKS they are 401: credentials.test.ts).
 */
async function unverifiable(): Promise<[string, string][]> {
  const rsa = await generateKeyPair("RS256");
  const ec = await generateKeyPair("ES256");
  const claims = { role: "service_role" };
  return [
    [
      "RS256 with the attacker's key",
      await new SignJWT(claims).setProtectedHeader({ alg: "RS256" }).setExpirationTime("10m")
        .sign(rsa.privateKey),
    ],
    [
      "ES256 with the attacker's key",
      await new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: "../../etc/passwd" })
        .setExpirationTime("10m").sign(ec.privateKey),
    ],
  ];
}

async function forgeries(userId: string): Promise<[string, string][]> {
  const now = Math.floor(Date.now() / 1000);
  const valid = await token({ role: "authenticated", sub: userId });
  const [header, , signature] = valid.split(".");
  const escalated = `${header}.${
    b64({ role: "service_role", sub: userId, exp: now + 600 })
  }.${signature}`;
  const claims = { role: "service_role" };
  return [
    ["payload swapped under the original signature (role escalation)", escalated],
    ["signature stripped", `${header}.${valid.split(".")[1]}.`],
    ["alg none", `${b64({ alg: "none", typ: "JWT" })}.${b64({ ...claims, exp: now + 600 })}.`],
    [
      "alg HS512 with the project secret",
      await new SignJWT(claims).setProtectedHeader({ alg: "HS512" }).setExpirationTime("10m")
        .sign(new TextEncoder().encode("super-secret-jwt-token-with-at-least-32-characters-long")),
    ],
    [
      "signed with another secret",
      await token({ role: "service_role", secret: "attacker-secret-that-is-at-least-32-chars!!" }),
    ],
    ["expired a minute ago", await token({ role: "service_role", expiresIn: -60 })],
    [
      "no exp at all",
      await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(
        new TextEncoder().encode("super-secret-jwt-token-with-at-least-32-characters-long"),
      ),
    ],
    [
      "not valid yet (nbf in an hour)",
      await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setNotBefore(now + 3600)
        .setExpirationTime(now + 7200).sign(
          new TextEncoder().encode("super-secret-jwt-token-with-at-least-32-characters-long"),
        ),
    ],
    ["user token without aud", await token({ role: "authenticated", sub: userId, aud: null })],
    [
      "user token for another audience",
      await token({ role: "authenticated", sub: userId, aud: "anon" }),
    ],
    ["user token with a non-uuid sub", await token({ role: "authenticated", sub: "admin" })],
    ["user token with a SQL sub", await token({ role: "authenticated", sub: "' or '1'='1" })],
    ["no role claim", await token({ role: undefined as unknown as string, sub: userId })],
    ["garbage", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA"],
    ["an unknown project secret key", "sb_secret_guessed_key_0000000000"],
  ];
}

test("security: forged, tampered, expired and wrong-audience tokens are 401 (503 AUTH_NOT_CONFIGURED where nothing could verify them) on every action and write nothing", async () => {
  const v = await victim();
  const before = await jobState(v.jobId);
  for (const [why, forged] of await forgeries(v.alice.userId!)) {
    for (const [fn, action, data] of everyAction(v.jobId, v.taskId, v.alice.userId!)) {
      const a = await call(fn, action, data, bearer(forged));
      assert.equal(a.status, 401, `${why} → ${action}: ${a.status} ${JSON.stringify(a.body)}`);
      assert.equal(a.body.error?.code, "UNAUTHORIZED");
      assertNoLeak(a.body, `${why} ${action}`, v.secrets);
    }
  }
  for (const [why, forged] of await unverifiable()) {
    for (const [fn, action, data] of everyAction(v.jobId, v.taskId, v.alice.userId!)) {
      const a = await call(fn, action, data, bearer(forged));
      assert.equal(a.status, 503, `${why} → ${action}: ${a.status} ${JSON.stringify(a.body)}`);
      assert.equal(a.body.error?.code, "AUTH_NOT_CONFIGURED");
      assertNoLeak(a.body, `${why} ${action}`, v.secrets);
    }
  }
  // the header forms that carry no credential, or a broken one
  for (
    const headers of [
      {},
      { Authorization: "Basic YWxpY2U6c2VjcmV0" },
      { Authorization: "Bearer" },
      {
        Authorization: `Bearer ${await token({ role: "service_role" })} extra`,
      },
      {
        apikey: await token({ role: "service_role", secret: "attacker-secret-of-32-characters!!" }),
      },
    ] as Record<string, string>[]
  ) {
    const a = await call("job-operations", "listJobs", {}, headers);
    assert.equal(a.status, 401, JSON.stringify(headers).slice(0, 80));
  }
  assert.deepEqual(await jobState(v.jobId), before, "the victim's job is untouched");
});

test("security: wrong roles are 403 — anon and unknown roles everywhere, users on task-operations and runMaintenance", async () => {
  const v = await victim();
  const before = await jobState(v.jobId);
  const roles = [
    ["anon", await token({ role: "anon" })],
    ["supabase_admin", await token({ role: "supabase_admin" })],
    ["postgres", await token({ role: "postgres" })],
  ];
  for (const [role, t] of roles) {
    for (const [fn, action, data] of everyAction(v.jobId, v.taskId, v.alice.userId!)) {
      const a = await call(fn, action, data, bearer(t));
      assert.equal(a.status, 403, `${role} → ${action}: ${a.status}`);
      assert.equal(a.body.error?.code, "FORBIDDEN");
      assertNoLeak(a.body, `${role} ${action}`, v.secrets);
    }
  }
  const mallory = await token({ role: "authenticated", sub: crypto.randomUUID() });
  for (const [fn, action, data] of everyAction(v.jobId, v.taskId, v.alice.userId!)) {
    if (fn !== "task-operations" && action !== "runMaintenance") continue;
    const a = await call(fn, action, data, bearer(mallory));
    assert.equal(a.status, 403, `user → ${action}: ${a.status}`);
    assertNoLeak(a.body, `user ${action}`, v.secrets);
  }
  // a project secret key next to a user's bearer token does not make the user the service
  const secret = Deno.env.get("TEST_SECRET_KEY") ?? "sb_secret_local_test_key";
  const mixed = await call("job-operations", "listJobs", { user_id: v.alice.userId }, {
    ...bearer(mallory),
    apikey: secret,
  });
  assert.equal(mixed.status, 403, "still the user: may not list by user_id");
  const task = await call("task-operations", "claimTasks", { worker_id: "w", limit: 1 }, {
    ...bearer(mallory),
    apikey: secret,
  });
  assert.equal(task.status, 403);
  assert.deepEqual(await jobState(v.jobId), before);
});

test("security: a token just past exp is accepted within the documented 5 s clock tolerance only", async () => {
  const sub = crypto.randomUUID();
  const slightly = await token({ role: "authenticated", sub, expiresIn: -2 });
  assert.equal((await call("job-operations", "listJobs", {}, bearer(slightly))).status, 200);
  const beyond = await token({ role: "authenticated", sub, expiresIn: -30 });
  const a = await call("job-operations", "listJobs", {}, bearer(beyond));
  assert.equal(a.status, 401);
  assert.match(a.body.error!.message, /expired/);
});

// ----- another user's job -----

test("security: another user reaching for a job through every action gets what an absent job gets, and changes nothing", async () => {
  const v = await victim();
  const before = await jobState(v.jobId);
  const bob = await asUser();
  const absent = crypto.randomUUID();
  const requests: [string, (id: string) => Record<string, unknown>][] = [
    ["getJob", (id) => ({ job_id: id })],
    ["getJob", (id) => ({ job_id: id, include: ["errors", "events"] })],
    ...["queued", "running", "paused", "cancelled", "cancelling", "completed", "failed"].map((
      status,
    ) =>
      [
        "updateBatchJob",
        (id: string) => ({
          job_id: id,
          status,
          ...(status === "failed" ? { error_details: { code: "INTERNAL", message: "x" } } : {}),
        }),
      ] as [string, (id: string) => Record<string, unknown>]
    ),
    ["updateBatchJob", (id) => ({ job_id: id, detailed_status: { current_phase: "pwned" } })],
    ["updateBatchJob", (id) => ({ job_id: id, error_details: { code: "INTERNAL", message: "x" } })],
    ["updateBatchJob", (id) => ({ job_id: id, expected_status: "running", status: "paused" })],
    ["deleteJob", (id) => ({ job_id: id })],
    ["deleteJob", (id) => ({ job_id: id, force: true })],
  ];
  for (const [action, data] of requests) {
    const theirs = await bob.call(action, data(v.jobId));
    const nobodys = await bob.call(action, data(absent));
    assert.equal(
      theirs.status,
      404,
      `${action} ${JSON.stringify(data(v.jobId))}: ${theirs.status}`,
    );
    assert.equal(theirs.error?.code, "JOB_NOT_FOUND");
    // indistinguishable from a job that does not exist (the requested id aside)
    assert.equal(theirs.error?.message, nobodys.error?.message);
    assert.equal(
      JSON.stringify(theirs.error?.details).replaceAll(v.jobId, "ID"),
      JSON.stringify(nobodys.error?.details).replaceAll(absent, "ID"),
    );
    assertNoLeak({ error: theirs.error }, action, v.secrets);
  }

  // listing: never Alice's jobs, whatever the filters; only the service lists by user_id
  for (
    const filter of [
      {},
      { product_id: `${v.marker}-product` },
      { sending_group_id: `${v.marker}-group` },
      { status: ["queued", "running", "paused"] },
      { limit: 100 },
    ]
  ) {
    const list = await bob.call<{ jobs: { user_id: string }[] }>("listJobs", filter);
    assert.equal(list.status, 200);
    assert.ok(list.data.jobs.every((j) => j.user_id === bob.userId), JSON.stringify(filter));
    assert.ok(!JSON.stringify(list.data).includes(v.marker));
  }
  assert.equal((await bob.call("listJobs", { user_id: v.alice.userId })).status, 403);
  // Alice's cursor in Bob's hands pages through Bob's jobs, not hers
  await bob.call("createJob", jobData());
  const page = await v.alice.call<{ next_cursor: string | null }>("listJobs", { limit: 1 });
  const aliceMore = await v.alice.call("createJob", jobData({ product_id: `${v.marker}-2` }));
  assert.equal(aliceMore.status, 201);
  const again = await v.alice.call<{ next_cursor: string | null }>("listJobs", { limit: 1 });
  const cursor = again.data.next_cursor ?? page.data.next_cursor;
  if (cursor) {
    const stolen = await bob.call<{ jobs: { user_id: string }[] }>("listJobs", { cursor });
    assert.ok(stolen.status === 200 || stolen.status === 400);
    if (stolen.status === 200) {
      assert.ok(stolen.data.jobs.every((j) => j.user_id === bob.userId));
    }
  }

  // creating: not for Alice; Alice's idempotency key is Bob's own key, no conflict, no replay
  const forAlice = await bob.call("createJob", jobData({ user_id: v.alice.userId }));
  assert.equal(forAlice.status, 403);
  const sameKey = await bob.call<{ id: string; user_id: string }>(
    "createJob",
    jobData({ idempotency_key: `${v.marker}-key`, product_id: "bob" }),
  );
  assert.equal(sameKey.status, 201, "a new job of Bob's, not a conflict that reveals the key");
  assert.notEqual(sameKey.data.id, v.jobId);
  assert.equal(sameKey.data.user_id, bob.userId);

  // the task side is the service's only: a user holding Alice's task id gets 403 on all of it
  for (const [fn, action, data] of everyAction(v.jobId, v.taskId, v.alice.userId!)) {
    if (fn !== "task-operations") continue;
    const a = await bob.task(action, data);
    assert.equal(a.status, 403, action);
  }
  assert.deepEqual(await jobState(v.jobId), before, "Alice's job is exactly as it was");
});

// ----- SQL injection -----

const INJECTIONS = [
  "'; drop table jobs; --",
  "' or '1'='1",
  "1); delete from tasks; --",
  "$$; truncate audit_log; $$",
  "\\'; select pg_sleep(3); --",
  "x' union select user_id::text from jobs --",
  "%' or 1=1 --",
  '"; update jobs set priority = 100; --',
  "💥'||(select string_agg(id::text, ',') from jobs)||'",
];

test("security: SQL in every string field is stored and matched verbatim, never executed", async () => {
  const service = await asService();
  const user = await asUser();
  const [{ jobs: jobsBefore }] = await testDb()`select count(*)::int as jobs from jobs`;
  // a bystander's job that an injected update or delete would change
  const sentinel = await service.call<{ id: string }>(
    "createJob",
    jobData({ user_id: crypto.randomUUID(), priority: 7, tasks: [{ payload: "keep" }] }),
  );
  const sentinelBefore = await jobState(sentinel.data.id);
  for (const [i, sql] of INJECTIONS.entries()) {
    const started = performance.now();
    const key = `${sql}-${i}`;
    const ascii = /^[\x20-\x7e]*$/.test(key);
    const created = await user.call<{ id: string; product_id: string; metadata: unknown }>(
      "createJob",
      jobData({
        product_id: `${sql}`,
        sending_group_id: `${sql} group`,
        metadata: { [sql]: sql, nested: [sql, { k: sql }] },
        tasks: [{ payload: { [sql]: sql } }],
        // (a header can carry only Latin-1: other keys go in the body)
        ...(ascii ? {} : { idempotency_key: key }),
      }),
      ascii ? { "Idempotency-Key": key, "x-request-id": sql } : {},
    );
    assert.equal(created.status, 201, `${sql}: ${JSON.stringify(created.error)}`);
    // a request id that is not well formed is replaced, not echoed
    assert.notEqual(created.headers.get("x-request-id"), sql);
    const id = created.data.id;
    assert.equal(created.data.product_id, sql);
    assert.deepEqual(created.data.metadata, { [sql]: sql, nested: [sql, { k: sql }] });
    const [stored] = await testDb()`
      select j.product_id, j.sending_group_id, k.key
      from jobs j join idempotency_keys k on k.job_id = j.id where j.id = ${id}`;
    assert.deepEqual({ ...stored }, { product_id: sql, sending_group_id: `${sql} group`, key });

    // filters match exactly this text, nothing else
    const byProduct = await user.call<{ jobs: { id: string }[] }>("listJobs", { product_id: sql });
    assert.deepEqual(byProduct.data.jobs.map((j) => j.id), [id], `listJobs product_id ${sql}`);
    const byGroup = await user.call<{ jobs: { id: string }[] }>("listJobs", {
      sending_group_id: `${sql} group`,
    });
    assert.deepEqual(byGroup.data.jobs.map((j) => j.id), [id]);

    // progress, errors, workers, results and failures carry it verbatim as well
    const updated = await user.call<{ detailed_status: { current_phase: string } }>(
      "updateBatchJob",
      {
        job_id: id,
        detailed_status: { current_phase: sql.slice(0, 64) },
        error_details: { code: "INTERNAL", message: sql, stack: `${sql}\n  at x` },
      },
    );
    assert.equal(updated.status, 200, JSON.stringify(updated.error));
    assert.equal(updated.data.detailed_status.current_phase, sql.slice(0, 64));
    const worker = `${sql}-worker`;
    const claimed = await service.task<{ tasks: { task_id: number; payload: unknown }[] }>(
      "claimTasks",
      { worker_id: worker, limit: 1, job_id: id },
    );
    assert.equal(claimed.status, 200);
    assert.deepEqual(claimed.data.tasks[0].payload, { [sql]: sql });
    const taskId = claimed.data.tasks[0].task_id;
    const beat = await service.task<{ tasks: { action: string }[] }>("heartbeat", {
      worker_id: worker,
      tasks: [{ task_id: taskId }],
    });
    assert.equal(beat.data.tasks[0].action, "continue");
    const other = await service.task("completeTask", { worker_id: `${sql}`, task_id: taskId });
    assert.equal(other.status, 409, "a similar worker id is another worker");
    if (i % 2 === 0) {
      const done = await service.task("completeTask", {
        worker_id: worker,
        task_id: taskId,
        result: { [sql]: sql },
      });
      assert.equal(done.status, 200);
      const [t] =
        await testDb()`select worker_id, result, ended_by from tasks where id = ${taskId}`;
      assert.deepEqual({ ...t }, { worker_id: null, result: { [sql]: sql }, ended_by: worker });
    } else {
      const failed = await service.task("failTask", {
        worker_id: worker,
        task_id: taskId,
        error: { code: "INVALID_PAYLOAD", message: sql, stack: sql },
      });
      assert.equal(failed.status, 200);
    }
    const got = await user.call<{ errors: { message: string; stack: string | null }[] }>(
      "getJob",
      { job_id: id, include: ["errors", "events"] },
    );
    assert.ok(got.data.errors.some((e) => e.message === sql && e.stack === `${sql}\n  at x`));
    assert.ok(performance.now() - started < 2_500, `no pg_sleep ran for ${sql}`);
  }
  // the tables are all there and nothing was deleted, truncated or rewritten
  const [{ jobs: jobsAfter, audit }] = await testDb()`
    select (select count(*)::int from jobs) as jobs, (select count(*)::int from audit_log) as audit`;
  assert.ok(jobsAfter >= jobsBefore + INJECTIONS.length, `${jobsBefore} → ${jobsAfter} jobs`);
  assert.ok(audit > 0);
  assert.deepEqual(await jobState(sentinel.data.id), sentinelBefore, "a bystander's job untouched");
});

test("security: SQL in ids, codes, filters and cursors is a plain 400, fast, with nothing leaked", async () => {
  const user = await asUser();
  const service = await asService();
  for (const sql of INJECTIONS) {
    const answers = [
      await user.call("getJob", { job_id: sql }),
      await user.call("updateBatchJob", { job_id: sql, status: "paused" }),
      await user.call("deleteJob", { job_id: `00000000-0000-4000-8000-000000000000${sql}` }),
      await user.call("listJobs", { status: [sql] }),
      await user.call("listJobs", { cursor: sql }),
      await service.call("listJobs", { user_id: sql }),
      await service.task("claimTasks", { worker_id: "w", limit: 1, job_id: sql }),
      await service.task("failTask", {
        worker_id: "w",
        task_id: 1,
        error: { code: sql, message: "m" },
      }),
      await user.call("updateBatchJob", {
        job_id: crypto.randomUUID(),
        error_details: { code: sql, message: "m" },
      }),
    ];
    for (const a of answers) {
      assert.equal(a.status, 400, `${sql}: ${a.status} ${JSON.stringify(a.error)}`);
      assert.equal(a.error?.code, "VALIDATION_ERROR");
      assertNoLeak({ error: a.error }, sql);
    }
  }
});

test("security: error answers of every kind carry no SQL, no stack trace and no other user's data", async () => {
  const v = await victim();
  const bob = await asUser();
  const service = await asService();
  // one of each documented error, provoked around Alice's job by Bob or the service
  const answers = [
    await bob.call("getJob", { job_id: v.jobId }),
    await bob.call("createJob", jobData({ user_id: v.alice.userId })),
    await v.alice.call("updateBatchJob", { job_id: v.jobId, status: "pending" }),
    await v.alice.call("updateBatchJob", {
      job_id: v.jobId,
      status: "paused",
      expected_status: "failed",
    }),
    await v.alice.call("createJob", jobData({ idempotency_key: `${v.marker}-key`, priority: 1 })),
    await service.task("completeTask", { worker_id: "mallory-worker", task_id: v.taskId }),
    await service.task("failTask", {
      worker_id: "mallory-worker",
      task_id: v.taskId,
      error: { code: "TIMEOUT", message: "m" },
    }),
    await service.task("completeTask", { worker_id: "w", task_id: 2 ** 40 }),
    await bob.call("listJobs", { limit: 1000 }),
    await bob.task("claimTasks", { worker_id: "w", limit: 1 }),
  ];
  const codes = answers.map((a) => `${a.status} ${a.error?.code}`);
  assert.deepEqual(codes, [
    "404 JOB_NOT_FOUND",
    "403 FORBIDDEN",
    "409 INVALID_TRANSITION",
    "409 PRECONDITION_FAILED",
    "409 IDEMPOTENCY_CONFLICT",
    "409 LEASE_LOST",
    "409 LEASE_LOST",
    "404 TASK_NOT_FOUND",
    "400 VALIDATION_ERROR",
    "403 FORBIDDEN",
  ]);
  for (const [i, a] of answers.entries()) {
    assert.ok(a.error?.request_id, "every error names its request");
    // Bob's answers must not reveal anything of Alice's; Alice may see her own job
    const secrets = [0, 1, 8, 9].includes(i) ? v.secrets : [];
    assertNoLeak({ error: a.error }, codes[i], secrets);
  }
  // a lease conflict does not tell a stranger who holds the task
  assert.ok(!JSON.stringify(answers[5].error).includes("alice-worker"));
});
