// getJob: one job (own jobs only for users), optionally with its recent errors and events.
import type { Action } from "../../_shared/dispatcher.ts";
import { jsonb, queryOne } from "../../_shared/db.ts";
import { sqlContext } from "../../_shared/context.ts";
import { GetJobData } from "../../_shared/job_schemas.ts";

export const getJob: Action<typeof GetJobData> = {
  data: GetJobData,
  roles: ["authenticated", "service_role"],

  async handle(data, ctx) {
    const include = data.include ?? [];
    const row = await queryOne((sql) =>
      sql`select job_service_api.get_job(
        ${jsonb(sql, sqlContext(ctx))},
        ${data.job_id}::uuid,
        ${include.includes("errors")},
        ${include.includes("events")}
      ) as job`, "job");
    return { status: 200, body: { data: row.job } };
  },
};
