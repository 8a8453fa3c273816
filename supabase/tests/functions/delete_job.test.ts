// deleteJob: immediate deletion with counts, safe stop of running jobs (deleted when the last task
// stops: report, failure or lease expiry), forced deletion, no orphan rows in any table, the audit
// snapshot, idempotent answers, and races with real concurrent workers.
import assert from "node:assert/strict";
import { asService, asUser, type Caller, test, testDb } from "../helpers/service.ts";
import {
  claim,
  createJob,
  isolateClaims,
  rowsMentioningJob,
  runMaintenance,
  sleep,
  tasks,
  update,
} from "../helpers/jobs.ts";
import { type Run, runWorker } from "../helpers/workers.ts";
import type { BatchJob } from "../../functions/_shared/job_schemas.ts";

/** Every table of the service holds nothing of the job but its audit trail and notifications. */
async function assertGone(jobId: string): Promise<void> {
  const counts = await rowsMentioningJob(jobId);
  const left = Object.entries(counts).filter(([table, n]) =>
    n > 0 && table !== "job_service.audit_log" && table !== "job_service.notifications"
  );
  assert.deepEqual(left, [], `rows left: ${JSON.stringify(counts)}`);
  assert.ok(counts["job_service.audit_log"] >= 2, "the audit trail survives");
}

async function deletionSnapshot(jobId: string): Promise<BatchJob> {
  const rows =
    await testDb()`select before from audit_log where job_id = ${jobId} and action = 'job.deleted'`;
  assert.equal(rows.length, 1, "one audit row for the deletion");
  return rows[0].before as BatchJob;
}

async function del(caller: Caller, jobId: string, force?: boolean) {
  return await caller.call<Record<string, unknown>>("deleteJob", {
    job_id: jobId,
    ...(force === undefined ? {} : { force }),
  });
}

test("a job with nothing running is deleted at once, with counts; a second delete is 404", async () => {
  const user = await asUser();
  const service = await asService();
  const job = await createJob(user, { tasks: tasks(5) });
  const [t] = await claim("w-del", 1, { job_id: job.id });
  await service.task("failTask", {
    worker_id: "w-del",
    task_id: t.task_id,
    error: { code: "INTERNAL", message: "x" },
  });
  const res = await del(user, job.id);
  assert.equal(res.status, 200, JSON.stringify(res.error));
  assert.deepEqual(res.data, {
    job_id: job.id,
    deleted: true,
    tasks_deleted: 5,
    errors_deleted: 1,
    events_deleted: 2,
  });
  await assertGone(job.id);
  const snapshot = await deletionSnapshot(job.id);
  assert.equal(snapshot.id, job.id);
  assert.equal(snapshot.tasks.total, 5);
  assert.equal(snapshot.detailed_status.error_count, 1);
  const [audit] =
    await testDb()`select actor_role, actor_id from audit_log where job_id = ${job.id} and action = 'job.deleted'`;
  assert.deepEqual({ ...audit }, { actor_role: "authenticated", actor_id: user.userId });

  const again = await del(user, job.id);
  assert.equal(again.status, 404);
  assert.equal(again.error?.code, "JOB_NOT_FOUND");
});

test("every status without running tasks deletes at once", async () => {
  const user = await asUser();
  for (const setup of ["pending", "queued", "paused", "completed", "cancelled", "failed"]) {
    const job = await createJob(user, { start: setup !== "pending" });
    if (setup === "paused") await update(user, { job_id: job.id, status: "paused" });
    if (["completed", "failed"].includes(setup)) {
      await update(user, { job_id: job.id, status: "running" });
      await update(user, { job_id: job.id, status: setup });
    }
    if (setup === "cancelled") await update(user, { job_id: job.id, status: "cancelled" });
    const res = await del(user, job.id);
    assert.equal(res.status, 200, setup);
    await assertGone(job.id);
  }
});

test("another user's job is 404; the service may delete any job", async () => {
  const alice = await asUser();
  const job = await createJob(alice);
  const bob = await asUser();
  assert.equal((await del(bob, job.id)).status, 404);
  assert.equal((await del(await asService(), job.id)).status, 200);
  assert.equal((await bob.call("deleteJob", { job_id: "nope" })).status, 400);
  assert.equal((await bob.call("deleteJob", { job_id: job.id, force: "yes" })).status, 400);
});

test("safe stop: 202, no claims, workers told to stop, deleted when the last running task completes", async () => {
  const user = await asUser();
  const service = await asService();
  const job = await createJob(user, { tasks: tasks(6), max_parallel_tasks: 2 });
  const held = await claim("w-safe", 2, { job_id: job.id });
  const res = await del(user, job.id);
  assert.equal(res.status, 202);
  assert.deepEqual(res.data, {
    job_id: job.id,
    deleted: false,
    status: "cancelling",
    deletion: "pending",
  });
  const again = await del(user, job.id);
  assert.equal(again.status, 202, "a retried delete while pending answers 202 again");
  assert.deepEqual(await claim("w-late", 5, { job_id: job.id }), []);
  const beat = await service.task<{ tasks: { action: string }[] }>("heartbeat", {
    worker_id: "w-safe",
    tasks: held.map((t) => ({ task_id: t.task_id })),
  });
  assert.deepEqual(beat.data.tasks.map((t) => t.action), ["stop", "stop"]);

  assert.equal(
    (await service.task("completeTask", { worker_id: "w-safe", task_id: held[0].task_id })).status,
    200,
  );
  assert.equal(
    (await testDb()`select 1 from jobs where id = ${job.id}`).length,
    1,
    "one task still runs",
  );
  const last = await service.task("completeTask", {
    worker_id: "w-safe",
    task_id: held[1].task_id,
  });
  assert.equal(last.status, 200);
  await assertGone(job.id);
  const snapshot = await deletionSnapshot(job.id);
  assert.deepEqual(snapshot.tasks, {
    total: 6,
    pending: 0,
    running: 0,
    succeeded: 2,
    failed: 0,
    cancelled: 4,
  });
  assert.equal((await del(user, job.id)).status, 404, "deleted for good: 404");
  const replay = await service.task("completeTask", {
    worker_id: "w-safe",
    task_id: held[1].task_id,
  });
  assert.equal(replay.status, 404, "a report on a removed task is TASK_NOT_FOUND");
});

test("safe stop ends by a failure report, or by lease expiry in maintenance", async () => {
  const user = await asUser();
  const service = await asService();
  const a = await createJob(user, { tasks: tasks(2) });
  const [ta] = await claim("w-fail", 1, { job_id: a.id });
  assert.equal((await del(user, a.id)).status, 202);
  const failed = await service.task<{ status: string }>("failTask", {
    worker_id: "w-fail",
    task_id: ta.task_id,
    error: { code: "INTERNAL", message: "stopped" },
  });
  assert.equal(failed.status, 200);
  assert.equal(failed.data.status, "cancelled");
  await assertGone(a.id);

  const b = await createJob(user, { tasks: tasks(2) });
  await claim("w-gone", 1, { job_id: b.id, lease_ms: 1000 });
  assert.equal((await del(user, b.id)).status, 202);
  await sleep(1100);
  await runMaintenance();
  await assertGone(b.id);
});

test("force: running tasks are dropped at once; late reports are 404 and write nothing", async () => {
  const user = await asUser();
  const service = await asService();
  const job = await createJob(user, { tasks: tasks(4) });
  const held = await claim("w-force", 3, { job_id: job.id });
  const res = await del(user, job.id, true);
  assert.equal(res.status, 200);
  assert.equal(res.data.tasks_deleted, 4);
  await assertGone(job.id);
  const complete = await service.task("completeTask", {
    worker_id: "w-force",
    task_id: held[0].task_id,
  });
  assert.equal(complete.status, 404);
  assert.equal(complete.error?.code, "TASK_NOT_FOUND");
  const fail = await service.task("failTask", {
    worker_id: "w-force",
    task_id: held[1].task_id,
    error: { code: "INTERNAL", message: "late" },
  });
  assert.equal(fail.status, 404);
  const beat = await service.task<{ tasks: { action: string }[] }>("heartbeat", {
    worker_id: "w-force",
    tasks: [{ task_id: held[2].task_id }],
  });
  assert.equal(beat.data.tasks[0].action, "lost");
  await assertGone(job.id);
});

async function raceOnce(mode: "safe" | "force", delayMs: number) {
  const user = await asUser();
  const job = await createJob(user, { tasks: tasks(150), max_parallel_tasks: 12 });
  await isolateClaims([job.id]);
  const history: Run[] = [];
  const statuses: number[] = [];
  const workers = Array.from({ length: 8 }, (_, i) =>
    runWorker({
      id: `race-${mode}-${i}`,
      limit: 3,
      jobId: job.id,
      workMs: 4,
      done: async () => (await testDb()`select 1 from jobs where id = ${job.id}`).length === 0,
      history,
      statuses,
    }));
  await sleep(delayMs);
  const deleteStatuses: number[] = [];
  for (;;) {
    const res = await del(user, job.id, mode === "force" ? true : undefined);
    deleteStatuses.push(res.status);
    if (res.status !== 202) break;
    await sleep(5);
  }
  await Promise.all(workers);
  return { job, history, statuses, deleteStatuses };
}

for (const mode of ["safe", "force"] as const) {
  test(`${mode} delete while 8 workers claim and report: job gone, nothing orphaned, nothing completed after`, async () => {
    for (const delayMs of [0, 40, 120]) {
      const { job, history, statuses, deleteStatuses } = await raceOnce(mode, delayMs);
      assert.ok(
        statuses.every((s) => [200, 404, 409].includes(s)),
        `worker statuses ${[...new Set(statuses)]}`,
      );
      assert.ok(
        deleteStatuses.every((s) => [200, 202, 404].includes(s)),
        `delete statuses ${deleteStatuses}`,
      );
      await assertGone(job.id);
      // every completion the service accepted happened before the deletion: the deletion's
      // snapshot counts exactly those
      const accepted = new Set(
        history.filter((r) => r.outcome === "succeeded").map((r) => r.task_id),
      );
      const snapshot = await deletionSnapshot(job.id);
      assert.equal(snapshot.tasks.succeeded, accepted.size, `delay ${delayMs}`);
    }
  });
}

test("no deadlock: the deletion races left pg_stat_database.deadlocks unchanged", async () => {
  const [{ before }] =
    await testDb()`select deadlocks::int as before from pg_stat_database where datname = current_database()`;
  await raceOnce("safe", 20);
  await raceOnce("force", 20);
  const [{ after }] =
    await testDb()`select deadlocks::int as after from pg_stat_database where datname = current_database()`;
  assert.equal(after - before, 0);
});

test("retention: maintenance purges finished jobs older than the period, in batches; others stay", async () => {
  const owner = crypto.randomUUID();
  const db = testDb();
  // 620 finished jobs (more than one purge batch), made directly in SQL for speed
  await db`
    select job_service_api.create_job(
      jsonb_build_object('role', 'service_role', 'request_id', 'retention-test'),
      jsonb_build_object('user_id', ${owner}::uuid, 'product_id', 'old', 'sending_group_id', 'g',
        'priority', 50, 'max_parallel_tasks', 1, 'start', true, 'metadata', '{}'::jsonb,
        'retry_config', jsonb_build_object('max_attempts', 1, 'retry_interval', 0, 'backoff', 'fixed',
                                           'max_retry_interval', 3600000)),
      '[{"payload": 1}]'::jsonb, null, null)
    from generate_series(1, 620)`;
  await db`update jobs set status = 'cancelled' where user_id = ${owner}`;
  await db`update jobs set finished_at = now() - interval '40 days' where user_id = ${owner}`;
  const user = await asUser();
  const recent = await createJob(user);
  await update(user, { job_id: recent.id, status: "cancelled" });
  const running = await createJob(user, { tasks: tasks(1) });
  await db`update jobs set created_at = now() - interval '90 days' where id = ${running.id}`;

  const result = await runMaintenance({ retention_days: 30 });
  assert.ok((result.jobs_purged as number) >= 620, JSON.stringify(result));
  const [{ left }] = await db`select count(*)::int as left from jobs where user_id = ${owner}`;
  assert.equal(left, 0);
  const [{ tasksLeft }] = await db`select count(*)::int as "tasksLeft" from tasks t
                                    where not exists (select 1 from jobs j where j.id = t.job_id)`;
  assert.equal(tasksLeft, 0, "no orphan tasks");
  const [{ audits }] = await db`select count(*)::int as audits from audit_log
                                 where owner_id = ${owner} and action = 'job.deleted'`;
  assert.equal(audits, 620, "every purge is audited");
  const kept = await db`select id from jobs where id in (${recent.id}, ${running.id})`;
  assert.equal(kept.length, 2, "recent finished jobs and unfinished jobs stay");
});

test("deleting a retrying job whose stopped tasks still run is a safe stop (202), then gone", async () => {
  const user = await asUser();
  const service = await asService();
  const job = await createJob(user, {
    tasks: tasks(2),
    retry_config: { max_attempts: 3, retry_interval: 60_000, retry_on_errors: ["TIMEOUT"] },
  });
  const [t] = await claim("w-retrying", 1, { job_id: job.id });
  const failed = await update(user, {
    job_id: job.id,
    status: "failed",
    error_details: { code: "TIMEOUT", message: "slow" },
  });
  assert.equal(failed.data.status, "retrying");
  const res = await del(user, job.id);
  assert.equal(res.status, 202, JSON.stringify(res.error));
  assert.equal(
    (await service.task("completeTask", { worker_id: "w-retrying", task_id: t.task_id })).status,
    200,
  );
  await assertGone(job.id);
});
