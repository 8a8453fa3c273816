// The dashboard's job actions (dashboard/job_actions.ts) from each status, as the status machine
// allows them: what the page offers is what the function would accept from the same facts.
import assert from "node:assert/strict";
import { actionsFor, factsOf } from "../../../dashboard/job_actions.ts";
import { decideRequest } from "../../functions/_shared/job_machine.ts";
import type { BatchJob, JobStatus } from "../../functions/_shared/types.ts";

function job(status: JobStatus, tasks: Partial<BatchJob["tasks"]> = {}): BatchJob {
  const counts = {
    total: 4,
    pending: 4,
    running: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
    ...tasks,
  };
  return {
    id: "00000000-0000-4000-8000-000000000009",
    status,
    product_id: "p",
    sending_group_id: "g",
    user_id: "00000000-0000-4000-8000-000000000001",
    priority: 50,
    max_parallel_tasks: 10,
    retry_config: {
      max_attempts: 3,
      retry_interval: 60_000,
      retry_on_errors: ["TIMEOUT"],
      backoff: "fixed",
      max_retry_interval: 3_600_000,
    },
    resource_limits: null,
    detailed_status: {
      current_phase: "created",
      progress_percentage: 0,
      active_tasks: 0,
      error_count: 0,
    },
    tasks: counts,
    attempt: 1,
    next_attempt_at: status === "retrying" ? new Date(Date.now() + 60_000).toISOString() : null,
    last_error: null,
    rate_limit: null,
    sending_group_rate_limit: null,
    metadata: {},
    created_at: new Date().toISOString(),
    updated_at: new Date().toISOString(),
    started_at: null,
    finished_at: null,
  };
}

const labels = (j: BatchJob) => actionsFor(j).map((a) => a.label);

Deno.test("the dashboard offers the moves the status machine allows from each status", () => {
  const running = { pending: 2, running: 2 };
  const cases: [BatchJob, string[]][] = [
    [job("pending"), ["Start", "Cancel", "Delete"]],
    [job("queued"), ["Pause", "Cancel", "Delete"]],
    [job("running", running), ["Pause", "Cancel", "Delete", "Force delete"]],
    [job("paused"), ["Resume", "Cancel", "Delete"]],
    [job("paused", running), ["Resume", "Cancel", "Delete", "Force delete"]],
    [job("retrying"), ["Cancel", "Delete"]],
    [job("cancelling", running), ["Delete", "Force delete"]],
    [job("failed", { pending: 0, failed: 1, succeeded: 3 }), ["Recover", "Cancel", "Delete"]],
    [job("completed", { pending: 0, succeeded: 4 }), ["Delete"]],
    [job("cancelled", { pending: 0, cancelled: 4 }), ["Delete"]],
  ];
  for (const [j, expected] of cases) {
    assert.deepEqual(labels(j), expected, `${j.status} with ${JSON.stringify(j.tasks)}`);
  }
});

Deno.test("every move the dashboard offers is one the function accepts from the same facts", () => {
  const targets: Record<string, JobStatus> = {
    start: "queued",
    resume: "queued",
    recover: "queued",
    pause: "paused",
    cancel: "cancelled",
  };
  for (
    const status of [
      "pending",
      "queued",
      "running",
      "paused",
      "retrying",
      "cancelling",
      "failed",
      "completed",
      "cancelled",
    ] as const
  ) {
    for (const running of [0, 2]) {
      const j = job(status, { pending: 2, running });
      for (const action of actionsFor(j)) {
        const target = targets[action.id];
        if (!target) continue; // delete and force delete: every status
        assert.equal(decideRequest(factsOf(j), target).ok, true, `${status}: ${action.label}`);
      }
    }
  }
});
