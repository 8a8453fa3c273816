// getJob: one job (own jobs only for users), optionally with its recent errors and events.
import type { Action } from "../../_shared/dispatcher.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { GetJobData, JobWithHistory } from "../../_shared/job_schemas.ts";

export const getJob: Action<typeof GetJobData> = {
  data: GetJobData,
  roles: ["authenticated", "service_role"],
  doc: {
    summary: "One job; include errors (last 50) and events (last 100) on request.",
    responses: [{ status: 200, schema: JobWithHistory, description: "The job." }],
  },

  async handle(data, ctx) {
    const include = data.include ?? [];
    const job = await db.getJob({
      ctx: sqlContext(ctx),
      job_id: data.job_id,
      with_errors: include.includes("errors"),
      with_events: include.includes("events"),
    });
    return { status: 200, body: { data: job } };
  },
};
