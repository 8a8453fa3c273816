// One source for every bound that the API validates (zod, in *_schemas.ts) and the database
// enforces again (CHECK constraints and domains in the migrations): the schemas take their ranges
// from here, and limits.test.ts reads each constraint named here from the catalogue and fails when
// its numbers differ. A bound with `sql: []` is the API's alone (the database has no rule for it).

/** Where the database enforces a bound: a column's CHECK of a job_service table, or a domain. */
export type SqlRule =
  | { table: string; column: string; only?: "min" | "max" }
  | { domain: string; only?: "min" | "max" };

export interface Bound {
  readonly min: number;
  readonly max: number;
  readonly sql: readonly SqlRule[];
}

const bound = (min: number, max: number, ...sql: SqlRule[]): Bound => ({ min, max, sql });

export const BOUNDS = {
  // characters
  productId: bound(1, 128, { table: "jobs", column: "product_id" }),
  sendingGroupId: bound(
    1,
    128,
    { table: "jobs", column: "sending_group_id" },
    { table: "sending_group_limits", column: "sending_group_id" },
  ),
  idempotencyKey: bound(1, 128, { table: "idempotency_keys", column: "key" }),
  workerId: bound(1, 128, { domain: "worker_id" }),
  currentPhase: bound(1, 64, { table: "jobs", column: "current_phase", only: "max" }),
  // bytes (UTF-8)
  messageBytes: bound(1, 4 * 1024, { table: "job_errors", column: "message", only: "max" }),
  stackBytes: bound(0, 16 * 1024, { table: "job_errors", column: "stack", only: "max" }),
  // numbers
  priority: bound(
    0,
    100,
    { table: "jobs", column: "priority" },
    { table: "user_limits", column: "max_priority" },
  ),
  maxParallelTasks: bound(1, 1000, { table: "jobs", column: "max_parallel_tasks" }),
  maxAttempts: bound(1, 100, { table: "jobs", column: "max_attempts" }),
  retryIntervalMs: bound(0, 86_400_000, { table: "jobs", column: "retry_interval_ms" }),
  // the database's lower bound is the job's retry_interval_ms
  maxRetryIntervalMs: bound(0, 604_800_000, {
    table: "jobs",
    column: "max_retry_interval_ms",
    only: "max",
  }),
  maxMemoryMiB: bound(1, 1_048_576, { table: "jobs", column: "max_memory" }),
  maxCpu: bound(0.001, 1024, { table: "jobs", column: "max_cpu" }),
  memoryMiB: bound(0, 1_048_576, { domain: "memory_mib" }),
  cpu: bound(0, 1024, { domain: "cpu_cores" }),
  progressPercentage: bound(0, 100, { table: "jobs", column: "progress_percentage" }),
  ratePerSecond: bound(
    0.01,
    100_000,
    { table: "job_rate_limits", column: "max_per_second" },
    { table: "sending_group_limits", column: "max_per_second" },
  ),
  burst: bound(
    1,
    1_000_000,
    { table: "job_rate_limits", column: "burst", only: "min" },
    { table: "sending_group_limits", column: "burst", only: "min" },
  ),
  // quotas (setUserLimits)
  maxActiveJobs: bound(0, 1_000_000, { table: "user_limits", column: "max_active_jobs" }),
  maxPendingTasks: bound(0, 1_000_000_000, { table: "user_limits", column: "max_pending_tasks" }),
  leaseMs: bound(1000, 3_600_000, { domain: "lease_ms" }),
  // tasks one claimTasks call may ask for: a worker process claims for all its free slots at once
  claimLimit: bound(1, 1000, { domain: "claim_limit" }),
  // the API's alone
  retryOnErrors: bound(0, 50),
} as const satisfies Record<string, Bound>;
