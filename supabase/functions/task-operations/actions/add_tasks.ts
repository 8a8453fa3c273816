// addTasks: more tasks for a job that still takes them.
import type { Action } from "../../_shared/dispatcher.ts";
import { MAX_BODY_BYTES } from "../../_shared/request_body.ts";
import { jsonb, queryOne } from "../../_shared/db.ts";
import { sqlContext } from "../../_shared/context.ts";
import { AddTasksData } from "../../_shared/task_schemas.ts";

export const addTasks: Action<typeof AddTasksData> = {
  data: AddTasksData,
  roles: ["service_role"],
  maxBytes: MAX_BODY_BYTES,

  async handle(data, ctx) {
    const { result } = await queryOne(
      (sql) =>
        sql`select job_service_api.add_tasks(${jsonb(sql, sqlContext(ctx))}, ${data.job_id}::uuid,
                                     ${jsonb(sql, data.tasks)}) as result`,
      "result",
    );
    return { status: 201, body: { data: result } };
  },
};
