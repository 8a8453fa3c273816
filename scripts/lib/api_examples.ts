// Examples of every action for the published API (docs/api.md, docs/openapi.json). A test checks
// each request against the function's request schema and each answer against its response schema,
// so an example can never drift from the code.
import { BatchJob } from "../../supabase/functions/_shared/job_schemas.ts";

export interface ActionExample {
  title?: string;
  data: Record<string, unknown>;
  status: number;
  response: unknown;
}

const USER_ID = "00000000-0000-4000-8000-000000000001";
const JOB_ID = "7f9c2b1e-4d3a-4c5b-9e8f-1a2b3c4d5e6f";
const OTHER_JOB_ID = "1c6e8a52-9b0d-4f7e-8a31-5d2c4b6a7e90";
const CREATED = "2026-11-28T09:00:00.000Z";
const WORKER = "worker-eu-1";

/** A job in the key order of the BatchJob schema (fields the example leaves out are null). */
function job(fields: Record<string, unknown>): Record<string, unknown> {
  const base: Record<string, unknown> = {
    id: JOB_ID,
    status: "queued",
    product_id: "newsletter",
    sending_group_id: "group-42",
    user_id: USER_ID,
    priority: 80,
    max_parallel_tasks: 20,
    retry_config: {
      max_attempts: 3,
      retry_interval: 60_000,
      retry_on_errors: ["TIMEOUT", "RATE_LIMITED"],
      backoff: "exponential",
      max_retry_interval: 3_600_000,
    },
    resource_limits: null,
    detailed_status: {
      current_phase: "created",
      progress_percentage: 0,
      active_tasks: 0,
      error_count: 0,
    },
    tasks: { total: 2, pending: 2, running: 0, succeeded: 0, failed: 0, cancelled: 0 },
    attempt: 1,
    next_attempt_at: null,
    last_error: null,
    metadata: { campaign: "spring" },
    created_at: CREATED,
    updated_at: CREATED,
    started_at: null,
    finished_at: null,
    ...fields,
  };
  return Object.fromEntries(Object.keys(BatchJob.shape).map((key) => [key, base[key] ?? null]));
}

const failedOnce = {
  code: "TIMEOUT",
  category: "transient",
  message: "The provider did not answer within 30 s.",
  at: "2026-11-28T09:05:00.000Z",
};

export const EXAMPLES: Record<string, ActionExample[]> = {
  createJob: [{
    data: {
      product_id: "newsletter",
      sending_group_id: "group-42",
      priority: 80,
      max_parallel_tasks: 20,
      retry_config: {
        max_attempts: 3,
        retry_interval: 60_000,
        retry_on_errors: ["TIMEOUT", "RATE_LIMITED"],
        backoff: "exponential",
      },
      tasks: [{ payload: { to: "a@example.com" } }, { payload: { to: "b@example.com" } }],
      metadata: { campaign: "spring" },
      idempotency_key: "spring-campaign-1",
    },
    status: 201,
    response: job({}),
  }],
  updateBatchJob: [{
    title: "a failure the retry policy retries",
    data: {
      job_id: JOB_ID,
      status: "failed",
      error_details: { code: "TIMEOUT", message: "The provider did not answer within 30 s." },
    },
    status: 200,
    response: job({
      status: "retrying",
      next_attempt_at: "2026-11-28T09:06:00.000Z",
      detailed_status: {
        current_phase: "created",
        progress_percentage: 0,
        active_tasks: 0,
        error_count: 1,
      },
      last_error: failedOnce,
      updated_at: "2026-11-28T09:05:00.000Z",
      started_at: "2026-11-28T09:00:01.000Z",
    }),
  }],
  deleteJob: [
    {
      title: "no task running: deleted now",
      data: { job_id: JOB_ID },
      status: 200,
      response: {
        job_id: JOB_ID,
        deleted: true,
        tasks_deleted: 2,
        errors_deleted: 0,
        events_deleted: 1,
      },
    },
    {
      title: "tasks running: safe stop",
      data: { job_id: OTHER_JOB_ID, force: false },
      status: 202,
      response: { job_id: OTHER_JOB_ID, deleted: false, status: "cancelling", deletion: "pending" },
    },
  ],
  getJob: [{
    data: { job_id: JOB_ID, include: ["errors"] },
    status: 200,
    response: {
      ...job({
        status: "running",
        detailed_status: {
          current_phase: "sending",
          progress_percentage: 50,
          active_tasks: 1,
          error_count: 1,
        },
        tasks: { total: 2, pending: 0, running: 1, succeeded: 1, failed: 0, cancelled: 0 },
        last_error: failedOnce,
        updated_at: "2026-11-28T09:05:00.000Z",
        started_at: "2026-11-28T09:00:01.000Z",
      }),
      errors: [{
        id: 17,
        task_id: 4712,
        attempt: 1,
        code: "TIMEOUT",
        category: "transient",
        message: "The provider did not answer within 30 s.",
        stack: null,
        request_id: "b3f1c0de-2a4b-4c6d-8e9f-0a1b2c3d4e5f",
        created_at: "2026-11-28T09:05:00.000Z",
      }],
    },
  }],
  listJobs: [{
    data: { status: ["queued", "running"], limit: 1 },
    status: 200,
    response: {
      jobs: [job({})],
      next_cursor: "WyIyMDI2LTExLTI4VDA5OjAwOjAwLjAwMDAwMFoiLCI3ZjljIl0.q5bXy2",
    },
  }],
  runMaintenance: [{
    data: {},
    status: 200,
    response: {
      ran: true,
      leases_expired: 1,
      retries_started: 2,
      jobs_cancelled: 0,
      notifications_delivered: 3,
      notifications_retrying: 1,
      notifications_failed: 0,
      notifications_purged: 0,
      jobs_purged: 12,
    },
  }],
  getStats: [{
    data: { window_minutes: 15 },
    status: 200,
    response: {
      generated_at: "2026-11-28T09:10:00.000Z",
      jobs: {
        by_status: {
          pending: 1,
          queued: 3,
          running: 5,
          paused: 0,
          retrying: 1,
          cancelling: 0,
          completed: 120,
          failed: 2,
          cancelled: 4,
        },
        active: 10,
      },
      tasks: {
        pending: 5400,
        due: 5380,
        delayed: 20,
        running: 64,
        capacity: 100,
        usage: { memory: 9216, cpu: 12.5 },
      },
      throughput: {
        last_1m: { succeeded: 1180, failed: 2, cancelled: 0, per_minute: 1182 },
        last_5m: { succeeded: 5750, failed: 9, cancelled: 40, per_minute: 1151.8 },
        last_15m: { succeeded: 16900, failed: 21, cancelled: 40, per_minute: 1128.07 },
      },
      errors: {
        window_minutes: 15,
        total: 35,
        by_category: {
          transient: 31,
          resource: 1,
          validation: 3,
          permission: 0,
          internal: 0,
          unknown: 0,
        },
        top_codes: [
          { code: "TIMEOUT", category: "transient", count: 25 },
          { code: "RATE_LIMITED", category: "transient", count: 6 },
          { code: "INVALID_RECIPIENT", category: "validation", count: 3 },
          { code: "OUT_OF_MEMORY", category: "resource", count: 1 },
        ],
      },
      resources: {
        jobs_with_limits: 2,
        jobs_over_limit: 0,
        totals: {
          max_memory: 16384,
          max_cpu: 16,
          reserved_memory: 8192,
          reserved_cpu: 8,
          usage_memory: 6100,
          usage_cpu: 7.1,
        },
        top_jobs: [{
          job_id: OTHER_JOB_ID,
          status: "running",
          max_memory: 8192,
          max_cpu: 8,
          reserved_memory: 6144,
          reserved_cpu: 6,
          usage_memory: 5000,
          usage_cpu: 6.2,
          usage_ratio: 0.775,
          over_limit: false,
        }],
      },
      notifications: {
        pending: 1,
        retrying: 1,
        overdue: 0,
        oldest_pending_at: "2026-11-28T09:08:00.000Z",
        failed: 0,
        delivered_in_window: 3,
      },
      maintenance: {
        running: false,
        lease_expires_at: null,
        overdue_retries: 0,
        last_run_at: "2026-11-28T09:14:00.412Z",
        scheduled: true,
        overdue: false,
        due_timers_last_run_at: null,
      },
    },
  }],
  setGroupRateLimit: [{
    data: { sending_group_id: "group-42", max_per_second: 50, burst: 100 },
    status: 200,
    response: { sending_group_id: "group-42", max_per_second: 50, burst: 100 },
  }],
  setUserLimits: [{
    data: { user_id: USER_ID, max_priority: 60, max_active_jobs: 20 },
    status: 200,
    response: {
      user_id: USER_ID,
      max_priority: 60,
      max_active_jobs: 20,
      max_pending_tasks: null,
    },
  }],
  addTasks: [{
    data: { job_id: JOB_ID, tasks: [{ payload: { to: "c@example.com" } }] },
    status: 201,
    response: { added: 1, total: 3 },
  }],
  claimTasks: [{
    data: { worker_id: WORKER, limit: 2, lease_ms: 60_000 },
    status: 200,
    response: {
      tasks: [
        {
          task_id: 4711,
          job_id: JOB_ID,
          payload: { to: "a@example.com" },
          attempt: 1,
          lease_expires_at: "2026-11-28T09:01:01.000Z",
          resources: null,
        },
        {
          task_id: 4712,
          job_id: JOB_ID,
          payload: { to: "b@example.com" },
          attempt: 1,
          lease_expires_at: "2026-11-28T09:01:01.000Z",
          resources: null,
        },
      ],
    },
  }],
  heartbeat: [{
    data: {
      worker_id: WORKER,
      tasks: [{ task_id: 4711, usage: { memory: 180, cpu: 0.4 } }, { task_id: 4712 }],
    },
    status: 200,
    response: {
      tasks: [
        { task_id: 4711, action: "continue", lease_expires_at: "2026-11-28T09:01:31.000Z" },
        { task_id: 4712, action: "stop", lease_expires_at: "2026-11-28T09:01:31.000Z" },
      ],
    },
  }],
  completeTask: [{
    data: { worker_id: WORKER, task_id: 4711, result: { message_id: "msg-0001" } },
    status: 200,
    response: { task_id: 4711, status: "succeeded" },
  }],
  completeTasks: [{
    data: {
      worker_id: WORKER,
      tasks: [{ task_id: 4711, result: { message_id: "msg-0001" } }, { task_id: 4712 }],
    },
    status: 200,
    response: {
      tasks: [{ task_id: 4711, status: "succeeded" }, { task_id: 4712, status: "lost" }],
    },
  }],
  failTask: [{
    data: {
      worker_id: WORKER,
      task_id: 4713,
      error: { code: "RATE_LIMITED", message: "The provider answered 429." },
    },
    status: 200,
    response: { task_id: 4713, status: "pending", next_attempt_at: "2026-11-28T09:02:00.000Z" },
  }],
};

export const ERROR_EXAMPLE = {
  error: {
    code: "VALIDATION_ERROR",
    message: "The request data is invalid.",
    details: [
      { path: "data.priority", message: "Too big: expected number to be <=100" },
      { path: "data.colour", message: "Unknown field." },
    ],
    request_id: "b3f1c0de-2a4b-4c6d-8e9f-0a1b2c3d4e5f",
  },
};

export const NOTIFICATION_EXAMPLE = {
  id: "5b8f0e1a-7c2d-4e3f-9a4b-6c5d7e8f9a0b",
  type: "job.failed",
  job_id: JOB_ID,
  user_id: USER_ID,
  created_at: "2026-11-28T09:30:00.000Z",
  payload: {
    attempt: 3,
    product_id: "newsletter",
    sending_group_id: "group-42",
    last_error: {
      code: "TIMEOUT",
      category: "transient",
      message: "The provider did not answer within 30 s.",
    },
  },
};
