// createJob over HTTP: defaults, every optional field, every validation rule, unknown fields.
import assert from "node:assert/strict";
import { asService, asUser, jobData, test, testDb } from "../helpers/service.ts";
import { BatchJob } from "../../functions/_shared/job_schemas.ts";
import { canonicalJson } from "../../functions/job-operations/canonical_json.ts";

const TRANSIENT = [
  "DEADLOCK",
  "NETWORK_ERROR",
  "RATE_LIMITED",
  "SERVICE_UNAVAILABLE",
  "TIMEOUT",
  "WORKER_LOST",
];

test("createJob applies every default and returns the job shape", async () => {
  const user = await asUser();
  const res = await user.call<BatchJob>("createJob", jobData());
  assert.equal(res.status, 201);
  const job = BatchJob.parse(res.data);
  assert.equal(job.status, "queued");
  assert.equal(job.user_id, user.userId);
  assert.equal(job.priority, 50);
  assert.equal(job.max_parallel_tasks, 10);
  assert.deepEqual(job.retry_config, {
    max_attempts: 3,
    retry_interval: 60_000,
    retry_on_errors: TRANSIENT,
    backoff: "fixed",
    max_retry_interval: 3_600_000,
  });
  assert.equal(job.resource_limits, null);
  assert.deepEqual(job.detailed_status, {
    current_phase: "created",
    progress_percentage: 0,
    active_tasks: 0,
    error_count: 0,
  });
  assert.deepEqual(job.tasks, {
    total: 0,
    pending: 0,
    running: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
  });
  assert.equal(job.attempt, 1);
  assert.equal(job.next_attempt_at, null);
  assert.equal(job.last_error, null);
  assert.deepEqual(job.metadata, {});
  assert.match(job.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(job.started_at, null);
  assert.equal(job.finished_at, null);
});

test("createJob stores every optional field", async () => {
  const user = await asUser();
  const res = await user.call<BatchJob>(
    "createJob",
    jobData({
      priority: 90,
      max_parallel_tasks: 4,
      retry_config: {
        max_attempts: 5,
        retry_interval: 1000,
        retry_on_errors: ["TIMEOUT", "CUSTOM_CODE"],
        backoff: "exponential",
        max_retry_interval: 20_000,
      },
      resource_limits: { max_memory: 2048, max_cpu: 1.5 },
      tasks: [
        { payload: { to: "a@example.com" } },
        { payload: ["any", 1, null], resources: { memory: 512, cpu: 0.5 } },
      ],
      start: false,
      metadata: { campaign: "spring", nested: { deep: [1, 2, 3] } },
      idempotency_key: "optional-fields-1",
    }),
  );
  assert.equal(res.status, 201);
  const job = BatchJob.parse(res.data);
  assert.equal(job.status, "pending");
  assert.equal(job.priority, 90);
  assert.equal(job.max_parallel_tasks, 4);
  assert.deepEqual(job.retry_config, {
    max_attempts: 5,
    retry_interval: 1000,
    retry_on_errors: ["TIMEOUT", "CUSTOM_CODE"],
    backoff: "exponential",
    max_retry_interval: 20_000,
  });
  assert.deepEqual(job.resource_limits, { max_memory: 2048, max_cpu: 1.5 });
  assert.deepEqual(job.tasks, {
    total: 2,
    pending: 2,
    running: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
  });
  assert.deepEqual(job.metadata, { campaign: "spring", nested: { deep: [1, 2, 3] } });

  const tasks = await testDb()`
    select payload, memory::float8 as memory, cpu::float8 as cpu, status
    from tasks where job_id = ${job.id} order by id`;
  assert.deepEqual(tasks.map((t) => ({ ...t })), [
    { payload: { to: "a@example.com" }, memory: null, cpu: null, status: "pending" },
    { payload: ["any", 1, null], memory: 512, cpu: 0.5, status: "pending" },
  ]);
});

test("createJob: max_retry_interval defaults to max(1 h, retry_interval); empty retry_on_errors kept", async () => {
  const user = await asUser();
  const res = await user.call<BatchJob>(
    "createJob",
    jobData({
      retry_config: { max_attempts: 2, retry_interval: 7_200_000, retry_on_errors: [] },
    }),
  );
  assert.equal(res.status, 201);
  assert.equal(res.data.retry_config.max_retry_interval, 7_200_000);
  assert.deepEqual(res.data.retry_config.retry_on_errors, []);
  assert.equal(res.data.retry_config.backoff, "fixed");
});

test("createJob keeps __proto__ keys and unicode in JSON exactly as sent", async () => {
  const user = await asUser();
  const metadata = JSON.parse('{"__proto__":{"polluted":true},"ünï":"😀 ✓"}');
  const res = await user.call<BatchJob>(
    "createJob",
    jobData({
      metadata,
      tasks: [{ payload: JSON.parse('{"__proto__":1,"constructor":{"prototype":2}}') }],
    }),
  );
  assert.equal(res.status, 201);
  // jsonb orders keys its own way: compare canonical forms
  assert.equal(canonicalJson(res.data.metadata), canonicalJson(metadata));
  const [task] =
    await testDb()`select payload::text as payload from tasks where job_id = ${res.data.id}`;
  assert.deepEqual(
    JSON.parse(task.payload),
    JSON.parse('{"__proto__":1,"constructor":{"prototype":2}}'),
  );
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

const long = (n: number, ch = "x") => ch.repeat(n);
const codes = (n: number) => Array.from({ length: n }, (_, i) => `CODE_${i}`);

// [description, data overrides, expected failing path]
const invalid: [string, Record<string, unknown>, string][] = [
  ["product_id missing", { product_id: undefined }, "data.product_id"],
  ["product_id empty", { product_id: "" }, "data.product_id"],
  ["product_id too long", { product_id: long(129) }, "data.product_id"],
  ["product_id not a string", { product_id: 5 }, "data.product_id"],
  ["product_id with NUL", { product_id: "a\u0000b" }, "data.product_id"],
  ["sending_group_id missing", { sending_group_id: undefined }, "data.sending_group_id"],
  ["sending_group_id too long", { sending_group_id: long(129) }, "data.sending_group_id"],
  ["priority below 0", { priority: -1 }, "data.priority"],
  ["priority above 100", { priority: 101 }, "data.priority"],
  ["priority fractional", { priority: 50.5 }, "data.priority"],
  ["priority as string", { priority: "50" }, "data.priority"],
  ["max_parallel_tasks 0", { max_parallel_tasks: 0 }, "data.max_parallel_tasks"],
  ["max_parallel_tasks 1001", { max_parallel_tasks: 1001 }, "data.max_parallel_tasks"],
  [
    "retry_config incomplete",
    { retry_config: { max_attempts: 3 } },
    "data.retry_config.retry_interval",
  ],
  [
    "max_attempts 0",
    { retry_config: { max_attempts: 0, retry_interval: 0, retry_on_errors: [] } },
    "data.retry_config.max_attempts",
  ],
  [
    "max_attempts 101",
    { retry_config: { max_attempts: 101, retry_interval: 0, retry_on_errors: [] } },
    "data.retry_config.max_attempts",
  ],
  [
    "retry_interval negative",
    { retry_config: { max_attempts: 1, retry_interval: -1, retry_on_errors: [] } },
    "data.retry_config.retry_interval",
  ],
  [
    "retry_interval over a day",
    { retry_config: { max_attempts: 1, retry_interval: 86_400_001, retry_on_errors: [] } },
    "data.retry_config.retry_interval",
  ],
  [
    "retry_on_errors bad code",
    { retry_config: { max_attempts: 1, retry_interval: 0, retry_on_errors: ["timeout"] } },
    "data.retry_config.retry_on_errors.0",
  ],
  [
    "retry_on_errors 51 codes",
    { retry_config: { max_attempts: 1, retry_interval: 0, retry_on_errors: codes(51) } },
    "data.retry_config.retry_on_errors",
  ],
  [
    "backoff unknown",
    {
      retry_config: { max_attempts: 1, retry_interval: 0, retry_on_errors: [], backoff: "linear" },
    },
    "data.retry_config.backoff",
  ],
  [
    "max_retry_interval below retry_interval",
    {
      retry_config: {
        max_attempts: 1,
        retry_interval: 5000,
        retry_on_errors: [],
        max_retry_interval: 4999,
      },
    },
    "data.retry_config.max_retry_interval",
  ],
  [
    "max_retry_interval over a week",
    {
      retry_config: {
        max_attempts: 1,
        retry_interval: 0,
        retry_on_errors: [],
        max_retry_interval: 604_800_001,
      },
    },
    "data.retry_config.max_retry_interval",
  ],
  [
    "resource_limits incomplete",
    { resource_limits: { max_memory: 10 } },
    "data.resource_limits.max_cpu",
  ],
  [
    "max_memory 0",
    { resource_limits: { max_memory: 0, max_cpu: 1 } },
    "data.resource_limits.max_memory",
  ],
  [
    "max_memory too big",
    { resource_limits: { max_memory: 1_048_577, max_cpu: 1 } },
    "data.resource_limits.max_memory",
  ],
  [
    "max_cpu too small",
    { resource_limits: { max_memory: 1, max_cpu: 0.0009 } },
    "data.resource_limits.max_cpu",
  ],
  [
    "max_cpu too big",
    { resource_limits: { max_memory: 1, max_cpu: 1025 } },
    "data.resource_limits.max_cpu",
  ],
  ["tasks not an array", { tasks: {} }, "data.tasks"],
  ["task without payload", { tasks: [{}] }, "data.tasks.0.payload"],
  ["task payload over 64 KiB", { tasks: [{ payload: long(65_536) }] }, "data.tasks.0.payload"],
  ["task payload with NUL", { tasks: [{ payload: { a: "\u0000" } }] }, "data.tasks.0.payload"],
  // (a task payload nested too deep is already past the body's nesting bound: 413 before parsing,
  // hostile_bodies.test.ts)
  [
    "metadata nested too deep",
    { metadata: { a: JSON.parse("[".repeat(64) + "]".repeat(64)) } },
    "data.metadata",
  ],
  [
    "task resources negative",
    { tasks: [{ payload: 1, resources: { memory: -1, cpu: 0 } }] },
    "data.tasks.0.resources.memory",
  ],
  [
    "task resources incomplete",
    { tasks: [{ payload: 1, resources: { memory: 1 } }] },
    "data.tasks.0.resources.cpu",
  ],
  [
    "task needs more memory than the job's budget",
    {
      resource_limits: { max_memory: 100, max_cpu: 1 },
      tasks: [{ payload: 1, resources: { memory: 101, cpu: 1 } }],
    },
    "data.tasks.0.resources.memory",
  ],
  [
    "task needs more cpu than the job's budget",
    {
      resource_limits: { max_memory: 100, max_cpu: 1 },
      tasks: [{ payload: 1, resources: { memory: 1, cpu: 2 } }],
    },
    "data.tasks.0.resources.cpu",
  ],
  ["start not a boolean", { start: "yes" }, "data.start"],
  ["metadata an array", { metadata: [1] }, "data.metadata"],
  ["metadata null", { metadata: null }, "data.metadata"],
  ["metadata over 16 KiB", { metadata: { a: long(16_384) } }, "data.metadata"],
  ["idempotency_key empty", { idempotency_key: "" }, "data.idempotency_key"],
  ["idempotency_key too long", { idempotency_key: long(129) }, "data.idempotency_key"],
  ["user_id not a uuid (service)", { user_id: "nope" }, "data.user_id"],
  ["unknown field", { colour: "red" }, "data.colour"],
  [
    "unknown nested field",
    { retry_config: { max_attempts: 1, retry_interval: 0, retry_on_errors: [], jitter: true } },
    "data.retry_config.jitter",
  ],
  ["unknown task field", { tasks: [{ payload: 1, priority: 3 }] }, "data.tasks.0.priority"],
];

test("createJob rejects every invalid field with 400 VALIDATION_ERROR and its path, writing nothing", async () => {
  const service = await asService();
  const owner = crypto.randomUUID();
  for (const [name, overrides, path] of invalid) {
    const data: Record<string, unknown> = { ...jobData({ user_id: owner }), ...overrides };
    for (const key of Object.keys(data)) if (data[key] === undefined) delete data[key];
    const res = await service.call("createJob", data);
    assert.equal(res.status, 400, `${name}: status`);
    assert.equal(res.error?.code, "VALIDATION_ERROR", name);
    const paths = (res.error?.details as { path: string }[]).map((d) => d.path);
    assert.ok(paths.includes(path), `${name}: expected ${path} in ${JSON.stringify(paths)}`);
  }
  const [{ count }] =
    await testDb()`select count(*)::int as count from jobs where user_id = ${owner}`;
  assert.equal(count, 0);
});

test("createJob lists every failing field at once", async () => {
  const user = await asUser();
  const res = await user.call("createJob", { product_id: "", priority: 500, extra: 1 });
  assert.equal(res.status, 400);
  const paths = (res.error?.details as { path: string }[]).map((d) => d.path).sort();
  assert.deepEqual(paths, [
    "data.extra",
    "data.priority",
    "data.product_id",
    "data.sending_group_id",
  ]);
});

test("createJob rejects unknown top-level fields and a missing data", async () => {
  const user = await asUser();
  const extra = await user.client.functions.invoke("job-operations", {
    body: { action: "createJob", data: jobData(), extra: true },
  });
  const extraBody = await (extra.error.context as Response).json();
  assert.equal(extraBody.error.code, "VALIDATION_ERROR");
  assert.deepEqual(extraBody.error.details.map((d: { path: string }) => d.path), ["extra"]);

  const missing = await user.client.functions.invoke("job-operations", {
    body: { action: "createJob" },
  });
  const missingBody = await (missing.error.context as Response).json();
  assert.equal(missingBody.error.code, "VALIDATION_ERROR");
  assert.deepEqual(missingBody.error.details.map((d: { path: string }) => d.path), ["data"]);
});

test("createJob by the service requires user_id and creates the job for that user", async () => {
  const service = await asService();
  const missing = await service.call("createJob", jobData());
  assert.equal(missing.status, 400);
  assert.deepEqual(missing.error?.details, [{
    path: "data.user_id",
    message: "Required for service_role callers.",
  }]);

  const owner = crypto.randomUUID();
  const res = await service.call<BatchJob>("createJob", jobData({ user_id: owner }));
  assert.equal(res.status, 201);
  assert.equal(res.data.user_id, owner);
});

test("createJob writes the audit row and the created event with the server's request id", async () => {
  const user = await asUser();
  const clientId = `req-${crypto.randomUUID()}`;
  const res = await user.call<BatchJob>("createJob", jobData(), { "x-request-id": clientId });
  assert.equal(res.status, 201);
  const requestId = res.headers.get("x-request-id")!;
  assert.notEqual(requestId, clientId);
  const audit = await testDb()`
    select action, actor_role, actor_id, request_id, client_request_id, before,
           after ->> 'status' as status
    from audit_log where job_id = ${res.data.id}`;
  assert.deepEqual(audit.map((a) => ({ ...a })), [{
    action: "job.created",
    actor_role: "authenticated",
    actor_id: user.userId,
    request_id: requestId,
    client_request_id: clientId,
    before: null,
    status: "queued",
  }]);
  const events = await testDb()`
    select type, to_status, request_id from job_events where job_id = ${res.data.id}`;
  assert.deepEqual(events.map((e) => ({ ...e })), [{
    type: "created",
    to_status: "queued",
    request_id: requestId,
  }]);
});
