// The operations contract as zod schemas: getStats (data and answer), runMaintenance's answer and
// the webhook body of a notification. Like job_schemas.ts and task_schemas.ts, the source of the
// types, the validation and the published OpenAPI document (scripts/lib/openapi.ts).
import { z } from "zod";
import { Id, JobStatus, Timestamp } from "./job_schemas.ts";

const count = z.int().min(0);
/** Limits, reservations and reported usage, as summed over jobs or for one job. */
const resourceAmounts = {
  max_memory: z.number(),
  max_cpu: z.number(),
  reserved_memory: z.number(),
  reserved_cpu: z.number(),
  usage_memory: z.number(),
  usage_cpu: z.number(),
};

export const GetStatsData = z.strictObject({
  window_minutes: z.int().min(1).max(1440).default(15).describe(
    "Minutes of history for errors and delivered notifications (throughput always covers 1, 5 and 15).",
  ),
});
export type GetStatsData = z.infer<typeof GetStatsData>;

const byStatus = z.object(
  Object.fromEntries(JobStatus.options.map((s) => [s, count])) as Record<
    z.infer<typeof JobStatus>,
    typeof count
  >,
);

const ThroughputWindow = z.object({
  succeeded: count,
  failed: count.describe("tasks that failed for good"),
  cancelled: count,
  per_minute: z.number().min(0).describe("(succeeded + failed) / minutes of the window"),
});

export const ERROR_CATEGORIES = [
  "transient",
  "resource",
  "validation",
  "permission",
  "internal",
  "unknown",
] as const;

export const Stats = z.object({
  generated_at: Timestamp,
  jobs: z.object({
    by_status: byStatus,
    active: count.describe("jobs not completed, failed or cancelled"),
  }),
  tasks: z.object({
    pending: count.describe("tasks waiting to be claimed (due + delayed)"),
    due: count.describe("pending tasks that may be claimed now"),
    delayed: count.describe("pending tasks waiting for their retry time"),
    running: count,
    capacity: count.describe("sum of max_parallel_tasks over queued and running jobs"),
    usage: z.object({
      memory: z.number().describe("MiB reported by heartbeats of running tasks"),
      cpu: z.number().describe("cores reported by heartbeats of running tasks"),
    }),
  }),
  throughput: z.object({
    last_1m: ThroughputWindow,
    last_5m: ThroughputWindow,
    last_15m: ThroughputWindow,
  }),
  errors: z.object({
    window_minutes: z.int(),
    total: count,
    by_category: z.object(
      Object.fromEntries(ERROR_CATEGORIES.map((c) => [c, count])) as Record<
        (typeof ERROR_CATEGORIES)[number],
        typeof count
      >,
    ),
    top_codes: z.array(z.object({ code: z.string(), category: z.string(), count })).max(10),
  }),
  resources: z.object({
    jobs_with_limits: count.describe("unfinished jobs with resource_limits"),
    jobs_over_limit: count.describe("of those, jobs whose reported usage is over a limit"),
    totals: z.object(resourceAmounts),
    top_jobs: z.array(z.object({
      job_id: Id,
      status: JobStatus,
      ...resourceAmounts,
      usage_ratio: z.number().describe("the larger of usage/limit for memory and cpu"),
      over_limit: z.boolean(),
    })).max(10).describe("up to 10 jobs closest to their limits"),
  }),
  notifications: z.object({
    pending: count,
    retrying: count.describe("pending notifications with at least one failed try"),
    overdue: count.describe("pending and due for more than 2 minutes (is maintenance running?)"),
    oldest_pending_at: Timestamp.nullable(),
    failed: count.describe("given up after the last try"),
    delivered_in_window: count,
  }),
  maintenance: z.object({
    running: z.boolean().describe("a runMaintenance run holds the lease now"),
    lease_expires_at: Timestamp.nullable(),
    overdue_retries: count.describe("retrying jobs due for more than 2 minutes"),
    last_run_at: Timestamp.nullable().describe("when the latest runMaintenance run finished"),
    scheduled: z.boolean().describe(
      "the pg_cron job that calls runMaintenance every minute exists (job_service_api.schedule_maintenance)",
    ),
    overdue: z.boolean().describe(
      "no runMaintenance run finished in the last 2 minutes (the schedule runs every minute)",
    ),
    due_timers_last_run_at: Timestamp.nullable().describe(
      "when claims last ran the overdue timers (leases, retries, cancellations) themselves",
    ),
  }),
});
export type Stats = z.infer<typeof Stats>;

export const MaintenanceResult = z.object({
  ran: z.boolean().describe("false when another run held the lease (nothing was done)"),
  leases_expired: count,
  retries_started: count,
  jobs_cancelled: count,
  notifications_delivered: count,
  notifications_retrying: count.describe("tries that failed and will be retried"),
  notifications_failed: count.describe("notifications given up after their last try"),
  notifications_purged: count,
  jobs_purged: count,
});
export type MaintenanceResult = z.infer<typeof MaintenanceResult>;

/** What the overdue timers run by a claim did (job_service_api.run_due_timers). */
export const DueTimersResult = z.object({
  ran: z.boolean(),
  skipped: z.enum(["busy", "maintenance", "recent"]).optional(),
  leases_expired: count.optional(),
  retries_started: count.optional(),
  jobs_cancelled: count.optional(),
});
export type DueTimersResult = z.infer<typeof DueTimersResult>;

export const NOTIFICATION_TYPES = [
  "job.failed",
  "job.resource_limit_exceeded",
  "task.worker_lost",
] as const;

export const NotificationBody = z.object({
  id: Id.describe("the same on every try: de-duplicate on it"),
  type: z.enum(NOTIFICATION_TYPES),
  job_id: Id,
  user_id: Id,
  created_at: Timestamp,
  payload: z.record(z.string(), z.unknown()),
});
export type NotificationBody = z.infer<typeof NotificationBody>;
