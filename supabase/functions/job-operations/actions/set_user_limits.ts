// setUserLimits: a user's quotas (api.md, "Quotas"), enforced by the database on that user's
// createJob and recovery (service only; the change is audited).
import type { Action } from "../../_shared/dispatcher.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { SetUserLimitsData, UserLimits } from "../../_shared/job_schemas.ts";

export const setUserLimits: Action<typeof SetUserLimitsData> = {
  data: SetUserLimitsData,
  roles: ["service_role"],
  doc: {
    summary: "Sets a user's quotas: highest priority, active jobs and unfinished tasks " +
      "(null = no limit; an omitted field keeps its value).",
    responses: [{ status: 200, schema: UserLimits, description: "The user's limits." }],
  },

  async handle(data, ctx) {
    const { user_id, ...limits } = data;
    const result = await db.setUserLimits({
      ctx: sqlContext(ctx),
      user_id,
      limits,
    });
    return { status: 200, body: { data: result } };
  },
};
