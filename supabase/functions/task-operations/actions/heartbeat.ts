// heartbeat: extend leases, report usage; one answer per task (continue, stop, lost).
import type { Action } from "../../_shared/dispatcher.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { HeartbeatData, HeartbeatResult } from "../../_shared/task_schemas.ts";

export const heartbeat: Action<typeof HeartbeatData> = {
  data: HeartbeatData,
  roles: ["service_role"],
  doc: {
    summary: "Extends the worker's leases and reports usage; one answer per task.",
    responses: [{ status: 200, schema: HeartbeatResult, description: "continue, stop or lost." }],
  },

  async handle(data, ctx) {
    const tasks = await db.heartbeat({
      ctx: sqlContext(ctx),
      worker: data.worker_id,
      items: data.tasks,
    });
    return { status: 200, body: { data: { tasks } } };
  },
};
