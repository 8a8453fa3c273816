// claimTasks: up to `limit` tasks with a lease, under the engine's rules; [] when nothing may run.
import type { Action } from "../../_shared/dispatcher.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { ClaimTasksData, ClaimTasksResult } from "../../_shared/task_schemas.ts";
import { runDueTimers } from "../due_timers.ts";

export const claimTasks: Action<typeof ClaimTasksData> = {
  data: ClaimTasksData,
  roles: ["service_role"],
  doc: {
    summary: "Up to `limit` tasks with a lease, under the engine's rules; empty when none may run.",
    responses: [{ status: 200, schema: ClaimTasksResult, description: "The claimed tasks." }],
  },

  async handle(data, ctx) {
    // first the overdue timers (at most once a second): a lease that ran out is claimable again in
    // this very claim, even where no maintenance schedule runs
    await runDueTimers(ctx);
    const result = await db.claimTasks({
      ctx: sqlContext(ctx),
      worker: data.worker_id,
      limit: data.limit,
      job_id: data.job_id ?? null,
      lease_ms: data.lease_ms,
    });
    return { status: 200, body: { data: result } };
  },
};
