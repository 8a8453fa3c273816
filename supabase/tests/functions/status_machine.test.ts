// The status machine over HTTP: every move a caller may request is accepted and lands where the
// machine says; every other (state, request) pair, generated from the machine itself, is 409
// INVALID_TRANSITION listing exactly what is allowed, and changes nothing.
import assert from "node:assert/strict";
import { asUser, type Caller, test } from "../helpers/service.ts";
import { claim, createJob, getJob, tasks, update } from "../helpers/jobs.ts";
import type { BatchJob, JobStatus } from "../../functions/_shared/job_schemas.ts";
import { JOB_STATUSES } from "../../functions/_shared/job_statuses.ts";
import {
  decideRequest,
  type Edge,
  GUARDS,
  type JobFacts,
  machineEdges,
} from "../../functions/_shared/job_machine.ts";

interface Setup {
  caller: Caller;
  job: BatchJob;
}

function factsOf(job: BatchJob): JobFacts {
  return {
    status: job.status,
    tasks: job.tasks,
    attempt: job.attempt,
    max_attempts: job.retry_config.max_attempts,
    retry_on_errors: job.retry_config.retry_on_errors,
    next_attempt_at: job.next_attempt_at ? Date.parse(job.next_attempt_at) : null,
  };
}

async function move(
  caller: Caller,
  job: BatchJob,
  status: JobStatus,
  extra: Record<string, unknown> = {},
) {
  const res = await update(caller, { job_id: job.id, status, ...extra });
  assert.equal(res.status, 200, `${job.status} → ${status}: ${JSON.stringify(res.error)}`);
  return res.data;
}

/**
 * A job of the caller in `state`, reached through the API. With `runningTask`, one of its tasks is
 * held by a worker (the job has a second task that stays pending).
 */
async function jobIn(state: JobStatus, runningTask: boolean): Promise<Setup> {
  const caller = await asUser();
  const withTasks = runningTask;
  let job = await createJob(caller, {
    start: state !== "pending",
    max_parallel_tasks: 1,
    retry_config: { max_attempts: 3, retry_interval: 60_000, retry_on_errors: ["TIMEOUT"] },
    ...(withTasks ? { tasks: tasks(2) } : {}),
  });
  if (state === "pending" || (state === "queued" && !runningTask)) return { caller, job };
  if (runningTask) {
    const claimed = await claim(`worker-${job.id}`, 1, { job_id: job.id });
    assert.equal(claimed.length, 1);
    job = await getJob(caller, job.id);
  } else {
    job = await move(caller, job, "running");
  }
  switch (state) {
    case "queued":
      job = await move(caller, job, "paused");
      job = await move(caller, job, "queued");
      break;
    case "running":
      break;
    case "paused":
      job = await move(caller, job, "paused");
      break;
    case "retrying":
      job = await move(caller, job, "failed", {
        error_details: { code: "TIMEOUT", message: "slow" },
      });
      break;
    case "failed":
      job = await move(caller, job, "failed");
      break;
    case "cancelling":
      assert.ok(runningTask, "a cancelling job has a running task");
      job = await move(caller, job, "cancelled");
      break;
    case "completed":
      job = await move(caller, job, "completed");
      break;
    case "cancelled":
      job = await move(caller, job, "cancelled");
      break;
  }
  assert.equal(job.status, state);
  return { caller, job };
}

/** The request(s) that fire an edge's event, and what a request needs for the edge's guard. */
function requestsFor(edge: Edge): { status: JobStatus; extra: Record<string, unknown> }[] {
  const status = edge.event.slice("to.".length) as JobStatus;
  if (status === "cancelled") {
    return [{ status: "cancelled", extra: {} }, { status: "cancelling", extra: {} }];
  }
  if (edge.guard === "retryAllowed") {
    return [{ status, extra: { error_details: { code: "TIMEOUT", message: "timed out" } } }];
  }
  return [{ status, extra: {} }];
}

const callerEdges = machineEdges().filter((e) => e.event.startsWith("to."));

test("the machine has guards in the database for every guarded edge", () => {
  for (const edge of machineEdges()) {
    if (edge.guard) assert.ok(edge.guard in GUARDS, edge.guard);
  }
  assert.ok(callerEdges.length >= 15);
  return Promise.resolve();
});

for (const edge of callerEdges) {
  for (const request of requestsFor(edge)) {
    const name = `allowed: ${edge.from} → ${edge.to} (request ${request.status}${
      edge.guard ? `, ${edge.guard}` : ""
    })`;
    test(name, async () => {
      const { caller, job } = await jobIn(edge.from, edge.guard === "hasRunningTasks");
      const res = await update(caller, {
        job_id: job.id,
        status: request.status,
        ...request.extra,
      });
      assert.equal(res.status, 200, JSON.stringify(res.error));
      assert.equal(res.data.status, edge.to);
      assert.equal((await getJob(caller, job.id)).status, edge.to);
    });
  }
}

// One job per state; every request the machine refuses there is tried on it.
const setups: [JobStatus, boolean][] = [
  ...JOB_STATUSES.filter((s) => s !== "cancelling").map((s) => [s, false] as [JobStatus, boolean]),
  ["cancelling", true],
  ["running", true],
  ["paused", true],
];

for (const [state, runningTask] of setups) {
  test(`refused: every disallowed request from ${state}${runningTask ? " with a running task" : ""}`, async () => {
    const { caller, job } = await jobIn(state, runningTask);
    const facts = factsOf(job);
    let refused = 0;
    for (const requested of JOB_STATUSES) {
      const decision = decideRequest(facts, requested);
      if (decision.ok) continue;
      refused++;
      const res = await update(caller, { job_id: job.id, status: requested });
      assert.equal(res.status, 409, `${state} → ${requested}`);
      assert.equal(res.error?.code, "INVALID_TRANSITION");
      assert.deepEqual(res.error?.details, {
        from: state,
        to: requested,
        allowed: decision.allowed,
      });
    }
    assert.ok(refused >= 2, "pending and retrying are never accepted");
    const after = await getJob(caller, job.id);
    assert.equal(after.status, state);
    assert.equal(after.updated_at, job.updated_at, "a refused request changes nothing");
  });
}
