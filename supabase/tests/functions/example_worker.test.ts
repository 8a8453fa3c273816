// The example worker (examples/worker.ts) against the served functions: it runs a job to the end,
// reports failures with the handler's code, and stops gracefully with every held task reported.
import assert from "node:assert/strict";
import { asUser, serviceToken, serviceUrl, test, testDb } from "../helpers/service.ts";
import { assertInvariants, createJob, sleep } from "../helpers/jobs.ts";
import { TaskError, Worker } from "../../../examples/worker.ts";

test("the example worker completes a job, failing the tasks its handler rejects", async () => {
  const user = await asUser();
  const job = await createJob(user, {
    tasks: Array.from({ length: 40 }, (_, i) => ({ payload: { i } })),
    max_parallel_tasks: 8,
    retry_config: { max_attempts: 1, retry_interval: 0, retry_on_errors: [] },
  });
  const worker = new Worker({
    url: await serviceUrl(),
    serviceKey: await serviceToken(),
    workerId: "example-1",
    concurrency: 5,
    idleMs: 20,
    leaseMs: 5000,
    handler: async (task) => {
      const { i } = task.payload as { i: number };
      await sleep(2);
      if (i % 10 === 3) throw new TaskError("INVALID_RECIPIENT", `recipient ${i} does not exist`);
      return { delivered: i };
    },
  });
  const running = worker.start();
  for (let i = 0; i < 200; i++) {
    const [row] = await testDb()`select status from jobs where id = ${job.id}`;
    if (row.status === "failed" || row.status === "completed") break;
    await sleep(50);
  }
  await worker.stop();
  await running;
  const [row] = await testDb()`select status from jobs where id = ${job.id}`;
  assert.equal(row.status, "failed", "four tasks failed for good");
  const counts =
    await testDb()`select status, count(*)::int as n from tasks where job_id = ${job.id} group by status order by status`;
  assert.deepEqual(counts.map((c) => [c.status, c.n]), [["succeeded", 36], ["failed", 4]]);
  const [{ codes }] =
    await testDb()`select string_agg(distinct code, ',') as codes from job_errors where job_id = ${job.id}`;
  assert.equal(codes, "INVALID_RECIPIENT");
  await assertInvariants([job.id]);
});

test("stop() lets held tasks finish and reports them", async () => {
  const user = await asUser();
  const job = await createJob(user, {
    tasks: Array.from({ length: 6 }, (_, i) => ({ payload: { i } })),
  });
  let started = 0;
  const worker = new Worker({
    url: await serviceUrl(),
    serviceKey: await serviceToken(),
    workerId: "example-2",
    concurrency: 3,
    idleMs: 20,
    handler: async () => {
      started++;
      await sleep(150);
      return "ok";
    },
  });
  const running = worker.start();
  while (started < 3) await sleep(10);
  await worker.stop();
  await running;
  const counts =
    await testDb()`select status, count(*)::int as n from tasks where job_id = ${job.id} group by status order by status`;
  assert.deepEqual(
    counts.map((c) => [c.status, c.n]),
    [["pending", 3], ["succeeded", 3]],
    "held tasks reported, none left running",
  );
  await assertInvariants([job.id]);
});
