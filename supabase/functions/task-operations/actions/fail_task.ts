// failTask: the lease holder reports a failure; the retry policy (or a stop) decides what follows.
import type { Action } from "../../_shared/dispatcher.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { runDueTimers } from "../due_timers.ts";
import { LIMITS } from "../../_shared/job_schemas.ts";
import { FailAnswer, FailTaskData } from "../../_shared/task_schemas.ts";
import { truncateUtf8 } from "../../_shared/validation.ts";

export const failTask: Action<typeof FailTaskData> = {
  data: FailTaskData,
  roles: ["service_role"],
  doc: {
    summary: "The lease holder reports a failure; the retry policy decides what follows.",
    responses: [{ status: 200, schema: FailAnswer, description: "Where the task went." }],
  },

  async handle(data, ctx) {
    const error = {
      ...data.error,
      stack: data.error.stack === undefined
        ? undefined
        : truncateUtf8(data.error.stack, LIMITS.stackBytes),
    };
    const result = await db.failTask({
      ctx: sqlContext(ctx),
      worker: data.worker_id,
      task_id: data.task_id,
      error,
    });
    // the overdue timers after the report (at most once a second), as completions run them
    await runDueTimers(ctx);
    return { status: 200, body: { data: result } };
  },
};
