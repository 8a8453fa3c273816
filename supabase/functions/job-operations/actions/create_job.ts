// createJob: the job and all its tasks in one transaction; idempotent per owner and key.
import { ApiError, validationError } from "../../_shared/errors.ts";
import type { Action } from "../../_shared/dispatcher.ts";
import { MAX_BODY_BYTES } from "../../_shared/request_body.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { isRecord } from "../../_shared/validation.ts";
import { canonicalJson, sha256Hex } from "../canonical_json.ts";
import {
  BatchJob,
  CreateJobData,
  DEFAULT_RETRY,
  defaultMaxRetryInterval,
} from "../../_shared/job_schemas.ts";

export const createJob: Action<typeof CreateJobData> = {
  data: CreateJobData,
  roles: ["authenticated", "service_role"],
  doc: {
    summary: "A job and up to 10 000 tasks in one transaction; idempotent per owner and key.",
    responses: [
      { status: 201, schema: BatchJob, description: "The job, created with its tasks." },
      {
        status: 200,
        schema: BatchJob,
        description: "Replay: the job an earlier request with this idempotency key created.",
      },
    ],
  },
  maxBytes: MAX_BODY_BYTES,

  authorize(raw, caller) {
    if (
      caller.role === "authenticated" && isRecord(raw) && raw.user_id !== undefined &&
      (typeof raw.user_id !== "string" || raw.user_id.toLowerCase() !== caller.userId)
    ) {
      throw new ApiError(403, "FORBIDDEN", "A user may only create jobs for itself.");
    }
  },

  withHeaders(raw, request) {
    const header = request.headers.get("idempotency-key");
    if (header === null || !isRecord(raw)) return raw;
    if (raw.idempotency_key !== undefined && raw.idempotency_key !== header) {
      throw validationError([{
        path: "data.idempotency_key",
        message: "Differs from the Idempotency-Key header.",
      }]);
    }
    return { ...raw, idempotency_key: header };
  },

  async handle(data, ctx) {
    const owner = ctx.caller.role === "authenticated" ? ctx.caller.userId : data.user_id;
    if (!owner) {
      throw validationError([{
        path: "data.user_id",
        message: "Required for service_role callers.",
      }]);
    }
    const retry = data.retry_config ?? DEFAULT_RETRY;
    const job = {
      user_id: owner.toLowerCase(),
      product_id: data.product_id,
      sending_group_id: data.sending_group_id,
      priority: data.priority,
      max_parallel_tasks: data.max_parallel_tasks,
      retry_config: {
        max_attempts: retry.max_attempts,
        retry_interval: retry.retry_interval,
        // absent: the error catalogue's transient codes (decided in the database)
        retry_on_errors: data.retry_config?.retry_on_errors,
        backoff: retry.backoff ?? "fixed",
        max_retry_interval: data.retry_config?.max_retry_interval ??
          defaultMaxRetryInterval(retry.retry_interval),
      },
      resource_limits: data.resource_limits ?? null,
      rate_limit: data.rate_limit ?? null,
      start: data.start,
      metadata: data.metadata ?? {},
    };
    const key = data.idempotency_key ?? null;
    const requestHash = key === null ? null : await sha256Hex(canonicalJson(
      Object.fromEntries(
        Object.entries(ctx.rawData as Record<string, unknown>).filter(([k]) =>
          k !== "idempotency_key"
        ),
      ),
    ));

    const result = await db.createJob({
      ctx: sqlContext(ctx),
      job,
      tasks: data.tasks ?? [],
      idempotency_key: key,
      request_hash: requestHash,
    });
    return { status: result.created ? 201 : 200, body: { data: result.job } };
  },
};
