// Property-based tests (fast-check) over every action of both functions: hostile bodies — a
// field of the wrong type, out of range, fractional, too long, too many items, unicode, NUL and
// unpaired surrogates, SQL metacharacters, `__proto__` and other unknown keys, a missing field —
// and random bodies always get the documented 4xx with its code (never a 5xx), a body of the
// documented shape, and write nothing. FUZZ_RUNS scales the number of cases per property.
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  asService,
  asUser,
  jobData,
  serviceToken,
  serviceUrl,
  test,
  testDb,
  userToken,
} from "../helpers/service.ts";
import {
  CreateJobData,
  DeleteJobData,
  GetJobData,
  ListJobsData,
  RunMaintenanceData,
  SetUserLimitsData,
  UpdateBatchJobData,
} from "../../functions/_shared/job_schemas.ts";
import {
  AddTasksData,
  ClaimTasksData,
  CompleteTaskData,
  CompleteTasksData,
  FailTaskData,
  HeartbeatData,
} from "../../functions/_shared/task_schemas.ts";
import { documentedAnswer } from "../stress/checker.ts";
import { assertNoLeak } from "../helpers/hostile.ts";
import { MAX_BODY_DEPTH } from "../../functions/_shared/json_guard.ts";

const RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? 50);
type Fn = "job-operations" | "task-operations";

interface Answer {
  status: number;
  body: { data?: unknown; error?: { code: string; message: string; details?: unknown } };
  headers: Headers;
}

async function post(fn: Fn, body: string, bearer: string): Promise<Answer> {
  const res = await fetch(`${await serviceUrl()}/functions/v1/${fn}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${bearer}`, "Content-Type": "application/json" },
    body,
  });
  const text = await res.text();
  let parsed: Answer["body"] = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    assert.fail(`${res.status} answer is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Everything an error answer must be: documented shape, request id, CORS, nothing leaked. */
function assertErrorShape(a: Answer, context: string) {
  assert.ok(a.status >= 400 && a.status < 500, `${context}: ${a.status} ${JSON.stringify(a.body)}`);
  const error = a.body.error!;
  assert.ok(error && typeof error.code === "string" && typeof error.message === "string", context);
  assert.ok(a.headers.get("x-request-id"), "x-request-id");
  assert.equal(a.headers.get("access-control-allow-origin"), "*");
  if (error.code === "VALIDATION_ERROR") {
    const details = error.details as { path: unknown; message: unknown }[];
    assert.ok(Array.isArray(details) && details.length > 0, `${context}: details ${details}`);
    for (const d of details) {
      assert.equal(typeof d.path, "string", context);
      assert.equal(typeof d.message, "string", context);
    }
  }
  assertNoLeak(a.body, context);
}

/** A snapshot that changes when anything is written anywhere in the service's tables. */
async function fingerprint(): Promise<string> {
  const [row] = await testDb()`
    select (select count(*) from jobs) as jobs, (select max(updated_at) from jobs) as updated,
           (select count(*) from tasks) as tasks,
           (select coalesce(sum(attempt), 0) from tasks) as attempts,
           (select count(*) from tasks where status = 'running') as running,
           (select count(*) from task_ready) as ready,
           (select coalesce(sum(started + ended_seen + pending + failed + cancelled + errors), 0)
              from job_shards) as counters,
           (select coalesce(sum(ended + succeeded + failed + cancelled + requeued + errors), 0)
              from job_shard_ends) as ends,
           (select count(*) from job_errors) as errors, (select count(*) from job_events) as events,
           (select count(*) from audit_log) as audit, (select count(*) from idempotency_keys) as keys,
           (select count(*) from notifications) as notifications,
           (select count(*) from user_limits) as user_limits,
           (select max(updated_at) from user_limits) as limits_updated`;
  return JSON.stringify(row);
}

/** How deep a JSON value nests its arrays and objects (a scalar: 0). */
function nesting(value: unknown): number {
  if (value === null || typeof value !== "object") return 0;
  return 1 + Math.max(0, ...Object.values(value).map(nesting));
}

// ----- hostile values -----

const SQL = [
  "'; drop table jobs; --",
  "' or '1'='1",
  "1; select pg_sleep(5)",
  "$$; delete from tasks; $$",
  "\\'; truncate audit_log; --",
  "%' or 1=1 --",
  '") or true --',
];
const WEIRD = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udfffy",
  "🙂🙂🙂",
  "\u202etxt.exe",
  "e\u0301",
  "<script>alert(1)</script>",
  "${jndi:ldap://x}",
  "%s%s%n",
  "../../etc/passwd",
  "__proto__",
  "constructor",
  "NaN",
  "null",
  "-0",
];
const hostileString = fc.oneof(
  fc.constantFrom(...SQL, ...WEIRD),
  fc.string({ unit: "binary", maxLength: 40 }),
);
const notUuid = fc.oneof(
  hostileString,
  fc.uuid().map((u) => `${u}'; drop table jobs; --`),
  fc.uuid().map((u) => u.replace(/-/g, "")),
  fc.uuid().map((u) => ` ${u}`),
);
/** Any JSON value of another type than the one given. */
const wrongType = (not: "string" | "number" | "boolean" | "array" | "object") =>
  fc.oneof(
    ...[
      not !== "string" ? hostileString : null,
      not !== "number"
        ? fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }))
        : null,
      not !== "boolean" ? fc.boolean() : null,
      not !== "array" ? fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }) : null,
      not !== "object"
        ? fc.dictionary(hostileString, fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 })
        : null,
      fc.constant(null),
    ].filter((a) => a !== null) as fc.Arbitrary<unknown>[],
  );
const badInt = (min: number, max: number) =>
  fc.oneof(
    fc.integer({ max: min - 1 }),
    fc.integer({ min: max + 1 }),
    fc.double({ min, max, noNaN: true }).filter((x) => !Number.isInteger(x)),
    fc.constantFrom(2 ** 53 + 2, -(2 ** 53) - 2, 1e300),
    fc.integer({ min, max }).map(String),
    wrongType("number"),
  );
const badText = (max: number) =>
  fc.oneof(
    fc.constantFrom("", "\u0000", "a\u0000", "\ud800", "x\udc00"),
    fc.constant("x".repeat(max + 1)),
    fc.string({ minLength: max + 1, maxLength: max + 40, unit: "grapheme" }).filter((s) =>
      s.length > max
    ),
    wrongType("string"),
  );
const badCode = fc.oneof(
  fc.constantFrom(
    "",
    "X",
    "timeout",
    "TIME OUT",
    "1ABC",
    "A-B",
    "A".repeat(65),
    "ÄRGER",
    "A\u0000",
  ),
  fc.constantFrom(...SQL),
  wrongType("string"),
);
const badJson = fc.oneof(
  fc.constant("x".repeat(70_000)),
  fc.constant({ s: "a\u0000b" }),
  fc.constant(["\ud800"]),
  // one level deeper than a stored value may be: the validator's 400 where the body stays within the
  // guard's nesting bound, the guard's 413 where it is already the deepest a valid body has
  fc.constant(JSON.parse("[".repeat(65) + "]".repeat(65))),
);
const badTaskId = fc.oneof(
  fc.constantFrom(0, -1, 1.5, 2 ** 53 + 2, "1", "1 or 1=1", null, [1], { id: 1 }),
  fc.integer({ max: 0 }),
);
const badWorker = badText(128);

/** Rebuilds an object with an own property of any name (even `__proto__`) — JSON keeps it. */
function withKey(base: Record<string, unknown>, key: string, value: unknown) {
  const copy: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(base)) copy[k] = v;
  Object.defineProperty(copy, key, { value, enumerable: true, configurable: true, writable: true });
  return copy;
}
const unknownKey = fc.oneof(
  fc.constantFrom("__proto__", "constructor", "prototype", "toString", "userId", "status ", "ïd"),
  fc.constantFrom(...SQL),
  fc.string({ minLength: 1, maxLength: 20, unit: "binary" }),
);

// ----- the actions, each with a valid body and hostile values for each field -----

interface Target {
  jobId: string;
  taskId: number;
  worker: string;
  owner: string;
}

interface ActionSpec {
  fn: Fn;
  as: "user" | "service";
  schema: { safeParse(x: unknown): { success: boolean } };
  valid: (t: Target) => fc.Arbitrary<Record<string, unknown>>;
  /** per field: values that make the body invalid */
  invalid: Record<string, fc.Arbitrary<unknown>>;
  /** fields whose absence makes the body invalid */
  required: string[];
  /** a valid body naming things that do not exist, and what it must answer */
  absent?: (t: Target) => fc.Arbitrary<Record<string, unknown>>;
  absentAnswer?: { status: number; code?: string };
}

const phase = fc.string({ minLength: 1, maxLength: 20, unit: "grapheme-ascii" });
const validTasks = fc.array(fc.record({ payload: fc.jsonValue({ maxDepth: 2 }) }), {
  minLength: 1,
  maxLength: 3,
});

const ACTIONS: Record<string, ActionSpec> = {
  createJob: {
    fn: "job-operations",
    as: "service",
    schema: CreateJobData,
    valid: (t) =>
      fc.record({
        product_id: phase,
        sending_group_id: phase,
        user_id: fc.constant(t.owner),
        priority: fc.integer({ min: 0, max: 100 }),
        tasks: validTasks,
        start: fc.constant(false),
      }),
    invalid: {
      product_id: badText(128),
      sending_group_id: badText(128),
      user_id: notUuid,
      priority: badInt(0, 100),
      max_parallel_tasks: badInt(1, 1000),
      retry_config: fc.oneof(
        wrongType("object"),
        fc.constant({}),
        fc.record({
          max_attempts: badInt(1, 100),
          retry_interval: fc.constant(1000),
          retry_on_errors: fc.constant([]),
        }),
        fc.constant({
          max_attempts: 3,
          retry_interval: 5000,
          retry_on_errors: [],
          max_retry_interval: 10,
        }),
        fc.constant({ max_attempts: 3, retry_interval: 1, retry_on_errors: ["lower"] }),
        fc.constant({ max_attempts: 3, retry_interval: 1, retry_on_errors: Array(51).fill("A_B") }),
        fc.constant({ max_attempts: 3, retry_interval: 1, retry_on_errors: [], backoff: "linear" }),
      ),
      resource_limits: fc.oneof(
        wrongType("object").filter((v) => v !== null),
        fc.constantFrom(
          { max_memory: 0, max_cpu: 1 },
          { max_memory: 1 },
          { max_memory: 1, max_cpu: 0 },
          { max_memory: 2e6, max_cpu: 1 },
          { max_memory: 1, max_cpu: 2000 },
          { max_memory: "1", max_cpu: 1 },
        ),
      ),
      tasks: fc.oneof(
        wrongType("array"),
        fc.constant([{}]),
        fc.constant([{ payload: 1, extra: true }]),
        fc.constant([{ payload: 1, resources: { memory: -1, cpu: 0 } }]),
        fc.constant([{ payload: 1, resources: { memory: 1, cpu: 0.5, gpu: 1 } }]),
        badJson.map((payload) => [{ payload }]),
        fc.constant(Array.from({ length: 10_001 }, () => ({ payload: 0 }))),
      ),
      start: wrongType("boolean"),
      metadata: fc.oneof(
        wrongType("object"),
        fc.constant({ big: "x".repeat(17_000) }),
        fc.constant({ s: "\u0000" }),
      ),
      idempotency_key: badText(128),
    },
    required: ["product_id", "sending_group_id"],
  },
  updateBatchJob: {
    fn: "job-operations",
    as: "user",
    schema: UpdateBatchJobData,
    valid: (t) =>
      fc.record({
        job_id: fc.constant(t.jobId),
        detailed_status: fc.record({ current_phase: phase }),
      }),
    invalid: {
      job_id: notUuid,
      status: fc.oneof(fc.constantFrom("done", "", "QUEUED", "queued "), wrongType("string")),
      expected_status: fc.oneof(fc.constantFrom("done", "Paused"), wrongType("string")),
      detailed_status: fc.oneof(
        wrongType("object"),
        fc.constantFrom(
          { current_phase: "" },
          { current_phase: "x".repeat(65) },
          { progress_percentage: 100.5 },
          { progress_percentage: -1 },
          { progress_percentage: 12.345 },
          { progress_percentage: "5" },
          { active_tasks: -1 },
          { error_count: 1.5 },
          { current_phase: "p", colour: "red" },
        ),
      ),
      error_details: fc.oneof(
        wrongType("object"),
        badCode.map((code) => ({ code, message: "m" })),
        fc.constantFrom(
          { code: "TIMEOUT" },
          { code: "TIMEOUT", message: "" },
          { code: "TIMEOUT", message: "é".repeat(2049) },
          { code: "TIMEOUT", message: "m", stack: "a\u0000b" },
          { code: "TIMEOUT", message: "m", extra: 1 },
        ),
      ),
    },
    required: ["job_id", "detailed_status"],
    absent: () => fc.record({ job_id: fc.uuid(), status: fc.constantFrom("paused", "cancelled") }),
    absentAnswer: { status: 404, code: "JOB_NOT_FOUND" },
  },
  deleteJob: {
    fn: "job-operations",
    as: "user",
    schema: DeleteJobData,
    valid: (t) => fc.record({ job_id: fc.constant(t.jobId), force: fc.constant(true) }),
    invalid: { job_id: notUuid, force: wrongType("boolean") },
    required: ["job_id"],
    absent: () => fc.record({ job_id: fc.uuid(), force: fc.boolean() }),
    absentAnswer: { status: 404, code: "JOB_NOT_FOUND" },
  },
  getJob: {
    fn: "job-operations",
    as: "user",
    schema: GetJobData,
    valid: (t) => fc.record({ job_id: fc.constant(t.jobId) }),
    invalid: {
      job_id: notUuid,
      include: fc.oneof(
        wrongType("array"),
        fc.constantFrom(["audit"], [1], ["errors", "events", "errors"], [null]),
      ),
    },
    required: ["job_id"],
    absent: () => fc.record({ job_id: fc.uuid() }),
    absentAnswer: { status: 404, code: "JOB_NOT_FOUND" },
  },
  listJobs: {
    fn: "job-operations",
    as: "service",
    schema: ListJobsData,
    valid: () => fc.record({ limit: fc.integer({ min: 1, max: 100 }) }),
    invalid: {
      status: fc.oneof(
        wrongType("array"),
        fc.constantFrom([], ["nope"], ["queued", 1], Array(10).fill("queued")),
      ),
      product_id: badText(128),
      sending_group_id: badText(128),
      limit: badInt(1, 100),
      cursor: fc.oneof(
        fc.constantFrom("", "x".repeat(513)),
        hostileString.filter((s) => s.length > 0 && s.length <= 512),
        fc.base64String({ minLength: 4, maxLength: 100 }).map((s) => `${s}.${s}`),
        wrongType("string"),
      ),
      user_id: notUuid,
    },
    required: [],
  },
  runMaintenance: {
    fn: "job-operations",
    as: "service",
    schema: RunMaintenanceData,
    // never a valid body: a valid one would run maintenance (retention_days 0 purges finished jobs)
    valid: () => fc.constant({}),
    invalid: { retention_days: badInt(0, 3650) },
    required: [],
  },
  setUserLimits: {
    fn: "job-operations",
    as: "service",
    schema: SetUserLimitsData,
    // never sent valid (a valid body stores limits); null is a valid limit (no limit)
    valid: () =>
      fc.record({
        user_id: fc.uuid(),
        max_priority: fc.option(fc.integer({ min: 0, max: 100 })),
        max_active_jobs: fc.option(fc.integer({ min: 0, max: 1_000_000 })),
        max_pending_tasks: fc.option(fc.integer({ min: 0, max: 1_000_000_000 })),
      }, { requiredKeys: ["user_id"] }),
    invalid: {
      user_id: notUuid,
      max_priority: badInt(0, 100).filter((v) => v !== null),
      max_active_jobs: badInt(0, 1_000_000).filter((v) => v !== null),
      max_pending_tasks: badInt(0, 1_000_000_000).filter((v) => v !== null),
    },
    required: ["user_id"],
  },
  addTasks: {
    fn: "task-operations",
    as: "service",
    schema: AddTasksData,
    valid: (t) => fc.record({ job_id: fc.constant(t.jobId), tasks: validTasks }),
    invalid: {
      job_id: notUuid,
      tasks: fc.oneof(
        wrongType("array"),
        fc.constant([]),
        fc.constant([{ payload: 1, extra: 1 }]),
        badJson.map((payload) => [{ payload }]),
        fc.constant(Array.from({ length: 10_001 }, () => ({ payload: 0 }))),
      ),
    },
    required: ["job_id", "tasks"],
    absent: () => fc.record({ job_id: fc.uuid(), tasks: validTasks }),
    absentAnswer: { status: 404, code: "JOB_NOT_FOUND" },
  },
  claimTasks: {
    fn: "task-operations",
    as: "service",
    schema: ClaimTasksData,
    valid: (t) =>
      fc.record({
        worker_id: fc.constant("fuzz-claimer"),
        limit: fc.integer({ min: 1, max: 1000 }),
        job_id: fc.constant(t.jobId),
      }),
    invalid: {
      worker_id: badWorker,
      limit: badInt(1, 1000),
      job_id: notUuid,
      lease_ms: badInt(1000, 3_600_000),
    },
    required: ["worker_id", "limit"],
    absent: () =>
      fc.record({ worker_id: phase, limit: fc.integer({ min: 1, max: 5 }), job_id: fc.uuid() }),
    absentAnswer: { status: 404, code: "JOB_NOT_FOUND" },
  },
  heartbeat: {
    fn: "task-operations",
    as: "service",
    schema: HeartbeatData,
    valid: (t) =>
      fc.record({ worker_id: fc.constant(t.worker), tasks: fc.constant([{ task_id: t.taskId }]) }),
    invalid: {
      worker_id: badWorker,
      tasks: fc.oneof(
        wrongType("array"),
        fc.constant([]),
        badTaskId.map((task_id) => [{ task_id }]),
        fc.constant([{ task_id: 1 }, { task_id: 1 }]),
        fc.constant([{ task_id: 1, usage: { memory: -1, cpu: 0 } }]),
        fc.constant([{ task_id: 1, usage: { memory: 1 } }]),
        fc.constant([{ task_id: 1, extra: true }]),
        fc.constant(Array.from({ length: 1001 }, (_, i) => ({ task_id: i + 1 }))),
      ),
    },
    required: ["worker_id", "tasks"],
  },
  completeTask: {
    fn: "task-operations",
    as: "service",
    schema: CompleteTaskData,
    valid: (t) => fc.record({ worker_id: fc.constant(t.worker), task_id: fc.constant(t.taskId) }),
    invalid: { worker_id: badWorker, task_id: badTaskId, result: badJson },
    required: ["worker_id", "task_id"],
    absent: () =>
      fc.record({ worker_id: phase, task_id: fc.integer({ min: 2_000_000_000, max: 2 ** 40 }) }),
    absentAnswer: { status: 404, code: "TASK_NOT_FOUND" },
  },
  completeTasks: {
    fn: "task-operations",
    as: "service",
    schema: CompleteTasksData,
    valid: (t) =>
      fc.record({ worker_id: fc.constant(t.worker), tasks: fc.constant([{ task_id: t.taskId }]) }),
    invalid: {
      worker_id: badWorker,
      tasks: fc.oneof(
        wrongType("array"),
        fc.constant([]),
        badTaskId.map((task_id) => [{ task_id }]),
        badJson.map((result) => [{ task_id: 1, result }]),
        fc.constant([{ task_id: 7 }, { task_id: 7 }]),
        fc.constant(Array.from({ length: 1001 }, (_, i) => ({ task_id: i + 1 }))),
      ),
    },
    required: ["worker_id", "tasks"],
  },
  failTask: {
    fn: "task-operations",
    as: "service",
    schema: FailTaskData,
    valid: (t) =>
      fc.record({
        worker_id: fc.constant(t.worker),
        task_id: fc.constant(t.taskId),
        error: fc.constant({ code: "TIMEOUT", message: "m" }),
      }),
    invalid: {
      worker_id: badWorker,
      task_id: badTaskId,
      error: fc.oneof(
        wrongType("object"),
        badCode.map((code) => ({ code, message: "m" })),
        fc.constantFrom(
          { code: "TIMEOUT" },
          { code: "TIMEOUT", message: "x".repeat(4097) },
          { code: "TIMEOUT", message: "m", stack: "\u0000" },
          { code: "TIMEOUT", message: "m", retry: true },
        ),
      ),
    },
    required: ["worker_id", "task_id", "error"],
    absent: () =>
      fc.record({
        worker_id: phase,
        task_id: fc.integer({ min: 2_000_000_000, max: 2 ** 40 }),
        error: fc.constant({ code: "TIMEOUT", message: "m" }),
      }),
    absentAnswer: { status: 404, code: "TASK_NOT_FOUND" },
  },
};

/** One field made hostile, an unknown key added, a required field removed, or data not an object. */
function hostileBodies(spec: ActionSpec, t: Target) {
  const fields = Object.keys(spec.invalid);
  const oneField = fc.constantFrom(...fields).chain((field) =>
    spec.invalid[field].map((value) => ({ why: `${field} = ${short(value)}`, field, value }))
  );
  return fc.tuple(spec.valid(t), fc.nat({ max: 99 }), oneField, unknownKey, hostileString).map(
    ([base, roll, bad, key, junk]): { why: string; data: unknown; field?: string } => {
      if (roll < 70) {
        return { why: bad.why, field: bad.field, data: { ...base, [bad.field]: bad.value } };
      }
      if (roll < 85) {
        const k = Object.hasOwn(spec.invalid, key) ? `${key}_` : key;
        return { why: `unknown key ${JSON.stringify(k)}`, data: withKey(base, k, junk) };
      }
      if (roll < 93 && spec.required.length) {
        const field = spec.required[roll % spec.required.length];
        const { [field]: _gone, ...rest } = base;
        return { why: `${field} missing`, field, data: rest };
      }
      const notObject = [[base], JSON.stringify(base), 42, null, true][roll % 5];
      return { why: `data = ${short(notObject)}`, data: notObject };
    },
  );
}

function short(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 60)}…(${text.length})` : text;
}

let target: Target | undefined;
let tokens: { user: string; service: string } | undefined;

/** A job of the fuzzing user with a task held by the fuzzing worker: hostile bodies name them. */
async function setUp(): Promise<{ target: Target; tokens: { user: string; service: string } }> {
  if (target && tokens) return { target, tokens };
  const user = await asUser();
  const service = await asService();
  const job = await user.call<{ id: string }>(
    "createJob",
    jobData({ tasks: [{ payload: 1 }, { payload: 2 }], max_parallel_tasks: 2 }),
  );
  assert.equal(job.status, 201);
  const claimed = await service.task<{ tasks: { task_id: number }[] }>("claimTasks", {
    worker_id: "fuzz-worker",
    limit: 1,
    job_id: job.data.id,
    lease_ms: 3_600_000,
  });
  target = {
    jobId: job.data.id,
    taskId: claimed.data.tasks[0].task_id,
    worker: "fuzz-worker",
    owner: user.userId!,
  };
  tokens = { user: await userToken(user.userId!), service: await serviceToken() };
  return { target, tokens };
}

for (const [action, spec] of Object.entries(ACTIONS)) {
  test(`fuzz ${action}: a hostile field, unknown key, missing field or non-object data is 400 VALIDATION_ERROR and writes nothing`, async () => {
    const { target, tokens } = await setUp();
    const bearer = spec.as === "user" ? tokens.user : tokens.service;
    const before = await fingerprint();
    await fc.assert(
      fc.asyncProperty(hostileBodies(spec, target), async ({ why, data, field }) => {
        const a = await post(spec.fn, JSON.stringify({ action, data }), bearer);
        const context = `${action} with ${why}`;
        assertErrorShape(a, context);
        if (nesting({ action, data }) > MAX_BODY_DEPTH) {
          assert.equal(a.status, 413, `${context}: ${a.status} ${JSON.stringify(a.body)}`);
          assert.equal(a.body.error!.code, "PAYLOAD_TOO_LARGE", context);
          return;
        }
        // the service listing by user_id is allowed; a user naming user_id is 403 before validation
        assert.equal(a.status, 400, `${context}: ${a.status} ${JSON.stringify(a.body)}`);
        assert.equal(a.body.error!.code, "VALIDATION_ERROR", context);
        if (field) {
          const paths = (a.body.error!.details as { path: string }[]).map((d) => d.path);
          assert.ok(
            paths.some((p) => p === "data" || p.startsWith(`data.${field}`)),
            `${context}: details name ${paths.join(", ")}`,
          );
        }
      }),
      { numRuns: RUNS },
    );
    assert.equal(await fingerprint(), before, "nothing written");
  });

  test(`fuzz ${action}: random data is a documented answer, never a 5xx, and writes nothing unless valid`, async () => {
    const { tokens } = await setUp();
    const bearer = spec.as === "user" ? tokens.user : tokens.service;
    const before = await fingerprint();
    let valid = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.anything({ maxDepth: 3 }), fc.jsonValue({ maxDepth: 3 }), fc.object()),
        async (data) => {
          const wire = JSON.stringify({ action, data });
          const sent = JSON.parse(wire).data;
          // a valid body would act (create, claim, run maintenance): leave those out
          if (sent !== undefined && spec.schema.safeParse(sent).success) {
            valid++;
            return;
          }
          const a = await post(spec.fn, wire, bearer);
          assertErrorShape(a, `${action} with ${short(sent)}`);
          assert.ok(
            documentedAnswer(action, a.status, a.body.error?.code, true),
            `${action}: ${a.status} ${a.body.error?.code}`,
          );
          assert.equal(a.status, 400, `${action} with ${short(sent)}: ${JSON.stringify(a.body)}`);
        },
      ),
      { numRuns: RUNS },
    );
    assert.ok(valid < RUNS, "the generator made invalid bodies");
    assert.equal(await fingerprint(), before, "nothing written");
  });

  if (spec.absent) {
    test(`fuzz ${action}: a valid body naming nothing that exists is ${spec.absentAnswer!.status} ${spec.absentAnswer!.code} and writes nothing`, async () => {
      const { tokens } = await setUp();
      const bearer = spec.as === "user" ? tokens.user : tokens.service;
      const before = await fingerprint();
      await fc.assert(
        fc.asyncProperty(spec.absent!(target!), async (data) => {
          const a = await post(spec.fn, JSON.stringify({ action, data }), bearer);
          assertErrorShape(a, `${action} ${short(data)}`);
          assert.equal(a.status, spec.absentAnswer!.status, JSON.stringify(a.body));
          assert.equal(a.body.error!.code, spec.absentAnswer!.code);
        }),
        { numRuns: Math.max(5, Math.round(RUNS / 3)) },
      );
      assert.equal(await fingerprint(), before, "nothing written");
    });
  }
}

test("fuzz: random bytes, random JSON and unknown actions at the top level are 400, never a 5xx", async () => {
  const { tokens } = await setUp();
  const before = await fingerprint();
  const fns = fc.constantFrom<Fn>("job-operations", "task-operations");
  await fc.assert(
    fc.asyncProperty(
      fns,
      fc.oneof(
        fc.string({ unit: "binary", maxLength: 200 }),
        fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
        fc.tuple(hostileString, fc.jsonValue({ maxDepth: 2 })).map(([action, data]) =>
          JSON.stringify({ action, data })
        ),
        fc.tuple(fc.constantFrom("createJob", "claimTasks"), unknownKey).map(([action, key]) =>
          JSON.stringify(withKey({ action, data: {} }, key === "data" ? "datа" : key, 1))
        ),
      ),
      async (fn, body) => {
        const a = await post(fn, body, tokens.service);
        assertErrorShape(a, `${fn} ${short(body)}`);
        assert.equal(a.status, 400, `${fn} ${short(body)}: ${JSON.stringify(a.body)}`);
        assert.ok(
          ["INVALID_JSON", "UNKNOWN_ACTION", "VALIDATION_ERROR"].includes(a.body.error!.code),
          a.body.error!.code,
        );
      },
    ),
    { numRuns: RUNS * 2 },
  );
  assert.equal(await fingerprint(), before, "nothing written");
});

test("fuzz: oversized and deeply nested bodies are 413 or 400 and write nothing", async () => {
  const { tokens, target } = await setUp();
  const before = await fingerprint();
  const big = (action: string, bytes: number, data: Record<string, unknown>) => {
    const pad = "x".repeat(bytes);
    return JSON.stringify({ action, data: { ...data, metadata: { pad } } });
  };
  // over 8 MiB: refused before parsing
  const huge = await post(
    "job-operations",
    big("createJob", 8 * 1024 * 1024 + 10, jobData({ user_id: target.owner })),
    tokens.service,
  );
  assertErrorShape(huge, "8 MiB createJob");
  assert.equal(huge.status, 413);
  assert.equal(huge.body.error!.code, "PAYLOAD_TOO_LARGE");
  // over 1 MiB for an action other than createJob and addTasks
  for (
    const [fn, action] of [["job-operations", "getJob"], ["task-operations", "claimTasks"]] as const
  ) {
    const a = await post(
      fn,
      big(action, 1024 * 1024 + 10, { job_id: target.jobId }),
      tokens.service,
    );
    assertErrorShape(a, `1 MiB ${action}`);
    assert.equal(a.status, 413, action);
  }
  // deeply nested JSON: the validator refuses what the guard lets through (metadata nested 65
  // levels: 68 in the body), the guard refuses anything deeper before it is parsed
  for (const depth of [64, 65, 66, 100, 10_000, 200_000]) {
    const nested =
      `{"action":"createJob","data":{"product_id":"p","sending_group_id":"g","user_id":"${target.owner}","metadata":{"x":${
        "[".repeat(depth)
      }${"]".repeat(depth)}}}}`;
    const a = await post("job-operations", nested, tokens.service);
    assertErrorShape(a, `depth ${depth}`);
    const [status, code] = depth <= 65 ? [400, "VALIDATION_ERROR"] : [413, "PAYLOAD_TOO_LARGE"];
    assert.equal(a.status, status, `depth ${depth}: ${JSON.stringify(a.body)}`);
    assert.equal(a.body.error!.code, code);
  }
  // a huge array of tasks for the actions that take arrays
  const many = await post(
    "task-operations",
    JSON.stringify({
      action: "heartbeat",
      data: {
        worker_id: "w",
        tasks: Array.from({ length: 100_000 }, (_, i) => ({ task_id: i + 1 })),
      },
    }),
    tokens.service,
  );
  assertErrorShape(many, "100 000 heartbeats");
  assert.ok([400, 413].includes(many.status), String(many.status));
  assert.equal(await fingerprint(), before, "nothing written");
});
