// setGroupRateLimit: the start-rate limit shared by all jobs of a sending group (service only).
import type { Action } from "../../_shared/dispatcher.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { GroupRateLimit, SetGroupRateLimitData } from "../../_shared/job_schemas.ts";

export const setGroupRateLimit: Action<typeof SetGroupRateLimitData> = {
  data: SetGroupRateLimitData,
  roles: ["service_role"],
  doc: {
    summary: "Sets or removes the start-rate limit shared by the jobs of a sending group.",
    responses: [{ status: 200, schema: GroupRateLimit, description: "The stored limit." }],
  },

  async handle(data, ctx) {
    const result = await db.setGroupRateLimit({
      ctx: sqlContext(ctx),
      sending_group_id: data.sending_group_id,
      max_per_second: data.max_per_second,
      burst: data.burst ?? null,
    });
    return { status: 200, body: { data: result } };
  },
};
