// Building jobs in a given state through the API, and checking the engine's invariants.
import assert from "node:assert/strict";
import { asService, type Caller, jobData, testDb } from "./service.ts";
import type { BatchJob } from "../../functions/_shared/job_schemas.ts";
import type { ClaimedTask } from "../../functions/_shared/task_schemas.ts";

export async function createJob(
  caller: Caller,
  overrides: Record<string, unknown> = {},
): Promise<BatchJob> {
  const data = jobData(caller.userId ? overrides : { user_id: crypto.randomUUID(), ...overrides });
  const res = await caller.call<BatchJob>("createJob", data);
  assert.equal(res.status, 201, JSON.stringify(res.error));
  return res.data;
}

export function tasks(n: number, make: (i: number) => unknown = (i) => ({ n: i })) {
  return Array.from({ length: n }, (_, i) => ({ payload: make(i) }));
}

export async function claim(
  worker: string,
  limit: number,
  extra: Record<string, unknown> = {},
): Promise<ClaimedTask[]> {
  const service = await asService();
  const res = await service.task<{ tasks: ClaimedTask[] }>("claimTasks", {
    worker_id: worker,
    limit,
    ...extra,
  });
  assert.equal(res.status, 200, JSON.stringify(res.error));
  return res.data.tasks;
}

export async function update(
  caller: Caller,
  data: Record<string, unknown>,
) {
  return await caller.call<BatchJob>("updateBatchJob", data);
}

export async function getJob(caller: Caller, jobId: string): Promise<BatchJob> {
  const res = await caller.call<BatchJob>("getJob", { job_id: jobId });
  assert.equal(res.status, 200, JSON.stringify(res.error));
  return res.data;
}

/** Fails with the list of violated invariants (counters, shards, queue, statuses). */
export async function assertInvariants(jobIds?: string[]): Promise<void> {
  const rows = await testDb()`
    select job_id, invariant, detail
    from job_service_api.invariant_violations(${jobIds ? `{${jobIds.join(",")}}` : null}::uuid[])`;
  assert.deepEqual(rows.map((r) => `${r.job_id}: ${r.invariant} (${r.detail})`), []);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs maintenance until it actually ran (another run may hold the lease for a moment). */
export async function runMaintenance(data: Record<string, unknown> = {}) {
  const service = await asService();
  for (let i = 0; i < 50; i++) {
    const res = await service.call<Record<string, number | boolean>>("runMaintenance", data);
    assert.equal(res.status, 200, JSON.stringify(res.error));
    if (res.data.ran) return res.data;
    await sleep(50);
  }
  throw new Error("maintenance never ran");
}

/**
 * Pauses every other claimable job in the database, so that claims without job_id see only the
 * given jobs (earlier test files leave queued jobs behind).
 */
export async function isolateClaims(keep: string[]): Promise<void> {
  await testDb()`update jobs set status = 'paused'
                 where status in ('queued', 'running') and not (id = any(${`{${
    keep.join(",")
  }}`}::uuid[]))`;
}

/** Rows that still mention the job, per table (every table of the service with a job_id column). */
export async function rowsMentioningJob(jobId: string): Promise<Record<string, number>> {
  const tables = await testDb()`
    select c.table_schema || '.' || c.table_name as name
    from information_schema.columns c
    join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
    where c.column_name = 'job_id' and c.table_schema = 'job_service'
      and t.table_type = 'BASE TABLE'
    order by 1`;
  const counts: Record<string, number> = {};
  for (const { name } of tables) {
    const [{ n }] = await testDb().unsafe(
      `select count(*)::int as n from ${name} where job_id = $1`,
      [jobId],
    );
    counts[name] = n;
  }
  const [{ n }] = await testDb()`select count(*)::int as n from jobs where id = ${jobId}`;
  counts["job_service.jobs"] = n;
  return counts;
}
