// getStats: service only, validated, its answer matches the published schema, and its figures
// follow the work done (deltas around a known scenario; the test files run one at a time).
import assert from "node:assert/strict";
import { asService, asUser, test } from "../helpers/service.ts";
import { claim, createJob, tasks } from "../helpers/jobs.ts";
import { Stats } from "../../functions/_shared/operations_schemas.ts";

async function stats(data: Record<string, unknown> = {}): Promise<Stats> {
  const service = await asService();
  const res = await service.call<Stats>("getStats", data);
  assert.equal(res.status, 200, JSON.stringify(res.error));
  return Stats.parse(res.data);
}

test("getStats is for the service only; window_minutes is validated", async () => {
  const user = await asUser();
  const res = await user.call("getStats", {});
  assert.equal(res.status, 403);
  assert.equal(res.error?.code, "FORBIDDEN");
  const service = await asService();
  for (
    const [data, path] of [
      [{ window_minutes: 0 }, "data.window_minutes"],
      [{ window_minutes: 1.5 }, "data.window_minutes"],
      [{ window_minutes: 1441 }, "data.window_minutes"],
      [{ colour: "red" }, "data.colour"],
    ] as const
  ) {
    const bad = await service.call("getStats", data);
    assert.equal(bad.status, 400, JSON.stringify(data));
    assert.equal(bad.error?.code, "VALIDATION_ERROR");
    assert.deepEqual((bad.error?.details as { path: string }[]).map((d) => d.path), [path]);
  }
});

test("getStats answers the documented shape, every status and error category included", async () => {
  const service = await asService();
  const res = await service.call<Record<string, unknown>>("getStats", { window_minutes: 60 });
  assert.equal(res.status, 200);
  const parsed = Stats.parse(res.data);
  // nothing the schema does not name (z.object would drop it silently)
  assert.deepEqual(Object.keys(res.data).sort(), Object.keys(Stats.shape).sort());
  for (const key of Object.keys(Stats.shape) as (keyof typeof Stats.shape)[]) {
    const section = res.data[key];
    if (section && typeof section === "object") {
      assert.deepEqual(
        Object.keys(section).sort(),
        Object.keys(parsed[key] as object).sort(),
        `stats.${key} has exactly the documented fields`,
      );
    }
  }
  assert.equal(parsed.errors.window_minutes, 60);
  assert.ok(Math.abs(Date.parse(parsed.generated_at) - Date.now()) < 60_000);
});

test("getStats follows the work: queue depth, running, throughput, errors by class, resources", async () => {
  const before = await stats();
  const user = await asUser();
  const job = await createJob(user, {
    tasks: tasks(6),
    max_parallel_tasks: 10,
    resource_limits: { max_memory: 1000, max_cpu: 4 },
  });
  const service = await asService();
  const worker = `stats-${crypto.randomUUID()}`;
  const claimed = await claim(worker, 4, { job_id: job.id });
  assert.equal(claimed.length, 4);
  const done = await service.task("completeTasks", {
    worker_id: worker,
    tasks: [{ task_id: claimed[0].task_id }, { task_id: claimed[1].task_id }],
  });
  assert.equal(done.status, 200);
  const failed = await service.task("failTask", {
    worker_id: worker,
    task_id: claimed[2].task_id,
    error: { code: "TIMEOUT", message: "slow provider" },
  });
  assert.equal(failed.status, 200);
  const beat = await service.task("heartbeat", {
    worker_id: worker,
    tasks: [{ task_id: claimed[3].task_id, usage: { memory: 1_000_000, cpu: 1 } }],
  });
  assert.equal(beat.status, 200);

  const after = await stats();
  const delta = (f: (s: Stats) => number) => f(after) - f(before);
  assert.equal(delta((s) => s.jobs.by_status.running), 1);
  assert.equal(delta((s) => s.jobs.active), 1);
  // 6 created, 4 claimed, 1 back to pending with a retry time (default 60 s)
  assert.equal(delta((s) => s.tasks.pending), 3);
  assert.equal(delta((s) => s.tasks.due), 2);
  assert.equal(delta((s) => s.tasks.delayed), 1);
  assert.equal(delta((s) => s.tasks.running), 1);
  assert.equal(delta((s) => s.tasks.capacity), 10);
  assert.equal(delta((s) => s.tasks.usage.memory), 1_000_000);
  assert.equal(delta((s) => s.throughput.last_15m.succeeded), 2);
  assert.equal(delta((s) => s.throughput.last_15m.failed), 0, "a retried failure did not end");
  assert.ok(after.throughput.last_1m.succeeded >= 2);
  assert.ok(after.throughput.last_1m.per_minute >= 2);
  assert.equal(delta((s) => s.errors.total), 1);
  assert.equal(delta((s) => s.errors.by_category.transient), 1);
  assert.ok(after.errors.top_codes.some((c) => c.code === "TIMEOUT" && c.category === "transient"));
  assert.equal(delta((s) => s.resources.jobs_with_limits), 1);
  assert.equal(delta((s) => s.resources.jobs_over_limit), 1);
  assert.equal(delta((s) => s.resources.totals.max_memory), 1000);
  // reservations: the fair share of the two tasks still holding one (running, and none for pending)
  assert.equal(delta((s) => s.resources.totals.reserved_memory), 100);
  const top = after.resources.top_jobs.find((j) => j.job_id === job.id);
  assert.ok(top, "the job far over its limits is among the top jobs");
  assert.equal(top.over_limit, true);
  assert.equal(top.usage_ratio, 1000);
  assert.equal(top.status, "running");
  assert.equal(delta((s) => s.notifications.pending), 1, "resource_limit_exceeded queued");
});
