// What the SQL entry points that answer JSON give back, by entry point: the generated boundary
// (sql_api.ts) types each answer from here. A new JSON-answering entry point needs its line here
// (deno check fails on sql_api.ts until it has one).
import type { z } from "zod";
import type {
  BatchJob,
  DeleteJobResult,
  GroupRateLimit,
  JobWithHistory,
  UserLimits,
} from "./job_schemas.ts";
import type {
  AddTasksResult,
  ClaimedTask,
  ClaimTasksResult,
  CompleteAnswer,
  FailAnswer,
  HeartbeatAnswer,
} from "./task_schemas.ts";
import type { DueTimersResult, NotificationBody, Stats } from "./operations_schemas.ts";
import type { JobFacts } from "./job_machine.ts";

/** Who calls, as every entry point that writes the audit trail receives it (`p_ctx`). */
export interface SqlContext {
  role: string;
  user_id: string | null;
  request_id: string;
}

/** Where a listJobs page ended (the cursor signs it). */
export interface CursorPosition {
  /** created_at in microseconds since the epoch, as a decimal string */
  t: string;
  /** job id */
  i: string;
}

/** A notification claimed for one delivery try. */
export interface ClaimedNotification extends NotificationBody {
  attempt: number;
}

/** What finish_notifications recorded. */
export interface DeliveryCounts {
  delivered: number;
  retrying: number;
  failed: number;
}

export interface SqlAnswers {
  add_tasks: z.output<typeof AddTasksResult>;
  apply_job_update: BatchJob;
  claim_notifications: ClaimedNotification[];
  claim_tasks: z.output<typeof ClaimTasksResult>;
  complete_and_claim: {
    tasks: z.output<typeof CompleteAnswer>[];
    claimed: z.output<typeof ClaimedTask>[];
  };
  complete_tasks: z.output<typeof CompleteAnswer>[];
  create_job: { created: boolean; job: BatchJob };
  delete_job: DeleteJobResult;
  fail_task: z.output<typeof FailAnswer>;
  finish_notifications: DeliveryCounts;
  get_job: JobWithHistory;
  get_stats: Stats;
  heartbeat: z.output<typeof HeartbeatAnswer>[];
  job_facts: JobFacts;
  list_jobs: { jobs: BatchJob[]; next: CursorPosition | null };
  run_due_timers: DueTimersResult;
  set_group_rate_limit: z.output<typeof GroupRateLimit>;
  set_user_limits: z.output<typeof UserLimits>;
}
