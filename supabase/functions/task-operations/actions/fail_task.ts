// failTask: the lease holder reports a failure; the retry policy (or a stop) decides what follows.
import type { Action } from "../../_shared/dispatcher.ts";
import { jsonb, queryOne } from "../../_shared/db.ts";
import { sqlContext } from "../../_shared/context.ts";
import { LIMITS } from "../../_shared/job_schemas.ts";
import { FailTaskData } from "../../_shared/task_schemas.ts";
import { truncateUtf8 } from "../../_shared/validation.ts";

export const failTask: Action<typeof FailTaskData> = {
  data: FailTaskData,
  roles: ["service_role"],

  async handle(data, ctx) {
    const error = {
      ...data.error,
      stack: data.error.stack === undefined
        ? undefined
        : truncateUtf8(data.error.stack, LIMITS.stackBytes),
    };
    const { result } = await queryOne(
      (sql) =>
        sql`select job_service_api.fail_task(${jsonb(sql, sqlContext(ctx))}, ${data.worker_id},
                                     ${data.task_id}::bigint, ${jsonb(sql, error)}) as result`,
      "result",
    );
    return { status: 200, body: { data: result } };
  },
};
