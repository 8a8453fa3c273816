// deleteJob: 200 when the job is gone now, 202 while a safe stop lets its running tasks end.
import type { Action } from "../../_shared/dispatcher.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { DeleteJobData, DeleteJobResult } from "../../_shared/job_schemas.ts";

export const deleteJob: Action<typeof DeleteJobData> = {
  data: DeleteJobData,
  roles: ["authenticated", "service_role"],
  doc: {
    summary: "Deletes a job now, or once its running tasks have stopped (safe stop).",
    responses: [
      { status: 200, schema: DeleteJobResult, description: "The job and its rows are deleted." },
      {
        status: 202,
        schema: DeleteJobResult,
        description: "Safe stop: the job is cancelling and is deleted when its last task ends.",
      },
    ],
  },

  async handle(data, ctx) {
    const outcome = await db.deleteJob({
      ctx: sqlContext(ctx),
      job_id: data.job_id,
      force: data.force,
    });
    return { status: outcome.deleted ? 200 : 202, body: { data: outcome } };
  },
};
