// setGroupRateLimit: the start-rate limit shared by all jobs of a sending group (service only).
import type { Action } from "../../_shared/dispatcher.ts";
import { jsonb, queryOne } from "../../_shared/db.ts";
import { sqlContext } from "../../_shared/context.ts";
import { SetGroupRateLimitData } from "../../_shared/job_schemas.ts";

export const setGroupRateLimit: Action<typeof SetGroupRateLimitData> = {
  data: SetGroupRateLimitData,
  roles: ["service_role"],

  async handle(data, ctx) {
    const { result } = await queryOne(
      (sql) =>
        sql`select job_service_api.set_group_rate_limit(${
          jsonb(sql, sqlContext(ctx))
        }, ${data.sending_group_id},
               ${data.max_per_second}::numeric, ${data.burst ?? null}::integer) as result`,
      "result",
    );
    return { status: 200, body: { data: result } };
  },
};
