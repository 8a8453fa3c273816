// addTasks: more tasks for a job that still takes them.
import type { Action } from "../../_shared/dispatcher.ts";
import { MAX_BODY_BYTES } from "../../_shared/request_body.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { AddTasksData, AddTasksResult } from "../../_shared/task_schemas.ts";

export const addTasks: Action<typeof AddTasksData> = {
  data: AddTasksData,
  roles: ["service_role"],
  doc: {
    summary: "Appends up to 10 000 tasks to a job that still takes them.",
    responses: [{ status: 201, schema: AddTasksResult, description: "Tasks added." }],
  },
  maxBytes: MAX_BODY_BYTES,

  async handle(data, ctx) {
    const result = await db.addTasks({
      ctx: sqlContext(ctx),
      job_id: data.job_id,
      tasks: data.tasks,
    });
    return { status: 201, body: { data: result } };
  },
};
