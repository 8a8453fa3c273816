// The task-operations contract as zod schemas (types, validation, published schema).
import { z } from "zod";
import { ErrorReport, Id, LIMITS, TaskInput } from "./job_schemas.ts";
import { jsonValue, text } from "./validation.ts";
import { BOUNDS } from "./limits.ts";

export const WorkerId = text(BOUNDS.workerId.min, BOUNDS.workerId.max);
export const TaskId = z.int().min(1);

const uniqueTaskIds = (items: { task_id: number }[]) =>
  new Set(items.map((i) => i.task_id)).size === items.length;

export const AddTasksData = z.strictObject({
  job_id: Id,
  tasks: z.array(TaskInput).min(1).max(LIMITS.tasksPerCall),
});

export const ClaimTasksData = z.strictObject({
  worker_id: WorkerId,
  limit: z.int().min(BOUNDS.claimLimit.min).max(BOUNDS.claimLimit.max),
  job_id: Id.optional(),
  lease_ms: z.int().min(BOUNDS.leaseMs.min).max(BOUNDS.leaseMs.max).default(60_000),
});

export const Usage = z.strictObject({
  memory: z.number().min(BOUNDS.memoryMiB.min).max(BOUNDS.memoryMiB.max),
  cpu: z.number().min(BOUNDS.cpu.min).max(BOUNDS.cpu.max),
});

export const HeartbeatData = z.strictObject({
  worker_id: WorkerId,
  tasks: z.array(z.strictObject({ task_id: TaskId, usage: Usage.optional() })).min(1).max(1000)
    .refine(uniqueTaskIds, { message: "Each task_id may appear once." }),
});

const Result = jsonValue(LIMITS.payloadBytes);

export const CompleteTaskData = z.strictObject({
  worker_id: WorkerId,
  task_id: TaskId,
  result: Result.optional(),
});

/** completeTasks' `claim`: a claimTasks request without its worker_id (the report's). */
export const ClaimAfterReport = ClaimTasksData.omit({ worker_id: true });

export const CompleteTasksData = z.strictObject({
  worker_id: WorkerId,
  tasks: z.array(z.strictObject({ task_id: TaskId, result: Result.optional() })).min(1).max(1000)
    .refine(uniqueTaskIds, { message: "Each task_id may appear once." }),
  claim: ClaimAfterReport.optional().describe(
    "then claim, in the same transaction: answer `claimed`, as claimTasks",
  ),
});

export const FailTaskData = z.strictObject({
  worker_id: WorkerId,
  task_id: TaskId,
  error: ErrorReport,
});

// ----- responses -----

export const ClaimedTask = z.object({
  task_id: TaskId,
  job_id: Id,
  payload: z.unknown(),
  attempt: z.int(),
  lease_expires_at: z.string(),
  resources: z.object({ memory: z.number(), cpu: z.number() }).nullable(),
});
export type ClaimedTask = z.infer<typeof ClaimedTask>;

export const HeartbeatAnswer = z.object({
  task_id: TaskId,
  action: z.enum(["continue", "stop", "lost"]),
  lease_expires_at: z.string().optional(),
});

export const CompleteAnswer = z.object({
  task_id: TaskId,
  status: z.enum(["succeeded", "lost", "not_found"]),
});

export const FailAnswer = z.object({
  task_id: TaskId,
  status: z.enum(["pending", "failed", "cancelled"]),
  next_attempt_at: z.string().optional(),
});

export const AddTasksResult = z.object({
  added: z.int().describe("tasks added by this call"),
  total: z.int().describe("tasks of the job now"),
});
export const ClaimTasksResult = z.object({ tasks: z.array(ClaimedTask) });
export const HeartbeatResult = z.object({ tasks: z.array(HeartbeatAnswer) });
export const CompleteTasksResult = z.object({
  tasks: z.array(CompleteAnswer),
  claimed: z.array(ClaimedTask).optional().describe("The claimed tasks, when `claim` was given."),
});
