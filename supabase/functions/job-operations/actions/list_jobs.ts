// listJobs: newest first, keyset-paginated with signed cursors.
import { ApiError } from "../../_shared/errors.ts";
import type { Action } from "../../_shared/dispatcher.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { isRecord } from "../../_shared/validation.ts";
import { decodeCursor, encodeCursor } from "../cursor.ts";
import { JobList, ListJobsData } from "../../_shared/job_schemas.ts";

export const listJobs: Action<typeof ListJobsData> = {
  data: ListJobsData,
  roles: ["authenticated", "service_role"],
  doc: {
    summary: "Jobs newest first, filtered, keyset-paginated with an opaque cursor.",
    responses: [{ status: 200, schema: JobList, description: "A page of jobs." }],
  },

  authorize(raw, caller) {
    if (caller.role !== "service_role" && isRecord(raw) && raw.user_id !== undefined) {
      throw new ApiError(403, "FORBIDDEN", "Only the service may list another user's jobs.");
    }
  },

  async handle(data, ctx) {
    const filter = {
      status: data.status,
      product_id: data.product_id,
      sending_group_id: data.sending_group_id,
      user_id: data.user_id,
      limit: data.limit,
      after: data.cursor === undefined ? undefined : await decodeCursor(data.cursor),
    };
    const page = await db.listJobs({ ctx: sqlContext(ctx), filter });
    return {
      status: 200,
      body: {
        data: { jobs: page.jobs, next_cursor: page.next ? await encodeCursor(page.next) : null },
      },
    };
  },
};
