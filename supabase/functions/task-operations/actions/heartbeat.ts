// heartbeat: extend leases, report usage; one answer per task (continue, stop, lost).
import type { Action } from "../../_shared/dispatcher.ts";
import { jsonb, queryOne } from "../../_shared/db.ts";
import { sqlContext } from "../../_shared/context.ts";
import { HeartbeatData } from "../../_shared/task_schemas.ts";

export const heartbeat: Action<typeof HeartbeatData> = {
  data: HeartbeatData,
  roles: ["service_role"],

  async handle(data, ctx) {
    const { tasks } = await queryOne(
      (sql) =>
        sql`select job_service_api.heartbeat(${jsonb(sql, sqlContext(ctx))}, ${data.worker_id},
                                     ${jsonb(sql, data.tasks)}) as tasks`,
      "tasks",
    );
    return { status: 200, body: { data: { tasks } } };
  },
};
