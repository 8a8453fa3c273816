// completeTask and completeTasks: one statement for the whole batch, each task judged alone;
// completeTasks with `claim` claims after the report, in the same transaction.
import { ApiError } from "../../_shared/errors.ts";
import type { Action, Context } from "../../_shared/dispatcher.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { runDueTimers } from "../due_timers.ts";
import {
  CompleteAnswer,
  CompleteTaskData,
  CompleteTasksData,
  CompleteTasksResult,
} from "../../_shared/task_schemas.ts";

type Items = { task_id: number; result?: unknown }[];

async function complete(ctx: Context, worker: string, items: Items) {
  const outcomes = await db.completeTasks({ ctx: sqlContext(ctx), worker, items });
  // the overdue timers after the report (at most once a second), never before it: a report is
  // judged under the lease it was sent with
  await runDueTimers(ctx);
  return outcomes;
}

export const completeTask: Action<typeof CompleteTaskData> = {
  data: CompleteTaskData,
  roles: ["service_role"],
  doc: {
    summary: "The lease holder reports success; a repeat by the same worker replays the answer.",
    responses: [{ status: 200, schema: CompleteAnswer, description: "The task succeeded." }],
  },

  async handle(data, ctx) {
    const [outcome] = await complete(ctx, data.worker_id, [
      { task_id: data.task_id, result: data.result },
    ]);
    if (outcome.status === "not_found") {
      throw new ApiError(404, "TASK_NOT_FOUND", "The task does not exist.", {
        task_id: data.task_id,
      });
    }
    if (outcome.status === "lost") {
      throw new ApiError(409, "LEASE_LOST", "This worker does not hold the task's lease.", {
        task_id: data.task_id,
      });
    }
    return { status: 200, body: { data: outcome } };
  },
};

export const completeTasks: Action<typeof CompleteTasksData> = {
  data: CompleteTasksData,
  roles: ["service_role"],
  doc: {
    summary:
      "Many completions in one statement, each task judged on its own; with `claim`, then a claim.",
    responses: [{
      status: 200,
      schema: CompleteTasksResult,
      description: "One answer per task.",
    }],
  },

  async handle(data, ctx) {
    if (!data.claim) {
      return {
        status: 200,
        body: { data: { tasks: await complete(ctx, data.worker_id, data.tasks) } },
      };
    }
    // the report, then the claim, in one transaction: one call and one commit per cycle
    const answer = await db.completeAndClaim({
      ctx: sqlContext(ctx),
      worker: data.worker_id,
      items: data.tasks,
      limit: data.claim.limit,
      job_id: data.claim.job_id ?? null,
      lease_ms: data.claim.lease_ms,
    });
    await runDueTimers(ctx);
    return { status: 200, body: { data: answer } };
  },
};
