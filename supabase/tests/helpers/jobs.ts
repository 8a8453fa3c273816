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
    from batch_api.invariant_violations(${jobIds ? `{${jobIds.join(",")}}` : null}::uuid[])`;
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
