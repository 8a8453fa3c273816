// The task engine over HTTP with many concurrent workers: no task runs twice, parallelism and
// resource budgets hold, priority order holds, retries follow the policy, leases expire into
// retries, counters equal the rows — judged from the responses and from the database.
import assert from "node:assert/strict";
import { asService, asUser, test, testDb } from "../helpers/service.ts";
import {
  assertInvariants,
  claim,
  createJob,
  getJob,
  isolateClaims,
  runMaintenance,
  sleep,
  tasks,
  update,
} from "../helpers/jobs.ts";
import { maxOverlap } from "../../../scripts/lib/intervals.ts";
import { type Run, runWorker } from "../helpers/workers.ts";

async function jobStatus(id: string): Promise<string> {
  const [row] = await testDb()`select status from jobs where id = ${id}`;
  return row.status;
}

const finished = (ids: string[]) => async () => {
  const rows = await testDb()`select status from jobs where id = any(${`{${
    ids.join(",")
  }}`}::uuid[])`;
  return rows.every((r) => ["completed", "failed", "cancelled"].includes(r.status));
};

test("claimTasks: leases, attempts, limit, order, job filter, 404 for an unknown job", async () => {
  const service = await asService();
  const job = await createJob(service, { tasks: tasks(5, (i) => ({ i })), max_parallel_tasks: 10 });
  const before = Date.now();
  const first = await claim("w-basic", 3, { job_id: job.id, lease_ms: 5_000 });
  assert.deepEqual(
    first.map((t) => (t.payload as { i: number }).i),
    [0, 1, 2],
    "older tasks first",
  );
  for (const t of first) {
    assert.equal(t.attempt, 1);
    assert.equal(t.job_id, job.id);
    const lease = Date.parse(t.lease_expires_at) - before;
    assert.ok(lease > 4_000 && lease < 7_000, `lease ${lease}`);
  }
  assert.equal(
    (await getJob(service, job.id)).status,
    "running",
    "the first claim started the job",
  );
  const rest = await claim("w-basic-2", 100, { job_id: job.id });
  assert.equal(rest.length, 2);
  assert.deepEqual(await claim("w-basic-3", 1, { job_id: job.id }), []);
  const missing = await service.task("claimTasks", {
    worker_id: "w",
    limit: 1,
    job_id: crypto.randomUUID(),
  });
  assert.equal(missing.status, 404);
  assert.equal(missing.error?.code, "JOB_NOT_FOUND");
  for (
    const bad of [{ worker_id: "", limit: 1 }, { worker_id: "w", limit: 0 }, {
      worker_id: "w",
      limit: 1001,
    }, {
      worker_id: "w",
      limit: 1,
      lease_ms: 999,
    }]
  ) {
    assert.equal((await service.task("claimTasks", bad)).status, 400, JSON.stringify(bad));
  }
});

test("paused, pending and finished jobs give no tasks; resuming gives them again", async () => {
  const user = await asUser();
  const job = await createJob(user, { tasks: tasks(2), start: false });
  assert.deepEqual(await claim("w-p", 5, { job_id: job.id }), []);
  await update(user, { job_id: job.id, status: "queued" });
  await update(user, { job_id: job.id, status: "paused" });
  assert.deepEqual(await claim("w-p", 5, { job_id: job.id }), []);
  await update(user, { job_id: job.id, status: "queued" });
  assert.equal((await claim("w-p", 5, { job_id: job.id })).length, 2);
});

test("16 workers on one job with max_parallel_tasks 5: never more than 5 at once, each task once", async () => {
  const service = await asService();
  const job = await createJob(service, { tasks: tasks(240), max_parallel_tasks: 5 });
  const history: Run[] = [];
  const statuses: number[] = [];
  let peak = 0;
  let monitoring = true;
  const monitor = (async () => {
    while (monitoring) {
      const [{ n }] =
        await testDb()`select count(*)::int as n from tasks where job_id = ${job.id} and status = 'running'`;
      peak = Math.max(peak, n);
      await sleep(2);
    }
  })();
  await Promise.all(Array.from({ length: 16 }, (_, i) =>
    runWorker({
      id: `par-${i}`,
      limit: 3,
      jobId: job.id,
      workMs: 3,
      done: finished([job.id]),
      history,
      statuses,
    })));
  monitoring = false;
  await monitor;

  assert.ok(statuses.every((s) => s === 200), `statuses ${[...new Set(statuses)]}`);
  assert.ok(peak <= 5, `database saw ${peak} running`);
  assert.ok(maxOverlap(history) <= 5, `workers held ${maxOverlap(history)} at once`);
  const succeeded = history.filter((r) => r.outcome === "succeeded").map((r) => r.task_id);
  assert.equal(succeeded.length, 240, "every task completed");
  assert.equal(new Set(succeeded).size, 240, "no task completed twice");
  assert.equal(await jobStatus(job.id), "completed");
  await assertInvariants([job.id]);
});

test("resource budgets: reservations never exceed the limits; tasks fit in order", async () => {
  const service = await asService();
  // fair share 100/10 = 10 MiB and 2/10 = 0.2 cpu; some tasks ask for more
  const list = Array.from(
    { length: 60 },
    (_, i) =>
      i % 3 === 0 ? { payload: { i }, resources: { memory: 35, cpu: 0.5 } } : { payload: { i } },
  );
  const job = await createJob(service, {
    tasks: list,
    max_parallel_tasks: 10,
    resource_limits: { max_memory: 100, max_cpu: 2 },
  });
  const history: Run[] = [];
  const statuses: number[] = [];
  let peak = { memory: 0, cpu: 0 };
  let monitoring = true;
  const monitor = (async () => {
    while (monitoring) {
      const [r] = await testDb()`
        select coalesce(sum(reserved_memory), 0)::float8 as memory, coalesce(sum(reserved_cpu), 0)::float8 as cpu
        from tasks where job_id = ${job.id} and status = 'running'`;
      peak = { memory: Math.max(peak.memory, r.memory), cpu: Math.max(peak.cpu, r.cpu) };
      await sleep(2);
    }
  })();
  await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      runWorker({
        id: `res-${i}`,
        limit: 4,
        jobId: job.id,
        workMs: 4,
        done: finished([job.id]),
        history,
        statuses,
      })),
  );
  monitoring = false;
  await monitor;
  assert.ok(statuses.every((s) => s === 200));
  assert.ok(peak.memory <= 100 + 1e-9 && peak.cpu <= 2 + 1e-9, JSON.stringify(peak));
  assert.ok(maxOverlap(history, (r) => r.reserved!.memory) <= 100 + 1e-9);
  assert.ok(maxOverlap(history, (r) => r.reserved!.cpu) <= 2 + 1e-9);
  assert.ok(history.every((r) => r.reserved !== null), "every claim reports its reservation");
  assert.equal(
    new Set(history.filter((r) => r.outcome === "succeeded").map((r) => r.task_id)).size,
    60,
  );
  assert.equal(await jobStatus(job.id), "completed");
  await assertInvariants([job.id]);
});

test("priority: workers take the higher-priority job's tasks first; equal priority → older job", async () => {
  const service = await asService();
  const owner = crypto.randomUUID();
  const low = await createJob(service, {
    user_id: owner,
    priority: 10,
    tasks: tasks(60),
    max_parallel_tasks: 1000,
  });
  const midOld = await createJob(service, {
    user_id: owner,
    priority: 50,
    tasks: tasks(60),
    max_parallel_tasks: 1000,
  });
  const midNew = await createJob(service, {
    user_id: owner,
    priority: 50,
    tasks: tasks(60),
    max_parallel_tasks: 1000,
  });
  const high = await createJob(service, {
    user_id: owner,
    priority: 90,
    tasks: tasks(60),
    max_parallel_tasks: 1000,
  });
  const ids = [low.id, midOld.id, midNew.id, high.id];
  await isolateClaims(ids);
  // one worker: the order is exact
  const order: string[] = [];
  for (;;) {
    const got = await claim("w-prio", 7);
    const mine = got.filter((t) => ids.includes(t.job_id));
    if (got.length === 0) break;
    order.push(...mine.map((t) => t.job_id));
    const service2 = await asService();
    await service2.task("completeTasks", {
      worker_id: "w-prio",
      tasks: got.map((t) => ({ task_id: t.task_id })),
    });
  }
  const expected = [
    ...Array(60).fill(high.id),
    ...Array(60).fill(midOld.id),
    ...Array(60).fill(midNew.id),
    ...Array(60).fill(low.id),
  ];
  assert.deepEqual(order, expected);
  await assertInvariants(ids);
});

test("priority under concurrency: a lower job gets tasks only while the higher one is at its limit", async () => {
  const service = await asService();
  const owner = crypto.randomUUID();
  const high = await createJob(service, {
    user_id: owner,
    priority: 95,
    tasks: tasks(120),
    max_parallel_tasks: 3,
  });
  const low = await createJob(service, {
    user_id: owner,
    priority: 5,
    tasks: tasks(120),
    max_parallel_tasks: 1000,
  });
  await isolateClaims([high.id, low.id]);
  const history: Run[] = [];
  const statuses: number[] = [];
  await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      runWorker({
        id: `pc-${i}`,
        limit: 2,
        workMs: 5,
        done: finished([high.id, low.id]),
        history,
        statuses,
      })),
  );
  assert.ok(statuses.every((s) => s === 200));
  // the high job ran at its limit the whole time it had tasks left
  const highRuns = history.filter((r) => r.job_id === high.id);
  assert.equal(new Set(highRuns.map((r) => r.task_id)).size, 120);
  assert.ok(maxOverlap(highRuns) <= 3);
  const [{ low_first, high_last }] = await testDb()`
    select (select min(started_at) from tasks where job_id = ${low.id}) as low_first,
           (select max(started_at) from tasks where job_id = ${high.id}) as high_last`;
  assert.ok(low_first < high_last, "the low job was served while the high one was at its limit");
  await assertInvariants([high.id, low.id]);
});

test("retries follow retry_config: retryable codes wait retry_interval, attempts are counted, then failed", async () => {
  const service = await asService();
  const job = await createJob(service, {
    tasks: tasks(4),
    retry_config: { max_attempts: 3, retry_interval: 150, retry_on_errors: ["TIMEOUT"] },
  });
  const history: Run[] = [];
  const statuses: number[] = [];
  // task 0 always times out, task 1 fails permanently, task 2 times out once, task 3 succeeds
  const timedOut = new Set<number>();
  await Promise.all(Array.from({ length: 4 }, (_, i) =>
    runWorker({
      id: `retry-${i}`,
      limit: 1,
      jobId: job.id,
      done: finished([job.id]),
      history,
      statuses,
      decide: (t) => {
        const n = (t.payload as { n: number }).n;
        if (n === 0) return { fail: "TIMEOUT" };
        if (n === 1) return { fail: "INVALID_RECIPIENT" };
        if (n === 2 && !timedOut.has(t.task_id)) {
          timedOut.add(t.task_id);
          return { fail: "TIMEOUT" };
        }
        return "complete";
      },
    })));
  assert.ok(statuses.every((s) => s === 200));
  const rows = await testDb()`
    select (payload ->> 'n')::int as n, status, attempt from tasks where job_id = ${job.id} order by id`;
  assert.deepEqual(rows.map((r) => ({ ...r })), [
    { n: 0, status: "failed", attempt: 3 },
    { n: 1, status: "failed", attempt: 1 },
    { n: 2, status: "succeeded", attempt: 2 },
    { n: 3, status: "succeeded", attempt: 1 },
  ]);
  // attempts of task 0 started at least retry_interval after the previous failure
  const errors = await testDb()`
    select e.attempt, e.code, e.created_at, t.payload ->> 'n' as n
    from job_errors e join tasks t on t.id = e.task_id where e.job_id = ${job.id} order by e.id`;
  assert.deepEqual(errors.filter((e) => e.n === "0").map((e) => e.attempt), [1, 2, 3]);
  const runs0 = history.filter((r) => r.outcome.startsWith("fail") && r.attempt > 1);
  assert.ok(runs0.length >= 2);
  const job2 = await getJob(service, job.id);
  assert.equal(job2.status, "failed", "a task failed for good: the job failed once all ended");
  assert.equal(job2.detailed_status.error_count, 5);
  assert.equal(job2.last_error?.code !== undefined, true);
  const gaps = await testDb()`
    select extract(epoch from (t.started_at - e.created_at)) * 1000 as gap
    from tasks t join job_errors e on e.task_id = t.id
    where t.job_id = ${job.id} and (t.payload ->> 'n')::int = 0 and e.attempt = 2`;
  assert.ok(gaps.every((g) => Number(g.gap) >= 140), JSON.stringify(gaps));
  await assertInvariants([job.id]);
});

test("an expired lease is a WORKER_LOST failure: retried by policy, one notification", async () => {
  const service = await asService();
  const job = await createJob(service, {
    tasks: tasks(2),
    retry_config: { max_attempts: 2, retry_interval: 0, retry_on_errors: ["WORKER_LOST"] },
  });
  const [lost] = await claim("w-vanishes", 1, { job_id: job.id, lease_ms: 1000 });
  await sleep(1100);
  const beat = await service.task<{ tasks: { action: string }[] }>("heartbeat", {
    worker_id: "w-vanishes",
    tasks: [{ task_id: lost.task_id }],
  });
  assert.equal(
    beat.data.tasks[0].action,
    "lost",
    "an expired lease is lost, even before maintenance",
  );
  const done = await service.task("completeTask", {
    worker_id: "w-vanishes",
    task_id: lost.task_id,
  });
  assert.equal(done.status, 409);
  assert.equal(done.error?.code, "LEASE_LOST");

  // the refused report's overdue timers (task-operations/due_timers.ts) or this maintenance run
  // expire the lease, whichever comes first: either way it ends once, as WORKER_LOST
  await runMaintenance();
  const [task] = await testDb()`select status, attempt from tasks where id = ${lost.task_id}`;
  assert.deepEqual({ ...task }, { status: "pending", attempt: 1 });
  const errors =
    await testDb()`select code, category, attempt from job_errors where task_id = ${lost.task_id}`;
  assert.deepEqual(errors.map((e) => ({ ...e })), [
    { code: "WORKER_LOST", category: "transient", attempt: 1 },
  ]);
  const notes =
    await testDb()`select payload from notifications where job_id = ${job.id} and type = 'task.worker_lost'`;
  assert.equal(notes.length, 1);
  assert.deepEqual(notes[0].payload.workers, ["w-vanishes"]);

  // the retry runs as attempt 2; its lease expiring too fails the task for good
  const again = await claim("w-vanishes-2", 1, { job_id: job.id, lease_ms: 1000 });
  assert.deepEqual(again.map((t) => [t.task_id, t.attempt]), [[lost.task_id, 2]]);
  await sleep(1100);
  await runMaintenance();
  const [final] = await testDb()`select status from tasks where id = ${lost.task_id}`;
  assert.equal(final.status, "failed");
  assert.equal(await jobStatus(job.id), "running", "the other task is still to do");
  const [other] = await claim("w-stays", 1, { job_id: job.id });
  await service.task("completeTask", { worker_id: "w-stays", task_id: other.task_id });
  assert.equal(await jobStatus(job.id), "failed", "all ended, one failed for good");
  await assertInvariants([job.id]);
});

test("the lease expiry of a task its job told to stop is no error and uses no attempt", async () => {
  const user = await asUser();
  const job = await createJob(user, { tasks: tasks(1) });
  const [t] = await claim("w-stop", 1, { job_id: job.id, lease_ms: 1000 });
  await update(user, { job_id: job.id, status: "running" }).catch(() => {});
  const failed = await update(user, { job_id: job.id, status: "failed" });
  assert.equal(failed.data.status, "failed");
  await sleep(1100);
  await runMaintenance();
  const [task] =
    await testDb()`select status, attempt, repeat_attempt from tasks where id = ${t.task_id}`;
  assert.deepEqual({ ...task }, { status: "pending", attempt: 1, repeat_attempt: true });
  const [{ n }] =
    await testDb()`select count(*)::int as n from job_errors where job_id = ${job.id}`;
  assert.equal(n, 0);
  // recovery: the stopped run is repeated under the same attempt number
  await update(user, { job_id: job.id, status: "queued" });
  const [again] = await claim("w-stop-2", 1, { job_id: job.id });
  assert.equal(again.attempt, 1);
  await assertInvariants([job.id]);
});

test("heartbeat: extends leases, records usage and peaks, answers lost for tasks it does not hold", async () => {
  const service = await asService();
  const job = await createJob(service, { tasks: tasks(2) });
  const held = await claim("w-hb", 2, { job_id: job.id, lease_ms: 2000 });
  await sleep(50);
  const res = await service.task<
    { tasks: { task_id: number; action: string; lease_expires_at?: string }[] }
  >(
    "heartbeat",
    {
      worker_id: "w-hb",
      tasks: [
        { task_id: held[0].task_id, usage: { memory: 120, cpu: 0.7 } },
        { task_id: held[1].task_id },
        { task_id: 999_999_999 },
      ],
    },
  );
  assert.equal(res.status, 200);
  assert.deepEqual(res.data.tasks.map((t) => [t.task_id, t.action]), [
    [held[0].task_id, "continue"],
    [held[1].task_id, "continue"],
    [999_999_999, "lost"],
  ]);
  assert.ok(Date.parse(res.data.tasks[0].lease_expires_at!) > Date.parse(held[0].lease_expires_at));
  await service.task("heartbeat", {
    worker_id: "w-hb",
    tasks: [{ task_id: held[0].task_id, usage: { memory: 80, cpu: 0.9 } }],
  });
  const [t] =
    await testDb()`select usage_memory::float8 as m, peak_memory::float8 as pm, peak_cpu::float8 as pc
                            from tasks where id = ${held[0].task_id}`;
  assert.deepEqual({ ...t }, { m: 80, pm: 120, pc: 0.9 });
  const [{ usage }] =
    await testDb()`select sum(usage_memory)::float8 as usage from job_shard_ends where job_id = ${job.id}`;
  assert.equal(usage, 80);
  const other = await service.task<{ tasks: { action: string }[] }>("heartbeat", {
    worker_id: "w-intruder",
    tasks: [{ task_id: held[0].task_id }],
  });
  assert.equal(other.data.tasks[0].action, "lost");
  await service.task("completeTasks", {
    worker_id: "w-hb",
    tasks: held.map((x) => ({ task_id: x.task_id })),
  });
  const [{ after }] =
    await testDb()`select sum(usage_memory)::float8 as after from job_shard_ends where job_id = ${job.id}`;
  assert.equal(after, 0, "an ended task's usage leaves the job's");
});

test("back-pressure: usage over the limits stops claims, one event and notification per episode", async () => {
  const service = await asService();
  const job = await createJob(service, {
    tasks: tasks(6),
    max_parallel_tasks: 6,
    resource_limits: { max_memory: 100, max_cpu: 4 },
  });
  const [t] = await claim("w-bp", 1, { job_id: job.id });
  const beat = (memory: number) =>
    service.task("heartbeat", {
      worker_id: "w-bp",
      tasks: [{ task_id: t.task_id, usage: { memory, cpu: 1 } }],
    });
  await beat(150);
  await beat(160);
  assert.deepEqual(
    await claim("w-bp-2", 1, { job_id: job.id }),
    [],
    "no claims while over the limit",
  );
  await beat(50);
  assert.equal(
    (await claim("w-bp-2", 1, { job_id: job.id })).length,
    1,
    "claims again once back within",
  );
  await beat(170);
  const events =
    await testDb()`select type from job_events where job_id = ${job.id} and type like 'resource_limit%' order by id`;
  assert.deepEqual(events.map((e) => e.type), [
    "resource_limit_exceeded",
    "resource_limit_recovered",
    "resource_limit_exceeded",
  ]);
  const [{ n }] = await testDb()`select count(*)::int as n from notifications
                                  where job_id = ${job.id} and type = 'job.resource_limit_exceeded'`;
  assert.equal(n, 2);
});

test("back-pressure: a batch report that ends the task over the limit lifts it", async () => {
  const service = await asService();
  const job = await createJob(service, {
    tasks: tasks(4),
    max_parallel_tasks: 4,
    resource_limits: { max_memory: 100, max_cpu: 4 },
  });
  const other = await createJob(service, { tasks: tasks(1) });
  const held = await claim("w-bp-batch", 2, { job_id: job.id });
  const [elsewhere] = await claim("w-bp-batch", 1, { job_id: other.id });
  await service.task("heartbeat", {
    worker_id: "w-bp-batch",
    tasks: [{ task_id: held[0].task_id, usage: { memory: 150, cpu: 1 } }],
  });
  assert.deepEqual(await claim("w-bp-batch-2", 1, { job_id: job.id }), [], "held back");
  const done = await service.task<{ tasks: { status: string }[] }>("completeTasks", {
    worker_id: "w-bp-batch",
    tasks: [...held, elsewhere].map((t) => ({ task_id: t.task_id })),
  });
  assert.deepEqual(done.data.tasks.map((t) => t.status), ["succeeded", "succeeded", "succeeded"]);
  const events =
    await testDb()`select type from job_events where job_id = ${job.id} and type like 'resource_limit%' order by id`;
  assert.deepEqual(events.map((e) => e.type), [
    "resource_limit_exceeded",
    "resource_limit_recovered",
  ]);
  const [ends] = await testDb()`select sum(ended)::int as ended, sum(succeeded)::int as succeeded,
      sum(usage_memory)::float8 as usage, sum(released_memory)::float8 as released
    from job_shard_ends where job_id = ${job.id}`;
  assert.equal(ends.ended, 2);
  assert.equal(ends.succeeded, 2);
  assert.equal(ends.usage, 0);
  assert.ok(ends.released > 0, "the reservations are given back");
  assert.equal((await getJob(service, other.id)).status, "completed", "the other job's tail");
  assert.equal((await claim("w-bp-batch-2", 2, { job_id: job.id })).length, 2, "claims again");
});

test("completeTask: only the lease holder; a replay by the completer is 200 and not counted twice", async () => {
  const service = await asService();
  const job = await createJob(service, { tasks: tasks(2) });
  const [a, b] = await claim("w-own", 2, { job_id: job.id });
  const intruder = await service.task("completeTask", { worker_id: "w-thief", task_id: a.task_id });
  assert.equal(intruder.status, 409);
  assert.equal(intruder.error?.code, "LEASE_LOST");
  const first = await service.task("completeTask", {
    worker_id: "w-own",
    task_id: a.task_id,
    result: { sent: true },
  });
  assert.equal(first.status, 200);
  const replay = await service.task("completeTask", {
    worker_id: "w-own",
    task_id: a.task_id,
    result: { sent: true },
  });
  assert.equal(replay.status, 200);
  assert.deepEqual(replay.data, first.data);
  const other = await service.task("completeTask", { worker_id: "w-thief", task_id: a.task_id });
  assert.equal(other.status, 409);
  assert.equal(
    (await service.task("completeTask", { worker_id: "w-own", task_id: 987_654_321 })).status,
    404,
  );
  const state = await getJob(service, job.id);
  assert.equal(state.tasks.succeeded, 1);
  // failTask replay
  const f1 = await service.task<{ status: string }>("failTask", {
    worker_id: "w-own",
    task_id: b.task_id,
    error: { code: "INVALID_PAYLOAD", message: "no" },
  });
  const f2 = await service.task<{ status: string }>("failTask", {
    worker_id: "w-own",
    task_id: b.task_id,
    error: { code: "INVALID_PAYLOAD", message: "no" },
  });
  assert.deepEqual(f2.data, f1.data);
  assert.equal(
    (await getJob(service, job.id)).detailed_status.error_count,
    1,
    "a replay adds no error",
  );
  await assertInvariants([job.id]);
});

test("completeTasks judges each task alone in one call", async () => {
  const service = await asService();
  const job = await createJob(service, { tasks: tasks(3) });
  const [a, b, c] = await claim("w-batch", 3, { job_id: job.id });
  await service.task("completeTask", { worker_id: "w-batch", task_id: c.task_id });
  const res = await service.task<{ tasks: { task_id: number; status: string }[] }>(
    "completeTasks",
    {
      worker_id: "w-batch",
      tasks: [{ task_id: a.task_id, result: 1 }, { task_id: 123_456_789 }, { task_id: c.task_id }, {
        task_id: b.task_id,
      }],
    },
  );
  assert.deepEqual(res.data.tasks, [
    { task_id: a.task_id, status: "succeeded" },
    { task_id: 123_456_789, status: "not_found" },
    { task_id: c.task_id, status: "succeeded" },
    { task_id: b.task_id, status: "succeeded" },
  ]);
  const dup = await service.task("completeTasks", {
    worker_id: "w-batch",
    tasks: [{ task_id: a.task_id }, { task_id: a.task_id }],
  });
  assert.equal(dup.status, 400);
  assert.equal(await jobStatus(job.id), "completed");
});

test("completeTasks with claim: the report, then a claim that sees the room it gave back, in one call", async () => {
  const service = await asService();
  const job = await createJob(service, { tasks: tasks(3), max_parallel_tasks: 1 });
  const [first] = await claim("w-next", 5, { job_id: job.id });
  type Answer = {
    tasks: { task_id: number; status: string }[];
    claimed?: { task_id: number; attempt: number; lease_expires_at: string }[];
  };
  // one task at a time, each report claiming the next: the job's one slot passes from run to run
  let held = first;
  const order = [first.task_id];
  for (let i = 0; i < 2; i++) {
    const res = await service.task<Answer>("completeTasks", {
      worker_id: "w-next",
      tasks: [{ task_id: held.task_id }],
      claim: { limit: 5, job_id: job.id, lease_ms: 30_000 },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.data.tasks, [{ task_id: held.task_id, status: "succeeded" }]);
    assert.equal(res.data.claimed?.length, 1, "max_parallel_tasks 1: the freed slot, no more");
    held = res.data.claimed![0] as typeof first;
    assert.equal(held.attempt, 1);
    order.push(held.task_id);
  }
  assert.deepEqual(order, [...order].sort((a, b) => a - b), "oldest tasks first");
  const last = await service.task<Answer>("completeTasks", {
    worker_id: "w-next",
    tasks: [{ task_id: held.task_id }],
    claim: { limit: 5, job_id: job.id },
  });
  assert.deepEqual(last.data.claimed, [], "nothing left: an empty claim");
  assert.equal(await jobStatus(job.id), "completed");
  // without claim the answer has no `claimed`; a bad claim is refused before anything is written
  const bad = await service.task("completeTasks", {
    worker_id: "w-next",
    tasks: [{ task_id: held.task_id }],
    claim: { limit: 0 },
  });
  assert.equal(bad.status, 400);
  assert.equal(bad.error?.code, "VALIDATION_ERROR");
  await assertInvariants([job.id]);
});

test("addTasks: appends while the job takes tasks; JOB_CLOSED after; budgets checked", async () => {
  const service = await asService();
  const job = await createJob(service, {
    tasks: tasks(1),
    resource_limits: { max_memory: 10, max_cpu: 1 },
  });
  const added = await service.task<{ added: number; total: number }>("addTasks", {
    job_id: job.id,
    tasks: [{ payload: "a" }, { payload: "b", resources: { memory: 5, cpu: 0.5 } }],
  });
  assert.equal(added.status, 201);
  assert.deepEqual(added.data, { added: 2, total: 3 });
  const tooBig = await service.task("addTasks", {
    job_id: job.id,
    tasks: [{ payload: "ok" }, { payload: "x", resources: { memory: 11, cpu: 0.5 } }],
  });
  assert.equal(tooBig.status, 400);
  assert.deepEqual((tooBig.error?.details as { path: string }[]).map((d) => d.path), [
    "data.tasks.1.resources",
  ]);
  assert.equal((await getJob(service, job.id)).tasks.total, 3, "nothing half written");
  const got = await claim("w-add", 10, { job_id: job.id });
  await service.task("completeTasks", {
    worker_id: "w-add",
    tasks: got.map((t) => ({ task_id: t.task_id })),
  });
  assert.equal(await jobStatus(job.id), "completed");
  const closed = await service.task("addTasks", { job_id: job.id, tasks: [{ payload: 1 }] });
  assert.equal(closed.status, 409);
  assert.equal(closed.error?.code, "JOB_CLOSED");
  assert.equal(
    (await service.task("addTasks", { job_id: crypto.randomUUID(), tasks: [{ payload: 1 }] }))
      .status,
    404,
  );
  await assertInvariants([job.id]);
});

test("mixed load: claims, completions, failures, pauses and cancels on shared jobs — no 5xx, no deadlock", async () => {
  const user = await asUser();
  const [{ before }] =
    await testDb()`select deadlocks::int as before from pg_stat_database where datname = current_database()`;
  const jobs = await Promise.all(Array.from({ length: 6 }, (_, i) =>
    createJob(user, {
      tasks: tasks(80),
      max_parallel_tasks: 2 + i * 3,
      priority: 20 + i * 10,
      retry_config: { max_attempts: 2, retry_interval: 10, retry_on_errors: ["TIMEOUT"] },
      ...(i % 2 ? { resource_limits: { max_memory: 64, max_cpu: 2 } } : {}),
    })));
  const ids = jobs.map((j) => j.id);
  await isolateClaims(ids);
  const history: Run[] = [];
  const statuses: number[] = [];
  let stop = false;
  const steering = (async () => {
    let i = 0;
    while (!stop) {
      const job = jobs[i++ % jobs.length];
      const status = ["paused", "queued", "paused", "queued", "cancelled"][i % 5];
      const res = await update(user, { job_id: job.id, status });
      statuses.push(res.status === 409 ? 200 : res.status);
      await sleep(15);
    }
  })();
  await Promise.all(Array.from({ length: 12 }, (_, w) =>
    runWorker({
      id: `mix-${w}`,
      limit: 1 + (w % 4),
      workMs: w % 3,
      done: async () => {
        if (await finished(ids)()) return true;
        // paused jobs would keep workers forever: resume them
        for (const j of jobs) {
          if (await jobStatus(j.id) === "paused") {
            await update(user, { job_id: j.id, status: "queued" });
          }
        }
        return false;
      },
      history,
      statuses,
      batchComplete: w % 2 === 0,
      decide: (t) => (t.task_id % 7 === 0
        ? { fail: "TIMEOUT" }
        : t.task_id % 11 === 0
        ? { fail: "INTERNAL" }
        : "complete"),
    })));
  stop = true;
  await steering;
  assert.deepEqual(
    [...new Set(statuses)].sort(),
    [200],
    `statuses seen: ${[...new Set(statuses)]}`,
  );
  const [{ after }] =
    await testDb()`select deadlocks::int as after from pg_stat_database where datname = current_database()`;
  assert.equal(after - before, 0, "no deadlock happened at all");
  const succeeded = history.filter((r) => r.outcome === "succeeded").map((r) => r.task_id);
  assert.equal(new Set(succeeded).size, succeeded.length, "no task completed twice");
  await assertInvariants(ids);
});

test("a claim asking for more than a budgeted job's free room still gets what fits", async () => {
  const service = await asService();
  const job = await createJob(service, {
    tasks: tasks(3),
    max_parallel_tasks: 4,
    resource_limits: { max_memory: 1024, max_cpu: 2 },
  });
  const got = await claim("w-room", 10, { job_id: job.id });
  assert.equal(got.length, 3);
  await assertInvariants([job.id]);
});

test("a one-task claim of a budgeted job: a next task that does not fit is not overtaken", async () => {
  const service = await asService();
  const job = await createJob(service, {
    tasks: [
      { payload: { n: "a" }, resources: { memory: 60, cpu: 0.5 } },
      { payload: { n: "b" }, resources: { memory: 60, cpu: 0.5 } },
      { payload: { n: "c" }, resources: { memory: 10, cpu: 0.5 } },
    ],
    max_parallel_tasks: 2,
    resource_limits: { max_memory: 100, max_cpu: 2 },
  });
  const [a] = await claim("w-fit", 1, { job_id: job.id });
  assert.deepEqual(a.payload, { n: "a" });
  assert.deepEqual(await claim("w-fit", 1, { job_id: job.id }), [], "b does not fit, c waits");
  await service.task("completeTask", { worker_id: "w-fit", task_id: a.task_id });
  const [b] = await claim("w-fit", 1, { job_id: job.id });
  assert.deepEqual(b.payload, { n: "b" });
  assert.deepEqual(b.resources, { memory: 60, cpu: 0.5 });
  await assertInvariants([job.id]);
});

test("a claim in flight holds only the shards it takes: a second claim gets the next jobs in order", async () => {
  const service = await asService();
  const owner = crypto.randomUUID();
  const jobs: { id: string }[] = [];
  for (const priority of [90, 70, 50, 30]) {
    jobs.push(
      await createJob(service, {
        user_id: owner,
        priority,
        tasks: tasks(10),
        max_parallel_tasks: 4,
      }),
    );
  }
  const ids = jobs.map((j) => j.id);
  await isolateClaims(ids);
  const ctx = { role: "service_role", user_id: null, request_id: "test-shards-held" };
  await testDb().begin(async (tx) => {
    // claim A, not yet committed: four tasks of the first job
    const [{ r }] = await tx`select job_service_api.claim_tasks(${
      tx.json(ctx)
    }, 'w-held-a', 4, null,
      60000) as r`;
    const a = r.tasks as { job_id: string }[];
    assert.deepEqual(a.map((t) => t.job_id), Array(4).fill(jobs[0].id));
    // claim B meanwhile: the first job's shard is A's; the next two jobs are free, the last
    // one is not needed (a claim that locked more candidates than it used would leave B less)
    const b = await claim("w-held-b", 8);
    assert.deepEqual(b.map((t) => t.job_id), [
      ...Array(4).fill(jobs[1].id),
      ...Array(4).fill(jobs[2].id),
    ]);
  });
  await assertInvariants(ids);
});

test("a budgeted job whose next task does not fit is passed by until one of its runs ends", async () => {
  const service = await asService();
  const budgeted = await createJob(service, {
    priority: 90,
    tasks: [
      { payload: { n: "a" }, resources: { memory: 60, cpu: 0.5 } },
      { payload: { n: "b" }, resources: { memory: 60, cpu: 0.5 } },
    ],
    max_parallel_tasks: 2,
    resource_limits: { max_memory: 100, max_cpu: 2 },
  });
  const other = await createJob(service, { priority: 10, tasks: tasks(3), max_parallel_tasks: 4 });
  await isolateClaims([budgeted.id, other.id]);
  const unfitAt = async () => {
    const [row] = await testDb()`select s.unfit_at_ended, e.ended from job_shards s
      join job_shard_ends e using (job_id, shard) where s.job_id = ${budgeted.id} and s.shard = 1`;
    return row;
  };
  const [a] = await claim("w-unfit", 1);
  assert.deepEqual(a.payload, { n: "a" });
  // b does not fit beside a: the claim records it and takes the lower job's task instead
  assert.equal((await claim("w-unfit", 1))[0].job_id, other.id);
  assert.deepEqual(await unfitAt(), { unfit_at_ended: 0, ended: 0 });
  assert.equal((await claim("w-unfit", 1))[0].job_id, other.id, "passed by, room or not");
  // a's end releases its budget: the walk looks at the job again and b starts
  await service.task("completeTask", { worker_id: "w-unfit", task_id: a.task_id });
  const [b] = await claim("w-unfit", 1);
  assert.deepEqual(b.payload, { n: "b" });
  await assertInvariants([budgeted.id, other.id]);
});
