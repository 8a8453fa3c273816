// getStats (service_role): queue depth, running tasks, throughput, errors by class, resource usage
// against limits, the notification outbox and maintenance, from one read-only SQL function.
import type { Action } from "../../_shared/dispatcher.ts";
import * as db from "../../_shared/sql_api.ts";
import { GetStatsData, Stats } from "../../_shared/operations_schemas.ts";

export const getStats: Action<typeof GetStatsData> = {
  data: GetStatsData,
  roles: ["service_role"],
  doc: {
    summary: "Queue depth, throughput, errors by class, resources, outbox and maintenance.",
    responses: [{ status: 200, schema: Stats, description: "The figures, as of now." }],
  },

  async handle(data) {
    const stats = await db.getStats({ window_minutes: data.window_minutes });
    return { status: 200, body: { data: stats } };
  },
};
