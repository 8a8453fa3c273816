// The job-operations contract as zod schemas: the single source of the TypeScript types, the
// request validation and the published JSON Schema / OpenAPI document.
import { z } from "zod";
import { ERROR_CODE_PATTERN, jsonValue, text, utf8Length } from "./validation.ts";
import { JOB_STATUSES } from "./job_statuses.ts";
import { BOUNDS } from "./limits.ts";

export const JobStatus = z.enum(JOB_STATUSES);
export type JobStatus = z.infer<typeof JobStatus>;

export const LIMITS = {
  tasksPerCall: 10_000,
  payloadBytes: 64 * 1024,
  metadataBytes: 16 * 1024,
  stackBytes: BOUNDS.stackBytes.max,
  messageBytes: BOUNDS.messageBytes.max,
  maxMemoryMiB: BOUNDS.maxMemoryMiB.max,
  maxCpu: BOUNDS.maxCpu.max,
  maxRetryIntervalMs: BOUNDS.maxRetryIntervalMs.max,
} as const;

/** Applied when createJob has no retry_config; retry_on_errors then comes from the error catalogue. */
export const DEFAULT_RETRY = {
  max_attempts: 3,
  retry_interval: 60_000,
  backoff: "fixed",
} as const;

export const defaultMaxRetryInterval = (retryInterval: number) =>
  Math.max(3_600_000, retryInterval);

export const Id = z.guid();
export const ErrorCode = z.string().regex(ERROR_CODE_PATTERN, "Must match ^[A-Z][A-Z0-9_]{1,63}$.");

export const RetryConfig = z.strictObject({
  max_attempts: z.int().min(BOUNDS.maxAttempts.min).max(BOUNDS.maxAttempts.max),
  retry_interval: z.int().min(BOUNDS.retryIntervalMs.min).max(BOUNDS.retryIntervalMs.max),
  retry_on_errors: z.array(ErrorCode).max(BOUNDS.retryOnErrors.max),
  backoff: z.enum(["fixed", "exponential"]).optional(),
  max_retry_interval: z.int().min(BOUNDS.maxRetryIntervalMs.min).max(BOUNDS.maxRetryIntervalMs.max)
    .optional(),
}).superRefine((config, ctx) => {
  if (
    config.max_retry_interval !== undefined && config.max_retry_interval < config.retry_interval
  ) {
    ctx.addIssue({
      code: "custom",
      path: ["max_retry_interval"],
      message: "Must be greater than or equal to retry_interval.",
    });
  }
});

export const ResourceLimits = z.strictObject({
  max_memory: z.number().min(BOUNDS.maxMemoryMiB.min).max(BOUNDS.maxMemoryMiB.max),
  max_cpu: z.number().min(BOUNDS.maxCpu.min).max(BOUNDS.maxCpu.max),
});

export const RateLimit = z.strictObject({
  max_per_second: z.number().min(BOUNDS.ratePerSecond.min).max(BOUNDS.ratePerSecond.max),
  /** default max(1, ceil(max_per_second)) */
  burst: z.int().min(BOUNDS.burst.min).max(BOUNDS.burst.max).optional(),
});

export const TaskResources = z.strictObject({
  memory: z.number().min(BOUNDS.memoryMiB.min).max(BOUNDS.memoryMiB.max),
  cpu: z.number().min(BOUNDS.cpu.min).max(BOUNDS.cpu.max),
});

export const TaskInput = z.strictObject({
  payload: jsonValue(LIMITS.payloadBytes),
  resources: TaskResources.optional(),
});
export type TaskInput = z.infer<typeof TaskInput>;

export const Metadata = jsonValue(LIMITS.metadataBytes, { object: true });

export const CreateJobData = z.strictObject({
  product_id: text(BOUNDS.productId.min, BOUNDS.productId.max),
  sending_group_id: text(BOUNDS.sendingGroupId.min, BOUNDS.sendingGroupId.max),
  user_id: Id.optional(),
  priority: z.int().min(BOUNDS.priority.min).max(BOUNDS.priority.max).default(50),
  max_parallel_tasks: z.int().min(BOUNDS.maxParallelTasks.min).max(BOUNDS.maxParallelTasks.max)
    .default(10),
  retry_config: RetryConfig.optional(),
  resource_limits: ResourceLimits.nullable().optional(),
  rate_limit: RateLimit.nullable().optional(),
  tasks: z.array(TaskInput).max(LIMITS.tasksPerCall).optional(),
  start: z.boolean().default(true),
  metadata: Metadata.optional(),
  idempotency_key: text(BOUNDS.idempotencyKey.min, BOUNDS.idempotencyKey.max).optional(),
}).superRefine((job, ctx) => {
  const limits = job.resource_limits;
  if (!limits || !job.tasks) return;
  job.tasks.forEach((task, index) => {
    if (!task.resources) return;
    if (task.resources.memory > limits.max_memory) {
      ctx.addIssue({
        code: "custom",
        path: ["tasks", index, "resources", "memory"],
        message: "Exceeds the job's resource_limits.max_memory: the task could never run.",
      });
    }
    if (task.resources.cpu > limits.max_cpu) {
      ctx.addIssue({
        code: "custom",
        path: ["tasks", index, "resources", "cpu"],
        message: "Exceeds the job's resource_limits.max_cpu: the task could never run.",
      });
    }
  });
});
export type CreateJobData = z.infer<typeof CreateJobData>;

export const GetJobData = z.strictObject({
  job_id: Id,
  include: z.array(z.enum(["errors", "events"])).max(2).optional(),
});

export const ListJobsData = z.strictObject({
  status: z.array(JobStatus).min(1).max(JOB_STATUSES.length).optional(),
  product_id: text(BOUNDS.productId.min, BOUNDS.productId.max).optional(),
  sending_group_id: text(BOUNDS.sendingGroupId.min, BOUNDS.sendingGroupId.max).optional(),
  limit: z.int().min(1).max(100).default(20),
  cursor: z.string().min(1).max(512).optional(),
  user_id: Id.optional(),
});

// ----- responses (documentation and test checks) -----

/** ISO 8601 timestamps in answers (shared by the contracts of both functions). */
export const Timestamp = z.string().describe("ISO 8601, UTC");

/** A start-rate limit as getJob shows it: configuration and the starts allowed right now. */
export const RateLimitView = z.object({
  max_per_second: z.number(),
  burst: z.int(),
  available: z.int(),
});

export const BatchJob = z.object({
  id: Id,
  status: JobStatus,
  product_id: z.string(),
  sending_group_id: z.string(),
  user_id: Id,
  priority: z.int(),
  max_parallel_tasks: z.int(),
  retry_config: z.object({
    max_attempts: z.int(),
    retry_interval: z.int(),
    retry_on_errors: z.array(z.string()),
    backoff: z.enum(["fixed", "exponential"]),
    max_retry_interval: z.int(),
  }),
  resource_limits: ResourceLimits.nullable(),
  detailed_status: z.object({
    current_phase: z.string(),
    progress_percentage: z.number().min(0).max(100),
    active_tasks: z.int(),
    error_count: z.int(),
  }),
  tasks: z.object({
    total: z.int(),
    pending: z.int(),
    running: z.int(),
    succeeded: z.int(),
    failed: z.int(),
    cancelled: z.int(),
  }),
  attempt: z.int(),
  next_attempt_at: Timestamp.nullable(),
  last_error: z.object({
    code: z.string(),
    category: z.string(),
    message: z.string(),
    at: Timestamp,
  }).nullable(),
  rate_limit: RateLimitView.nullable(),
  sending_group_rate_limit: RateLimitView.nullable(),
  metadata: z.record(z.string(), z.unknown()),
  created_at: Timestamp,
  updated_at: Timestamp,
  started_at: Timestamp.nullable(),
  finished_at: Timestamp.nullable(),
});
export type BatchJob = z.infer<typeof BatchJob>;

export const JobError = z.object({
  id: z.int(),
  task_id: z.int().nullable(),
  attempt: z.int(),
  code: z.string(),
  category: z.string(),
  message: z.string(),
  stack: z.string().nullable(),
  request_id: z.string().nullable(),
  created_at: Timestamp,
});

export const JobEvent = z.object({
  id: z.int(),
  type: z.string(),
  from_status: JobStatus.nullable(),
  to_status: JobStatus.nullable(),
  actor: z.object({ role: z.string(), user_id: Id.nullable() }),
  request_id: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
  created_at: Timestamp,
});

export const JobWithHistory = BatchJob.extend({
  errors: z.array(JobError).optional(),
  events: z.array(JobEvent).optional(),
});

export const JobList = z.object({
  jobs: z.array(BatchJob),
  next_cursor: z.string().nullable(),
});
export type JobWithHistory = z.infer<typeof JobWithHistory>;
export type JobList = z.infer<typeof JobList>;

const twoDecimals = (n: number) => Math.abs(n * 100 - Math.round(n * 100)) < 1e-9;

/** An error as a worker reports it (failTask) or a job update records it (updateBatchJob). */
export const ErrorReport = z.strictObject({
  code: ErrorCode,
  message: text(1, LIMITS.messageBytes).refine((m) => utf8Length(m) <= LIMITS.messageBytes, {
    message: `At most ${LIMITS.messageBytes} bytes.`,
  }),
  // longer stacks are cut to 16 KiB, not refused
  stack: z.string().refine((s) => !s.includes("\u0000"), { message: "Must not contain NUL." })
    .optional(),
});

export const UpdateBatchJobData = z.strictObject({
  job_id: Id,
  status: JobStatus.optional(),
  expected_status: JobStatus.optional(),
  detailed_status: z.strictObject({
    current_phase: text(BOUNDS.currentPhase.min, BOUNDS.currentPhase.max).optional(),
    progress_percentage: z.number().min(BOUNDS.progressPercentage.min).max(
      BOUNDS.progressPercentage.max,
    ).refine(twoDecimals, {
      message: "At most two decimals.",
    }).optional(),
    // reported by the database for jobs with tasks; accepted and ignored
    active_tasks: z.int().min(0).optional(),
    error_count: z.int().min(0).optional(),
  }).optional(),
  error_details: ErrorReport.optional(),
}).refine(
  (d) => d.status !== undefined || d.detailed_status !== undefined || d.error_details !== undefined,
  { message: "Give at least one of status, detailed_status, error_details." },
);
export type UpdateBatchJobData = z.infer<typeof UpdateBatchJobData>;

export const RunMaintenanceData = z.strictObject({
  retention_days: z.int().min(0).max(3650).optional(),
});

export const DeleteJobData = z.strictObject({
  job_id: Id,
  force: z.boolean().default(false),
});

export const DeleteJobResult = z.union([
  z.object({
    job_id: Id,
    deleted: z.literal(true),
    tasks_deleted: z.int(),
    errors_deleted: z.int(),
    events_deleted: z.int(),
  }),
  z.object({
    job_id: Id,
    deleted: z.literal(false),
    status: z.literal("cancelling"),
    deletion: z.literal("pending"),
  }),
]);
export type DeleteJobResult = z.infer<typeof DeleteJobResult>;

export const SetGroupRateLimitData = z.strictObject({
  sending_group_id: text(BOUNDS.sendingGroupId.min, BOUNDS.sendingGroupId.max),
  /** null removes the group's limit */
  max_per_second: z.number().min(BOUNDS.ratePerSecond.min).max(BOUNDS.ratePerSecond.max)
    .nullable(),
  burst: z.int().min(BOUNDS.burst.min).max(BOUNDS.burst.max).optional(),
});

export const GroupRateLimit = z.object({
  sending_group_id: z.string(),
  max_per_second: z.number().nullable(),
  burst: z.int().nullable(),
});

/** setUserLimits (api.md, "Quotas"): null is no limit; an omitted field keeps its value. */
export const SetUserLimitsData = z.strictObject({
  user_id: Id,
  max_priority: z.int().min(BOUNDS.priority.min).max(BOUNDS.priority.max).nullable().optional(),
  max_active_jobs: z.int().min(BOUNDS.maxActiveJobs.min).max(BOUNDS.maxActiveJobs.max).nullable()
    .optional(),
  max_pending_tasks: z.int().min(BOUNDS.maxPendingTasks.min).max(BOUNDS.maxPendingTasks.max)
    .nullable().optional(),
});

/** A user's limits after setUserLimits: `null` is no limit. */
export const UserLimits = z.object({
  user_id: Id,
  max_priority: z.int().nullable(),
  max_active_jobs: z.int().nullable(),
  max_pending_tasks: z.int().nullable(),
});
