// getStats (service_role): queue depth, running tasks, throughput, errors by class, resource usage
// against limits, the notification outbox and maintenance, from one read-only SQL function.
import type { Action } from "../../_shared/dispatcher.ts";
import { queryOne } from "../../_shared/db.ts";
import { GetStatsData, type Stats } from "../../_shared/operations_schemas.ts";

export const getStats: Action<typeof GetStatsData> = {
  data: GetStatsData,
  roles: ["service_role"],

  async handle(data) {
    const { stats } = await queryOne(
      (sql) => sql`select job_service_api.get_stats(${data.window_minutes}::integer) as stats`,
      "stats",
    );
    return { status: 200, body: { data: stats as Stats } };
  },
};
