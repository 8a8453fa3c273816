// deleteJob: 200 when the job is gone now, 202 while a safe stop lets its running tasks end.
import type { Action } from "../../_shared/dispatcher.ts";
import { jsonb, queryOne } from "../../_shared/db.ts";
import { sqlContext } from "../../_shared/context.ts";
import { DeleteJobData, type DeleteJobResult } from "../../_shared/job_schemas.ts";

export const deleteJob: Action<typeof DeleteJobData> = {
  data: DeleteJobData,
  roles: ["authenticated", "service_role"],

  async handle(data, ctx) {
    const { result } = await queryOne(
      (sql) =>
        sql`select job_service_api.delete_job(${jsonb(sql, sqlContext(ctx))}, ${data.job_id}::uuid,
                                      ${data.force}) as result`,
      "result",
    );
    const outcome = result as DeleteJobResult;
    return { status: outcome.deleted ? 200 : 202, body: { data: outcome } };
  },
};
