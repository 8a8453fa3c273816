// User quotas (api.md, "Quotas"): setUserLimits (service only, audited) and QUOTA_EXCEEDED on a
// user's createJob and recovery, exact under concurrency, checked against a model by fast-check.
import assert from "node:assert/strict";
import fc from "fast-check";
import { asService, asUser, type Caller, jobData, test, testDb } from "../helpers/service.ts";
import { assertInvariants, createJob, tasks, update } from "../helpers/jobs.ts";
import type { UserLimits } from "../../functions/_shared/types.ts";

async function setLimits(data: Record<string, unknown>) {
  return await (await asService()).call<UserLimits>("setUserLimits", data);
}

async function limitsOf(user: Caller, limits: Record<string, unknown>): Promise<UserLimits> {
  const res = await setLimits({ user_id: user.userId, ...limits });
  assert.equal(res.status, 200, JSON.stringify(res.error));
  return res.data;
}

async function jobsOf(userId: string): Promise<number> {
  const [{ n }] = await testDb()`select count(*)::int as n from jobs where user_id = ${userId}`;
  return n;
}

test("setUserLimits: stores, omitted fields keep their value, null is no limit, none is a look-up; service only; audited", async () => {
  const user = await asUser();
  const none = { max_priority: null, max_active_jobs: null, max_pending_tasks: null };
  assert.deepEqual(await limitsOf(user, {}), { user_id: user.userId, ...none });
  assert.deepEqual(await limitsOf(user, { max_priority: 40, max_active_jobs: 3 }), {
    user_id: user.userId,
    max_priority: 40,
    max_active_jobs: 3,
    max_pending_tasks: null,
  });
  assert.deepEqual(await limitsOf(user, { max_pending_tasks: 0 }), {
    user_id: user.userId,
    max_priority: 40,
    max_active_jobs: 3,
    max_pending_tasks: 0,
  });
  assert.deepEqual(await limitsOf(user, { max_priority: null, max_pending_tasks: null }), {
    user_id: user.userId,
    ...none,
    max_active_jobs: 3,
  });

  for (
    const bad of [
      { max_priority: 101 },
      { max_priority: -1 },
      { max_active_jobs: 1.5 },
      { max_pending_tasks: "10" },
      { max_active_jobs: 1_000_001 },
      { extra: 1 },
    ]
  ) {
    const res = await setLimits({ user_id: user.userId, ...bad });
    assert.equal(res.status, 400, JSON.stringify(bad));
    assert.equal(res.error!.code, "VALIDATION_ERROR");
  }
  assert.equal((await setLimits({ max_priority: 1 })).status, 400, "user_id is required");
  assert.equal((await setLimits({ user_id: "nope" })).status, 400);

  const forbidden = await user.call("setUserLimits", { user_id: user.userId, max_priority: 100 });
  assert.equal(forbidden.status, 403);
  assert.equal(forbidden.error!.code, "FORBIDDEN");

  const audit = await testDb()`
    select action, actor_role, job_id, request_id, before, after from audit_log
    where owner_id = ${user.userId} and action = 'user_limits.set' order by id`;
  assert.equal(audit.length, 3, "one audit row per change; none for a look-up or a refused call");
  assert.equal(audit[0].actor_role, "service_role");
  assert.equal(audit[0].job_id, null);
  assert.ok(audit[0].request_id);
  assert.equal(audit[0].after.max_active_jobs, 3);
  assert.equal(audit[2].before.max_pending_tasks, 0);
  assert.equal(audit[2].after.max_pending_tasks, null);
  const [{ rows }] = await testDb()`
    select count(*)::int as rows from user_limits where user_id = ${user.userId}`;
  assert.equal(rows, 1);
});

test("QUOTA_EXCEEDED: max_priority, max_active_jobs, max_pending_tasks; 409 with details, nothing written", async () => {
  const user = await asUser();
  await limitsOf(user, { max_priority: 60, max_active_jobs: 2, max_pending_tasks: 5 });

  let res = await user.call("createJob", jobData({ priority: 61 }));
  assert.equal(res.status, 409);
  assert.equal(res.error!.code, "QUOTA_EXCEEDED");
  assert.deepEqual(res.error!.details, { limit: "max_priority", value: 60, requested: 61 });
  assert.ok(res.error!.request_id);
  await createJob(user, { priority: 60, tasks: tasks(3) });

  res = await user.call(
    "createJob",
    jobData({ tasks: tasks(3) }),
    { "Idempotency-Key": "quota-key" },
  );
  assert.equal(res.status, 409);
  assert.deepEqual(res.error!.details, {
    limit: "max_pending_tasks",
    value: 5,
    current: 3,
    requested: 3,
  });
  const b = await createJob(user, { tasks: tasks(2), start: true });

  res = await user.call("createJob", jobData());
  assert.equal(res.status, 409);
  assert.deepEqual(res.error!.details, {
    limit: "max_active_jobs",
    value: 2,
    current: 2,
    requested: 1,
  });
  assert.equal(await jobsOf(user.userId!), 2, "refused creates wrote no job");
  const [{ keys }] = await testDb()`
    select count(*)::int as keys from idempotency_keys where user_id = ${user.userId}`;
  assert.equal(keys, 0, "nor kept their idempotency key");

  // the service is never bound, not even when it creates the user's job
  const service = await asService();
  const byService = await service.call(
    "createJob",
    jobData({ user_id: user.userId, priority: 100, tasks: tasks(10) }),
  );
  assert.equal(byService.status, 201, JSON.stringify(byService.error));

  // a cancelled job is no longer active and its tasks are finished
  assert.equal((await update(user, { job_id: b.id, status: "cancelled" })).status, 200);
  assert.equal(
    (await service.call("deleteJob", { job_id: (byService.data as { id: string }).id })).status,
    200,
  );
  const c = await createJob(user, { tasks: tasks(2) });
  await assertInvariants([b.id, c.id]);
});

test("QUOTA_EXCEEDED: recovering a failed job beyond max_active_jobs is refused", async () => {
  const user = await asUser();
  const a = await createJob(user, {
    retry_config: { max_attempts: 1, retry_interval: 10, retry_on_errors: [] },
  });
  await update(user, { job_id: a.id, status: "running" });
  assert.equal((await update(user, { job_id: a.id, status: "failed" })).data.status, "failed");
  await limitsOf(user, { max_active_jobs: 1 });
  const b = await createJob(user);
  const refused = await update(user, { job_id: a.id, status: "queued" });
  assert.equal(refused.status, 409, JSON.stringify(refused.error));
  assert.equal(refused.error!.code, "QUOTA_EXCEEDED");
  assert.equal((refused.error!.details as { limit: string }).limit, "max_active_jobs");
  assert.equal((await update(user, { job_id: b.id, status: "cancelled" })).status, 200);
  const recovered = await update(user, { job_id: a.id, status: "queued" });
  assert.equal(recovered.status, 200, JSON.stringify(recovered.error));
  assert.equal(recovered.data.status, "queued");
});

test("QUOTA_EXCEEDED under concurrency: of two creates racing for the last place, exactly one passes", async () => {
  const deadlocks = async () =>
    (await testDb()`select deadlocks::int as n from pg_stat_database where datname = current_database()`)[
      0
    ].n;
  const deadlocksBefore = await deadlocks();
  for (let round = 0; round < 6; round++) {
    const user = await asUser();
    const byJobs = round % 2 === 0;
    await limitsOf(user, byJobs ? { max_active_jobs: 1 } : { max_pending_tasks: 4 });
    const answers = await Promise.all(
      [0, 1].map(() => user.call("createJob", jobData({ tasks: tasks(byJobs ? 1 : 3) }))),
    );
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(
      statuses,
      [201, 409],
      `round ${round}: ${JSON.stringify(answers.map((a) => a.error))}`,
    );
    assert.equal(answers.find((a) => a.status === 409)!.error!.code, "QUOTA_EXCEEDED");
    assert.equal(await jobsOf(user.userId!), 1);
  }
  // eight racing creates for three places: exactly three pass, whatever order they commit in
  const user = await asUser();
  await limitsOf(user, { max_active_jobs: 3, max_pending_tasks: 100 });
  const many = await Promise.all(
    Array.from({ length: 8 }, () => user.call("createJob", jobData({ tasks: tasks(2) }))),
  );
  assert.equal(many.filter((a) => a.status === 201).length, 3);
  assert.ok(many.every((a) => a.status === 201 || a.error?.code === "QUOTA_EXCEEDED"));
  assert.equal(await jobsOf(user.userId!), 3);
  assert.equal(await deadlocks(), deadlocksBefore, "no deadlock");
});

// ----- the model: the quotas against a sequence of limit changes, creates and cancels -----

type Op =
  | { kind: "limits"; limits: Record<string, number | null> }
  | { kind: "create"; tasks: number; priority: number; start: boolean }
  | { kind: "cancel"; pick: number };

const limitValue = (max: number) => fc.option(fc.integer({ min: 0, max }), { nil: null });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant("limits" as const),
      limits: fc.record({
        max_priority: limitValue(100),
        max_active_jobs: limitValue(4),
        max_pending_tasks: limitValue(12),
      }, { requiredKeys: [] }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("create" as const),
      tasks: fc.integer({ min: 0, max: 5 }),
      priority: fc.integer({ min: 0, max: 100 }),
      start: fc.boolean(),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ kind: fc.constant("cancel" as const), pick: fc.nat() }), weight: 1 },
);

test("property: a user's creates pass exactly when the model of active jobs and unfinished tasks says they fit", async () => {
  const seen = { passed: 0, refused: 0 };
  const created: string[] = [];
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 10 }), async (ops) => {
      const user = await asUser();
      const limits: Record<string, number | null> = {
        max_priority: null,
        max_active_jobs: null,
        max_pending_tasks: null,
      };
      const active: { id: string; tasks: number }[] = [];
      for (const op of ops) {
        if (op.kind === "limits") {
          Object.assign(limits, op.limits);
          assert.deepEqual(await limitsOf(user, op.limits), { user_id: user.userId, ...limits });
        } else if (op.kind === "create") {
          const unfinished = active.reduce((sum, j) => sum + j.tasks, 0);
          const expected = limits.max_priority !== null && op.priority > limits.max_priority
            ? "max_priority"
            : limits.max_active_jobs !== null && active.length + 1 > limits.max_active_jobs
            ? "max_active_jobs"
            : limits.max_pending_tasks !== null && op.tasks > 0 &&
                unfinished + op.tasks > limits.max_pending_tasks
            ? "max_pending_tasks"
            : null;
          const res = await user.call<{ id: string }>(
            "createJob",
            jobData({ priority: op.priority, start: op.start, tasks: tasks(op.tasks) }),
          );
          if (expected === null) {
            assert.equal(res.status, 201, JSON.stringify(res.error));
            active.push({ id: res.data.id, tasks: op.tasks });
            seen.passed++;
            created.push(res.data.id);
          } else {
            assert.equal(res.status, 409, `expected ${expected}, got ${res.status}`);
            assert.equal(res.error!.code, "QUOTA_EXCEEDED");
            assert.equal((res.error!.details as { limit: string }).limit, expected);
            seen.refused++;
          }
        } else if (active.length > 0) {
          const [job] = active.splice(op.pick % active.length, 1);
          const res = await update(user, { job_id: job.id, status: "cancelled" });
          assert.equal(res.status, 200, JSON.stringify(res.error));
        }
      }
      assert.equal(await activeOf(user.userId!), active.length);
    }),
    { numRuns: Number(Deno.env.get("QUOTA_RUNS") ?? 20) },
  );
  assert.ok(
    seen.passed > 0 && seen.refused > 0,
    `both outcomes were tried: ${JSON.stringify(seen)}`,
  );
  await assertInvariants(created);
});

async function activeOf(userId: string): Promise<number> {
  const [{ n }] = await testDb()`
    select count(*)::int as n from jobs where user_id = ${userId}
      and status in ('pending', 'queued', 'running', 'paused', 'retrying', 'cancelling')`;
  return n;
}
