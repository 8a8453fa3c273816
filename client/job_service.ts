// The typed client of the batch job service, for the web app (the dashboard), workers
// (examples/worker.ts) and the tests: one function per action of both functions, over supabase-js
// `functions.invoke`, so that the caller's session (or key) is sent as Supabase sends it. Request
// and answer types come from the zod schemas (supabase/functions/_shared/types.ts); every failure
// is a JobServiceError with the API's `code`, `details` and `request_id` and the HTTP status.
//
//   const jobs = new JobServiceClient(createClient(SUPABASE_URL, SUPABASE_PUBLISHABLE_KEY));
//   const job = await jobs.createJob({ product_id: "newsletter", sending_group_id: "g-42" });
import {
  FunctionsFetchError,
  FunctionsHttpError,
  FunctionsRelayError,
  type SupabaseClient,
} from "@supabase/supabase-js";
import type {
  ApiErrorBody,
  FunctionName,
  Functions,
  JobOperations,
  TaskOperations,
} from "../supabase/functions/_shared/types.ts";

export type * from "../supabase/functions/_shared/types.ts";

/**
 * A failed call. `code` is the API's error code (api.md), or one of the client's own when no
 * answer came: `NETWORK_ERROR` (status 0: the request did not reach the function) and
 * `UNEXPECTED_RESPONSE` (an answer that is not the API's error shape, e.g. from a proxy).
 */
export class JobServiceError extends Error {
  constructor(
    readonly status: number,
    /** an ErrorCode of the API (codes added to the API later are passed on as they come) */
    readonly code: string,
    message: string,
    readonly details: unknown = undefined,
    readonly request_id: string | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "JobServiceError";
  }
}

export interface CallOptions {
  signal?: AbortSignal;
  /**
   * sent as x-request-id (1..128 of [A-Za-z0-9._:-]): logged and audited as the client's id beside
   * the id the service gives every request (the one errors and x-request-id answers carry)
   */
  requestId?: string;
  headers?: Record<string, string>;
}

type Data<F extends FunctionName, A extends keyof Functions[F]> = Functions[F][A] extends
  { data: infer D } ? D : never;
type Answer<F extends FunctionName, A extends keyof Functions[F]> = Functions[F][A] extends
  { answer: infer R } ? R : never;

export class JobServiceClient {
  constructor(readonly supabase: SupabaseClient) {}

  /** Calls any action; the named methods below are this with their types. */
  async call<F extends FunctionName, A extends keyof Functions[F] & string>(
    fn: F,
    action: A,
    data: Data<F, A>,
    options: CallOptions = {},
  ): Promise<Answer<F, A>> {
    const headers = { ...options.headers };
    if (options.requestId) headers["x-request-id"] = options.requestId;
    const { data: body, error } = await this.supabase.functions.invoke(fn, {
      body: { action, data },
      headers,
      signal: options.signal,
    });
    if (error) throw await toError(error, options.signal);
    return (body as { data: Answer<F, A> }).data;
  }

  // ----- job-operations -----

  /** 201 with the new job, or 200 with the job an earlier request with this key created. */
  createJob(
    data: JobOperations["createJob"]["data"],
    options: CallOptions & { idempotencyKey?: string } = {},
  ): Promise<JobOperations["createJob"]["answer"]> {
    const headers = options.idempotencyKey
      ? { ...options.headers, "Idempotency-Key": options.idempotencyKey }
      : options.headers;
    return this.call("job-operations", "createJob", data, { ...options, headers });
  }

  updateBatchJob(
    data: JobOperations["updateBatchJob"]["data"],
    options?: CallOptions,
  ): Promise<JobOperations["updateBatchJob"]["answer"]> {
    return this.call("job-operations", "updateBatchJob", data, options);
  }

  /** `deleted: true` when the job is gone now; `deleted: false` while its running tasks stop. */
  deleteJob(
    data: JobOperations["deleteJob"]["data"],
    options?: CallOptions,
  ): Promise<JobOperations["deleteJob"]["answer"]> {
    return this.call("job-operations", "deleteJob", data, options);
  }

  getJob(
    data: JobOperations["getJob"]["data"],
    options?: CallOptions,
  ): Promise<JobOperations["getJob"]["answer"]> {
    return this.call("job-operations", "getJob", data, options);
  }

  listJobs(
    data: JobOperations["listJobs"]["data"] = {},
    options?: CallOptions,
  ): Promise<JobOperations["listJobs"]["answer"]> {
    return this.call("job-operations", "listJobs", data, options);
  }

  runMaintenance(
    data: JobOperations["runMaintenance"]["data"] = {},
    options?: CallOptions,
  ): Promise<JobOperations["runMaintenance"]["answer"]> {
    return this.call("job-operations", "runMaintenance", data, options);
  }

  getStats(
    data: JobOperations["getStats"]["data"] = {},
    options?: CallOptions,
  ): Promise<JobOperations["getStats"]["answer"]> {
    return this.call("job-operations", "getStats", data, options);
  }

  setGroupRateLimit(
    data: JobOperations["setGroupRateLimit"]["data"],
    options?: CallOptions,
  ): Promise<JobOperations["setGroupRateLimit"]["answer"]> {
    return this.call("job-operations", "setGroupRateLimit", data, options);
  }

  setUserLimits(
    data: JobOperations["setUserLimits"]["data"],
    options?: CallOptions,
  ): Promise<JobOperations["setUserLimits"]["answer"]> {
    return this.call("job-operations", "setUserLimits", data, options);
  }

  // ----- task-operations (service only) -----

  addTasks(
    data: TaskOperations["addTasks"]["data"],
    options?: CallOptions,
  ): Promise<TaskOperations["addTasks"]["answer"]> {
    return this.call("task-operations", "addTasks", data, options);
  }

  claimTasks(
    data: TaskOperations["claimTasks"]["data"],
    options?: CallOptions,
  ): Promise<TaskOperations["claimTasks"]["answer"]> {
    return this.call("task-operations", "claimTasks", data, options);
  }

  heartbeat(
    data: TaskOperations["heartbeat"]["data"],
    options?: CallOptions,
  ): Promise<TaskOperations["heartbeat"]["answer"]> {
    return this.call("task-operations", "heartbeat", data, options);
  }

  completeTask(
    data: TaskOperations["completeTask"]["data"],
    options?: CallOptions,
  ): Promise<TaskOperations["completeTask"]["answer"]> {
    return this.call("task-operations", "completeTask", data, options);
  }

  completeTasks(
    data: TaskOperations["completeTasks"]["data"],
    options?: CallOptions,
  ): Promise<TaskOperations["completeTasks"]["answer"]> {
    return this.call("task-operations", "completeTasks", data, options);
  }

  failTask(
    data: TaskOperations["failTask"]["data"],
    options?: CallOptions,
  ): Promise<TaskOperations["failTask"]["answer"]> {
    return this.call("task-operations", "failTask", data, options);
  }
}

/** What supabase-js reported, as a JobServiceError (an abort stays the caller's abort). */
async function toError(error: unknown, signal?: AbortSignal): Promise<unknown> {
  if (signal?.aborted) return signal.reason;
  if (error instanceof FunctionsHttpError || error instanceof FunctionsRelayError) {
    const response = error.context as Response;
    const headerId = response.headers.get("x-request-id");
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      body = undefined;
    }
    const apiError = (body as Partial<ApiErrorBody> | undefined)?.error;
    if (apiError && typeof apiError.code === "string") {
      return new JobServiceError(
        response.status,
        apiError.code,
        apiError.message ?? apiError.code,
        apiError.details,
        apiError.request_id ?? headerId,
      );
    }
    return new JobServiceError(
      response.status,
      "UNEXPECTED_RESPONSE",
      `HTTP ${response.status} without an API error body.`,
      undefined,
      headerId,
    );
  }
  if (error instanceof FunctionsFetchError) {
    return new JobServiceError(
      0,
      "NETWORK_ERROR",
      "The service could not be reached.",
      undefined,
      null,
      {
        cause: error.context,
      },
    );
  }
  return error;
}
