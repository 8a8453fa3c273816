// runMaintenance: the timers (called by cron every minute); one run does the work at a time.
import type { Action } from "../../_shared/dispatcher.ts";
import { jsonb, withDb } from "../../_shared/db.ts";
import { sqlContext } from "../../_shared/context.ts";
import { RunMaintenanceData } from "../../_shared/job_schemas.ts";

export const runMaintenance: Action<typeof RunMaintenanceData> = {
  data: RunMaintenanceData,
  roles: ["service_role"],

  async handle(data, ctx) {
    const [{ result }] = await withDb((sql) =>
      sql`select batch_api.run_maintenance(${jsonb(sql, sqlContext(ctx))}, ${
        jsonb(sql, data)
      }) as result`
    );
    return { status: 200, body: { data: result } };
  },
};
