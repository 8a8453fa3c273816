// claimTasks: up to `limit` tasks with a lease, under the engine's rules; [] when nothing may run.
import type { Action } from "../../_shared/dispatcher.ts";
import { jsonb, queryOne } from "../../_shared/db.ts";
import { sqlContext } from "../../_shared/context.ts";
import { ClaimTasksData } from "../../_shared/task_schemas.ts";

export const claimTasks: Action<typeof ClaimTasksData> = {
  data: ClaimTasksData,
  roles: ["service_role"],

  async handle(data, ctx) {
    const { result } = await queryOne(
      (sql) =>
        sql`select job_service_api.claim_tasks(${jsonb(sql, sqlContext(ctx))}, ${data.worker_id},
               ${data.limit}::integer, ${
          data.job_id ?? null
        }::uuid, ${data.lease_ms}::integer) as result`,
      "result",
    );
    return { status: 200, body: { data: result } };
  },
};
