// The API's types for callers (the web app, workers, the dashboard, the tests): what each action of
// both functions takes and answers, derived from the zod schemas (z.input for requests, the
// answers' output schemas), so that they cannot drift from what the functions validate and send.
// Type-only: importing this module loads neither zod nor the schemas.
import type { z } from "zod";
import type * as jobs from "./job_schemas.ts";
import type * as tasks from "./task_schemas.ts";
import type * as operations from "./operations_schemas.ts";

export type {
  BatchJob,
  DeleteJobResult,
  JobList,
  JobStatus,
  JobWithHistory,
} from "./job_schemas.ts";
export type { ClaimedTask } from "./task_schemas.ts";
export type { MaintenanceResult, NotificationBody, Stats } from "./operations_schemas.ts";
export type { ErrorCode } from "./errors.ts";

/** An error row of a job (getJob with `include: ["errors"]`). */
export type JobErrorRow = z.output<typeof jobs.JobError>;
/** An event of a job's timeline (getJob with `include: ["events"]`). */
export type JobEventRow = z.output<typeof jobs.JobEvent>;
/** A start-rate limit as a job shows it: configuration and the starts allowed right now. */
export type RateLimitView = z.output<typeof jobs.RateLimitView>;
export type GroupRateLimit = z.output<typeof jobs.GroupRateLimit>;

/** setUserLimits (api.md, "Quotas"): what the service sends; an omitted field keeps its value. */
export type SetUserLimitsData = z.input<typeof jobs.SetUserLimitsData>;
/** The user's limits after setUserLimits: `null` is no limit. */
export type UserLimits = z.output<typeof jobs.UserLimits>;

/** Every action of job-operations: its `data` as a caller writes it, and its answer's `data`. */
export interface JobOperations {
  createJob: { data: z.input<typeof jobs.CreateJobData>; answer: z.output<typeof jobs.BatchJob> };
  updateBatchJob: {
    data: z.input<typeof jobs.UpdateBatchJobData>;
    answer: z.output<typeof jobs.BatchJob>;
  };
  deleteJob: {
    data: z.input<typeof jobs.DeleteJobData>;
    answer: z.output<typeof jobs.DeleteJobResult>;
  };
  getJob: { data: z.input<typeof jobs.GetJobData>; answer: z.output<typeof jobs.JobWithHistory> };
  listJobs: { data: z.input<typeof jobs.ListJobsData>; answer: z.output<typeof jobs.JobList> };
  runMaintenance: {
    data: z.input<typeof jobs.RunMaintenanceData>;
    answer: z.output<typeof operations.MaintenanceResult>;
  };
  getStats: {
    data: z.input<typeof operations.GetStatsData>;
    answer: z.output<typeof operations.Stats>;
  };
  setGroupRateLimit: {
    data: z.input<typeof jobs.SetGroupRateLimitData>;
    answer: z.output<typeof jobs.GroupRateLimit>;
  };
  setUserLimits: {
    data: z.input<typeof jobs.SetUserLimitsData>;
    answer: z.output<typeof jobs.UserLimits>;
  };
}

/** Every action of task-operations (service only). */
export interface TaskOperations {
  addTasks: {
    data: z.input<typeof tasks.AddTasksData>;
    answer: z.output<typeof tasks.AddTasksResult>;
  };
  claimTasks: {
    data: z.input<typeof tasks.ClaimTasksData>;
    answer: z.output<typeof tasks.ClaimTasksResult>;
  };
  heartbeat: {
    data: z.input<typeof tasks.HeartbeatData>;
    answer: z.output<typeof tasks.HeartbeatResult>;
  };
  completeTask: {
    data: z.input<typeof tasks.CompleteTaskData>;
    answer: z.output<typeof tasks.CompleteAnswer>;
  };
  completeTasks: {
    data: z.input<typeof tasks.CompleteTasksData>;
    answer: z.output<typeof tasks.CompleteTasksResult>;
  };
  failTask: {
    data: z.input<typeof tasks.FailTaskData>;
    answer: z.output<typeof tasks.FailAnswer>;
  };
}

export interface Functions {
  "job-operations": JobOperations;
  "task-operations": TaskOperations;
}
export type FunctionName = keyof Functions;

/** The body of every error answer. */
export interface ApiErrorBody {
  error: { code: string; message: string; details?: unknown; request_id: string };
}
