// The concurrency stress test: workers, creators, updaters, pausers, cancellers, deleters, readers
// and maintenance at once against the served functions, every call recorded, every invariant of
// the engine (docs/architecture.md) and the status machine checked on the history (supabase/tests/stress/). Small in CI;
// STRESS_SCALE=medium|large|<factor> makes it bigger, STRESS_SEED repeats a run.
import assert from "node:assert/strict";
import { asService, serviceUrl, test, testDb } from "../helpers/service.ts";
import { claim, createJob, tasks } from "../helpers/jobs.ts";
import { runStress } from "../stress/mod.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";

test("stress: concurrent actors over HTTP keep every invariant on the recorded history", async () => {
  const seed = Deno.env.get("STRESS_SEED");
  const report = await runStress({
    url: await serviceUrl(),
    dbUrl: Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL,
    scale: Deno.env.get("STRESS_SCALE") ?? "small",
    ...(seed ? { seed: Number(seed) } : {}),
    log: (line) => console.log(line),
  });
  await Deno.mkdir(".test-results", { recursive: true }).catch(() => {});
  const { history: _history, ...summary } = report;
  await Deno.writeTextFile(
    `.test-results/stress-${report.runId}.json`,
    JSON.stringify(summary, null, 2),
  ).catch(() => {});
  if (report.check.violations.length > 0 || !report.drained) {
    // the whole history, to study the calls each violation names
    await Deno.writeTextFile(
      `.test-results/stress-${report.runId}-history.json`,
      JSON.stringify(report.history),
    ).catch(() => {});
  }

  assert.ok(report.drained, `jobs left unfinished: ${report.unfinished.join("; ")}`);
  assert.deepEqual(report.check.violations, [], "no invariant is violated");
  // the run was a real one: many calls, claims, completions, steering and deletions
  assert.ok(report.calls >= 300, `${report.calls} calls`);
  assert.ok(report.runs >= 50, `${report.runs} runs`);
  for (const action of ["createJob", "claimTasks", "completeTask", "failTask", "updateBatchJob"]) {
    assert.ok(report.answers[action]?.["200"] || report.answers[action]?.["201"], action);
  }
  assert.ok(report.answers.deleteJob, "deletions happened");
});

// Found by the stress test (a job left queued with pending tasks that no claim ever took).
test("back-pressure: once the task whose usage was over the limits ends, claims resume", async () => {
  const service = await asService();
  const job = await createJob(service, {
    tasks: tasks(2),
    resource_limits: { max_memory: 64, max_cpu: 2 },
  });
  const [t] = await claim("w-bp-end", 1, { job_id: job.id });
  await service.task("heartbeat", {
    worker_id: "w-bp-end",
    tasks: [{ task_id: t.task_id, usage: { memory: 100, cpu: 1 } }],
  });
  const done = await service.task("completeTask", { worker_id: "w-bp-end", task_id: t.task_id });
  assert.equal(done.status, 200);
  const [shard] = await testDb()`
    select s.started - e.ended as running, e.usage_memory::float8 as usage, e.over_limit
    from job_shards s join job_shard_ends e using (job_id, shard)
    where s.job_id = ${job.id} and s.shard = 1`;
  assert.deepEqual({ running: shard.running, usage: shard.usage }, { running: 0, usage: 0 });
  // Regression check (a bug this test found, fixed in 593bed0): the shard kept over_limit = true
  // after the over-limit task ended, so no heartbeat could ever clear it and the job's other task
  // was never claimed. Expected: usage 0 is within the limits, the next claim gets the task.
  const next = await claim("w-bp-end-2", 1, { job_id: job.id });
  assert.equal(next.length, 1, `no claim after usage fell to 0 (over_limit ${shard.over_limit})`);
});
