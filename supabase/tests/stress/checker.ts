// Judges a recorded history (history.ts) against every invariant of the engine (docs/architecture.md) and the status
// machine. It trusts only what the answers prove:
//
// - A run of a task (one claim by one worker) is certainly held from the moment its claim's answer
//   arrived until the earliest of: the start of its first successful end report (completeTask,
//   completeTasks, failTask), the start of an end report whose answer was lost (503, no answer),
//   and the latest lease the engine granted it (claim or heartbeat). Whatever really happened, the
//   real interval in which the database held the task for that worker contains this one. So two
//   such intervals of one task that overlap are a task running twice; more of them at once in one
//   job than `max_parallel_tasks` is a parallelism breach; and so on.
// - A status seen in an answer held at some instant inside that call.
//
// The result lists each violation with the calls that prove it, and how many times each invariant
// was checked. Pure: no I/O, so its own tests feed it broken histories.
import type { Call, FinalState, History, JobCounters } from "./history.ts";
import { machineEdges } from "../../functions/_shared/job_machine.ts";

export interface Violation {
  invariant: InvariantName;
  detail: string;
  /** seq of the calls that show it */
  calls?: number[];
}

export interface CheckOptions {
  /** the run injected faults: 503 answers and lost answers are allowed, their effect is unknown */
  allowUnavailable?: boolean;
  /** slack for clock rounding between the database and the client (ms) */
  toleranceMs?: number;
}

export interface CheckResult {
  violations: Violation[];
  /** how many elementary checks each invariant passed or failed */
  checks: Record<InvariantName, number>;
  jobs: number;
  tasks: number;
  runs: number;
  calls: number;
}

export const INVARIANTS = {
  "answers-documented":
    "every answer is a documented status and code for its action; never a 500, never a deadlock; 503 only under injected faults, and then with Retry-After",
  "one-holder-at-a-time": "no task is running twice at once",
  "completed-once": "no task is completed twice, and a completed task never runs again",
  "parallelism": "per job, running tasks never exceed max_parallel_tasks",
  "resource-budget": "per job, reservations of running tasks never exceed resource_limits",
  "claims-respect-status":
    "no task is claimed from a job that is pending, paused, failed, retrying, cancelling, cancelled, completed or deleted",
  "retry-policy":
    "a task fails for good only after max_attempts or on a code not in retry_on_errors; a retry waits retry_interval (or its exponential backoff)",
  "attempt-sequence":
    "a task's runs are numbered 1, then +1 per attempt, the same number for a stopped run, 1 again after recovery; never above max_attempts",
  "job-answers-consistent":
    "every job in an answer has counters that add up, active_tasks = running ≤ max_parallel_tasks, the progress of its ended tasks, and a status its counters allow",
  "status-machine":
    "every status change is an edge of the xstate machine; answers to updateBatchJob agree with it",
  "terminal-stays-terminal": "a completed or cancelled job never shows another status",
  "deleted-stays-deleted": "a deleted job is 404 for every later call and never hands out a task",
  "idempotency": "one idempotency key makes one job; replays return that job",
  "counters-equal-rows":
    "at the end, every job's counters, active_tasks and error_count equal its task and error rows",
  "no-lost-task":
    "every task of every job that was not deleted still exists, in a valid state; no job vanished",
  "success-durable": "a task whose completion was acknowledged stays succeeded",
  "nothing-stuck":
    "once quiet (leases expired, maintenance ran), no task is running and no deletion is pending",
  "db-invariants": "job_service_api.invariant_violations finds nothing for the run's jobs",
} as const;
export type InvariantName = keyof typeof INVARIANTS;

interface JobInfo {
  id: string;
  owner?: string;
  maxParallel?: number;
  limits?: { max_memory: number; max_cpu: number } | null;
  retry?: {
    max_attempts: number;
    retry_interval: number;
    retry_on_errors: string[];
    backoff: string;
    max_retry_interval: number;
  };
  createCall?: Call;
  /** tasks that certainly exist (create answer + addTasks answers) */
  knownTasks: number;
  /** tasks that may exist (addTasks calls without an answer) */
  unknownTasks: number;
  /** end of the first deleteJob answered 200 (the job was certainly gone from then on) */
  deletedAt?: number;
  /** start of the earliest deleteJob answered 200 or 202 (it may have been gone from then on) */
  mayBeGoneFrom?: number;
  deletedCall?: number;
  deletionPendingAt?: number;
}

interface Run {
  taskId: number;
  jobId: string;
  worker: string;
  attempt: number;
  claim: Call;
  /** certainly held from */
  from: number;
  /** certainly held until (see the header) */
  until: number;
  lease: number;
  reserved: { memory: number; cpu: number } | null;
  /** the first acknowledged end */
  end?: { call: Call; outcome: string; nextAttemptAt?: number; code?: string };
  /** the earliest start of a report whose answer never came */
  unknownEndAt?: number;
  succeeded: boolean;
}

const TERMINAL_FOREVER = new Set(["completed", "cancelled"]);
const TASK_STATUSES = new Set(["pending", "running", "succeeded", "failed", "cancelled"]);

const COMMON_ERRORS: Record<number, string[]> = {
  400: ["INVALID_JSON", "UNKNOWN_ACTION", "VALIDATION_ERROR"],
  401: ["UNAUTHORIZED"],
  403: ["FORBIDDEN"],
  405: ["METHOD_NOT_ALLOWED"],
  413: ["PAYLOAD_TOO_LARGE"],
  415: ["UNSUPPORTED_MEDIA_TYPE"],
};

/** What each action may answer besides the common errors (api.md). */
export const DOCUMENTED: Record<string, Record<number, string[] | null>> = {
  createJob: { 201: null, 200: null, 409: ["IDEMPOTENCY_CONFLICT", "QUOTA_EXCEEDED"] },
  updateBatchJob: {
    200: null,
    404: ["JOB_NOT_FOUND"],
    409: ["INVALID_TRANSITION", "INVALID_PROGRESS", "PRECONDITION_FAILED", "QUOTA_EXCEEDED"],
  },
  deleteJob: { 200: null, 202: null, 404: ["JOB_NOT_FOUND"] },
  getJob: { 200: null, 404: ["JOB_NOT_FOUND"] },
  listJobs: { 200: null },
  runMaintenance: { 200: null },
  getStats: { 200: null },
  setGroupRateLimit: { 200: null },
  setUserLimits: { 200: null },
  addTasks: { 201: null, 404: ["JOB_NOT_FOUND"], 409: ["JOB_CLOSED"] },
  claimTasks: { 200: null, 404: ["JOB_NOT_FOUND"] },
  heartbeat: { 200: null },
  completeTask: { 200: null, 404: ["TASK_NOT_FOUND"], 409: ["LEASE_LOST"] },
  completeTasks: { 200: null },
  failTask: { 200: null, 404: ["TASK_NOT_FOUND"], 409: ["LEASE_LOST"] },
};

/** Is this answer documented for the action? (Common 4xx included when `hostile`.) */
export function documentedAnswer(
  action: string,
  status: number,
  code: string | undefined,
  hostile: boolean,
): boolean {
  const own = DOCUMENTED[action];
  if (own && status in own) {
    const codes = own[status];
    return codes === null || (code !== undefined && codes.includes(code));
  }
  if (status === 400 && !own && code === "UNKNOWN_ACTION") return true;
  if (hostile && status in COMMON_ERRORS) {
    return code !== undefined && COMMON_ERRORS[status].includes(code);
  }
  return false;
}

// ----- the status machine, from the one definition -----

const EDGES = new Set(machineEdges().map((e) => `${e.from}>${e.to}`));
const REQUEST_OF_EVENT: Record<string, string[]> = {
  "to.queued": ["queued"],
  "to.running": ["running"],
  "to.paused": ["paused"],
  "to.cancelled": ["cancelled", "cancelling"],
  "to.completed": ["completed"],
  "to.failed": ["failed"],
};
/** Statuses a caller could ever request from each status (the superset of `details.allowed`). */
const REQUESTABLE_FROM = new Map<string, Set<string>>();
for (const edge of machineEdges()) {
  const names = REQUEST_OF_EVENT[edge.event] ?? [];
  const set = REQUESTABLE_FROM.get(edge.from) ?? new Set<string>();
  names.forEach((n) => set.add(n));
  REQUESTABLE_FROM.set(edge.from, set);
}
/** Where an accepted request may leave the job (the completion check may follow queued/running). */
const ACCEPTED_TARGETS: Record<string, string[]> = {
  queued: ["queued", "completed", "failed"],
  running: ["running", "completed", "failed"],
  paused: ["paused"],
  cancelled: ["cancelled", "cancelling"],
  cancelling: ["cancelled", "cancelling"],
  completed: ["completed"],
  failed: ["failed", "retrying"],
};

function retryDelay(job: JobInfo, attempt: number): number {
  const r = job.retry!;
  if (r.backoff === "exponential") {
    return Math.min(r.retry_interval * 2 ** Math.max(attempt - 1, 0), r.max_retry_interval);
  }
  return r.retry_interval;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

interface JobShape {
  id: string;
  status: string;
  max_parallel_tasks: number;
  tasks: JobCounters;
  detailed_status: { active_tasks: number; error_count: number; progress_percentage: number };
}

function isJobShape(value: unknown): value is JobShape {
  const v = value as JobShape;
  return typeof v === "object" && v !== null && typeof v.id === "string" &&
    typeof v.status === "string" && typeof v.tasks === "object" && v.tasks !== null;
}

/** The problems of one job as an answer shows it (empty: consistent). */
export function jobShapeProblems(job: JobShape): string[] {
  const t = job.tasks;
  const problems: string[] = [];
  const parts = t.pending + t.running + t.succeeded + t.failed + t.cancelled;
  if ([t.total, t.pending, t.running, t.succeeded, t.failed, t.cancelled].some((n) => n < 0)) {
    problems.push(`negative counter ${JSON.stringify(t)}`);
  }
  if (parts !== t.total) problems.push(`counters add up to ${parts}, total ${t.total}`);
  if (job.detailed_status.active_tasks !== t.running) {
    problems.push(`active_tasks ${job.detailed_status.active_tasks} but ${t.running} running`);
  }
  if (t.running > job.max_parallel_tasks) {
    problems.push(`${t.running} running, max_parallel_tasks ${job.max_parallel_tasks}`);
  }
  if (t.total > 0) {
    const expected = round2(100 * (t.succeeded + t.failed + t.cancelled) / t.total);
    if (Math.abs(job.detailed_status.progress_percentage - expected) > 0.005) {
      problems.push(`progress ${job.detailed_status.progress_percentage}, expected ${expected}`);
    }
  }
  if (job.status === "completed" && (t.pending || t.running || t.failed)) {
    problems.push(`completed with ${JSON.stringify(t)}`);
  }
  if (job.status === "cancelled" && (t.pending || t.running)) {
    problems.push(`cancelled with ${JSON.stringify(t)}`);
  }
  if (job.status === "pending" && t.running) problems.push(`pending with ${t.running} running`);
  return problems;
}

export function checkHistory(history: History, options: CheckOptions = {}): CheckResult {
  const tol = options.toleranceMs ?? 2;
  const violations: Violation[] = [];
  const checks = Object.fromEntries(Object.keys(INVARIANTS).map((k) => [k, 0])) as Record<
    InvariantName,
    number
  >;
  const check = (invariant: InvariantName, ok: boolean, detail: () => string, calls?: number[]) => {
    checks[invariant]++;
    if (!ok) violations.push({ invariant, detail: detail(), calls });
  };

  const calls = [...history.calls].sort((a, b) => a.start - b.start || a.seq - b.seq);
  /** no answer, or a 5xx: whether the call took effect is unknown */
  const unanswered = (c: Call) => c.status === 0 || c.status >= 500;
  const success = (c: Call) => c.status >= 200 && c.status < 300;
  const jobs = new Map<string, JobInfo>();
  const jobOf = (id: string): JobInfo => {
    let job = jobs.get(id);
    if (!job) {
      job = { id, knownTasks: 0, unknownTasks: 0 };
      jobs.set(id, job);
    }
    return job;
  };
  const jobIdOf = (c: Call): string | undefined =>
    typeof c.data.job_id === "string" ? c.data.job_id : undefined;

  const callsByJob = new Map<string, Call[]>();
  for (const c of calls) {
    const id = jobIdOf(c) ??
      (c.action === "createJob" && success(c) ? (c.result as { id: string }).id : undefined);
    if (!id) continue;
    const list = callsByJob.get(id) ?? [];
    list.push(c);
    callsByJob.set(id, list);
  }
  // calls that may have run the overdue timers (expired leases, due retries that start a job's next
  // attempt, cancellations): runMaintenance, and claims and reports, which run them on the side
  // (task-operations/due_timers.ts)
  const TIMER_ACTIONS = new Set([
    "runMaintenance",
    "claimTasks",
    "completeTask",
    "completeTasks",
    "failTask",
  ]);
  const timerCalls = calls.filter((c) => TIMER_ACTIONS.has(c.action));
  /** every job as listJobs answers showed it, by job id */
  const listed = new Map<string, { call: Call; status: string }[]>();
  for (const c of calls) {
    if (c.action !== "listJobs" || c.status !== 200) continue;
    for (const j of (c.result as { jobs: JobShape[] }).jobs ?? []) {
      const list = listed.get(j.id) ?? [];
      list.push({ call: c, status: j.status });
      listed.set(j.id, list);
    }
  }

  // ----- answers: documented, and every job they show is consistent -----
  for (const c of calls) {
    const hostile = c.actor.startsWith("hostile");
    if (c.status === 0 || c.status === 503) {
      check(
        "answers-documented",
        options.allowUnavailable === true &&
          (c.status === 0 || (c.error?.code === "SERVICE_UNAVAILABLE" && !!c.retryAfter)),
        () =>
          `${c.action} answered ${c.status} ${c.error?.code ?? ""} (retry-after ${c.retryAfter})`,
        [c.seq],
      );
    } else {
      check(
        "answers-documented",
        documentedAnswer(c.action, c.status, c.error?.code, hostile),
        () => `${c.action} answered ${c.status} ${c.error?.code ?? ""}: ${c.error?.message ?? ""}`,
        [c.seq],
      );
    }
    const shown: unknown[] = [];
    if (success(c) && ["createJob", "getJob", "updateBatchJob"].includes(c.action)) {
      shown.push(c.result);
    }
    if (c.status === 200 && c.action === "listJobs") {
      shown.push(...((c.result as { jobs?: unknown[] })?.jobs ?? []));
    }
    for (const j of shown) {
      if (!isJobShape(j)) continue;
      const problems = jobShapeProblems(j);
      check(
        "job-answers-consistent",
        problems.length === 0,
        () => `job ${j.id} in ${c.action}: ${problems.join("; ")}`,
        [c.seq],
      );
    }
  }

  // ----- jobs: creation, configuration, task counts, deletion -----
  const keyJobs = new Map<
    string,
    { created: Map<string, Call>; replays: Call[]; unknown: number }
  >();
  for (const c of calls) {
    if (c.action === "createJob") {
      const key = typeof c.data.idempotency_key === "string" ? c.data.idempotency_key : undefined;
      const owner = c.as === "service" ? String(c.data.user_id) : c.as;
      const slot = key === undefined ? undefined : (() => {
        const k = `${owner}/${key}`;
        let s = keyJobs.get(k);
        if (!s) {
          s = { created: new Map(), replays: [], unknown: 0 };
          keyJobs.set(k, s);
        }
        return s;
      })();
      if (c.status === 201 || c.status === 200) {
        const answer = c.result as JobShape & {
          user_id: string;
          retry_config: JobInfo["retry"];
          resource_limits: JobInfo["limits"];
        };
        const job = jobOf(answer.id);
        if (c.status === 201) {
          job.createCall = c;
          job.owner = answer.user_id;
          job.maxParallel = answer.max_parallel_tasks;
          job.limits = answer.resource_limits;
          job.retry = answer.retry_config;
          job.knownTasks += Array.isArray(c.data.tasks) ? c.data.tasks.length : 0;
          slot?.created.set(answer.id, c);
        } else slot?.replays.push(c);
      } else if (unanswered(c) && slot) slot.unknown++;
    } else if (c.action === "addTasks") {
      const id = jobIdOf(c);
      if (!id) continue;
      const n = Array.isArray(c.data.tasks) ? c.data.tasks.length : 0;
      if (c.status === 201) jobOf(id).knownTasks += n;
      else if (unanswered(c)) jobOf(id).unknownTasks += n;
    } else if (c.action === "deleteJob" && (c.status === 200 || c.status === 202)) {
      const id = jobIdOf(c)!;
      const job = jobOf(id);
      job.mayBeGoneFrom = Math.min(job.mayBeGoneFrom ?? Infinity, c.start);
      if (c.status === 200 && (c.result as { deleted?: boolean })?.deleted) {
        if (job.deletedAt === undefined || c.end < job.deletedAt) {
          job.deletedAt = c.end;
          job.deletedCall = c.seq;
        }
      } else if (job.deletionPendingAt === undefined) job.deletionPendingAt = c.end;
    }
  }
  for (const fj of history.final?.jobs ?? []) {
    const job = jobOf(fj.id);
    job.maxParallel ??= fj.max_parallel_tasks;
  }

  // idempotency: a replay returns a job a create with that key made; one key, one live job
  for (const [key, slot] of keyJobs) {
    for (const r of slot.replays) {
      const id = (r.result as { id: string }).id;
      check(
        "idempotency",
        slot.created.has(id) || slot.unknown > 0,
        () => `replay of key ${key} returned ${id}, which no create with this key made`,
        [r.seq],
      );
    }
    const created = [...slot.created.entries()].sort((a, b) => a[1].end - b[1].end);
    for (let i = 1; i < created.length; i++) {
      const [prevId, prev] = created[i - 1];
      const [, next] = created[i];
      const prevGone = jobs.get(prevId)?.mayBeGoneFrom;
      check(
        "idempotency",
        prevGone !== undefined && prevGone <= next.end,
        () => `key ${key} created two jobs while the first existed`,
        [prev.seq, next.seq],
      );
    }
  }

  // ----- runs of tasks -----
  const runs: Run[] = [];
  const runsByTaskWorker = new Map<string, Run[]>();
  const unknownClaims = calls.some((c) => c.action === "claimTasks" && unanswered(c));
  for (const c of calls) {
    if (c.action !== "claimTasks" || c.status !== 200) continue;
    for (
      const t of (c.result as {
        tasks: {
          task_id: number;
          job_id: string;
          attempt: number;
          lease_expires_at: string;
          resources: { memory: number; cpu: number } | null;
        }[];
      }).tasks
    ) {
      const lease = Date.parse(t.lease_expires_at);
      const run: Run = {
        taskId: t.task_id,
        jobId: t.job_id,
        worker: String(c.data.worker_id),
        attempt: t.attempt,
        claim: c,
        from: c.end,
        until: lease,
        lease,
        reserved: t.resources,
        succeeded: false,
      };
      runs.push(run);
      const k = `${t.task_id}/${run.worker}`;
      const list = runsByTaskWorker.get(k) ?? [];
      list.push(run);
      runsByTaskWorker.set(k, list);
    }
  }
  /** the run a report by `worker` on `taskId` refers to: its latest claim answered before it */
  const runOf = (taskId: number, worker: string, report: Call): Run | undefined => {
    const list = runsByTaskWorker.get(`${taskId}/${worker}`) ?? [];
    let found: Run | undefined;
    for (const r of list) if (r.claim.end <= report.start + tol) found = r;
    return found;
  };

  const unheldSuccesses = new Map<number, Call[]>();
  const successCalls = new Map<number, Call[]>();
  const noteSuccess = (taskId: number, c: Call, run: Run | undefined) => {
    const list = successCalls.get(taskId) ?? [];
    list.push(c);
    successCalls.set(taskId, list);
    if (!run) {
      const u = unheldSuccesses.get(taskId) ?? [];
      u.push(c);
      unheldSuccesses.set(taskId, u);
    }
  };
  const endRun = (run: Run | undefined, c: Call, outcome: string, extra: Partial<Run["end"]>) => {
    if (!run || run.end) return;
    run.end = { call: c, outcome, ...extra };
  };

  for (const c of calls) {
    const worker = String(c.data.worker_id ?? "");
    if (c.action === "completeTask") {
      const taskId = Number(c.data.task_id);
      const run = runOf(taskId, worker, c);
      if (c.status === 200) {
        endRun(run, c, "succeeded", {});
        if (run) run.succeeded = true;
        noteSuccess(taskId, c, run);
      } else if (unanswered(c) && run) {
        run.unknownEndAt = Math.min(run.unknownEndAt ?? Infinity, c.start);
      }
    } else if (c.action === "completeTasks") {
      const items = (c.data.tasks as { task_id: number }[]) ?? [];
      if (c.status === 200) {
        for (const a of (c.result as { tasks: { task_id: number; status: string }[] }).tasks) {
          const run = runOf(a.task_id, worker, c);
          if (a.status === "succeeded") {
            endRun(run, c, "succeeded", {});
            if (run) run.succeeded = true;
            noteSuccess(a.task_id, c, run);
          }
        }
      } else if (unanswered(c)) {
        for (const item of items) {
          const run = runOf(item.task_id, worker, c);
          if (run) run.unknownEndAt = Math.min(run.unknownEndAt ?? Infinity, c.start);
        }
      }
    } else if (c.action === "failTask") {
      const taskId = Number(c.data.task_id);
      const run = runOf(taskId, worker, c);
      if (c.status === 200) {
        const a = c.result as { status: string; next_attempt_at?: string };
        endRun(run, c, a.status, {
          code: (c.data.error as { code: string }).code,
          nextAttemptAt: a.next_attempt_at ? Date.parse(a.next_attempt_at) : undefined,
        });
      } else if (unanswered(c) && run) {
        run.unknownEndAt = Math.min(run.unknownEndAt ?? Infinity, c.start);
      }
    } else if (c.action === "heartbeat" && c.status === 200) {
      for (
        const a of (c.result as {
          tasks: { task_id: number; action: string; lease_expires_at?: string }[];
        }).tasks
      ) {
        const run = runOf(a.task_id, worker, c);
        if (!run || !a.lease_expires_at || a.action === "lost") continue;
        if (run.end && run.end.call.start <= c.start) continue;
        run.lease = Math.max(run.lease, Date.parse(a.lease_expires_at));
      }
    }
  }
  for (const run of runs) {
    run.until = Math.min(run.lease, run.end?.call.start ?? Infinity, run.unknownEndAt ?? Infinity);
  }

  const finalJobIds = new Set((history.final?.jobs ?? []).map((j) => j.id));
  const runsByTask = new Map<number, Run[]>();
  for (const run of runs) {
    const list = runsByTask.get(run.taskId) ?? [];
    list.push(run);
    runsByTask.set(run.taskId, list);
  }

  // one holder at a time; completed once; attempts; retry waits
  for (const [taskId, list] of runsByTask) {
    list.sort((a, b) => a.from - b.from);
    const job = jobs.get(list[0].jobId);
    // a task of a job this history did not create (another test's): not judged
    if (!job?.createCall && !finalJobIds.has(list[0].jobId)) continue;
    let latest: Run | undefined;
    for (const run of list) {
      if (latest) {
        check(
          "one-holder-at-a-time",
          run.from >= latest.until - tol,
          () =>
            `task ${taskId} held by ${latest!.worker} (attempt ${latest!.attempt}) until ${
              Math.round(latest!.until)
            } and by ${run.worker} (attempt ${run.attempt}) from ${Math.round(run.from)}`,
          [latest.claim.seq, run.claim.seq],
        );
      }
      if (!latest || run.until > latest.until) latest = run;
    }
    const completers = new Set(list.filter((r) => r.succeeded));
    const unheld = unheldSuccesses.get(taskId) ?? [];
    const completions = completers.size + new Set(unheld.map((c) => String(c.data.worker_id))).size;
    check(
      "completed-once",
      completions <= 1,
      () => `task ${taskId} completed ${completions} times`,
      [...(successCalls.get(taskId) ?? []).map((c) => c.seq)],
    );
    const firstSuccess = Math.min(...(successCalls.get(taskId) ?? []).map((c) => c.end));
    for (const run of list) {
      check(
        "completed-once",
        run.claim.start <= firstSuccess,
        () => `task ${taskId} claimed by ${run.worker} after its completion was acknowledged`,
        [run.claim.seq],
      );
    }

    for (let i = 0; i < list.length; i++) {
      const run = list[i];
      if (job?.retry) {
        check(
          "attempt-sequence",
          run.attempt >= 1 && run.attempt <= job.retry.max_attempts,
          () =>
            `task ${taskId} ran attempt ${run.attempt}, max_attempts ${job.retry!.max_attempts}`,
          [run.claim.seq],
        );
      }
      if (i === 0) {
        if (!unknownClaims) {
          check(
            "attempt-sequence",
            run.attempt === 1,
            () => `task ${taskId} first ran as attempt ${run.attempt}`,
            [run.claim.seq],
          );
        }
        continue;
      }
      const prev = list[i - 1];
      // a due job retry (timers) only restarts a task that had failed for good
      const failedForGood = prev.end === undefined || prev.end.outcome === "failed";
      const recovered = [...(callsByJob.get(run.jobId) ?? []), ...timerCalls].some((c) =>
        c.start < run.claim.end && c.end > prev.claim.start &&
        ((TIMER_ACTIONS.has(c.action) && (c.action === "runMaintenance" || failedForGood)) ||
          (c.action === "updateBatchJob" && (c.data.status === "queued" || unanswered(c))))
      );
      const ok = run.attempt === prev.attempt || run.attempt === prev.attempt + 1 ||
        (run.attempt === 1 && recovered) || (unknownClaims && run.attempt > prev.attempt);
      check(
        "attempt-sequence",
        ok,
        () =>
          `task ${taskId}: attempt ${prev.attempt} then ${run.attempt}${
            recovered ? "" : " without a recovery"
          }`,
        [prev.claim.seq, run.claim.seq],
      );
      if (job?.retry && run.attempt === prev.attempt + 1) {
        // the previous run failed (report or lease expiry): the retry waited its delay
        const endedAt = prev.end && prev.end.outcome === "pending"
          ? prev.end.call.start
          : Math.min(prev.lease, prev.unknownEndAt ?? Infinity);
        const delay = retryDelay(job, prev.attempt);
        check(
          "retry-policy",
          run.claim.end >= endedAt + delay - tol,
          () =>
            `task ${taskId}: attempt ${run.attempt} claimed ${
              Math.round(run.claim.end - endedAt)
            } ms after attempt ${prev.attempt} ended, retry delay ${delay} ms`,
          [prev.end?.call.seq ?? prev.claim.seq, run.claim.seq],
        );
      }
      if (
        job?.retry && prev.end?.outcome === "pending" && prev.end.code !== undefined &&
        (!job.retry.retry_on_errors.includes(prev.end.code) ||
          prev.attempt >= job.retry.max_attempts)
      ) {
        // not retryable: it can only have been a stopped run, which repeats its attempt
        check(
          "retry-policy",
          run.attempt !== prev.attempt + 1,
          () =>
            `task ${taskId}: ${
              prev.end!.code
            } at attempt ${prev.attempt} was retried as attempt ${run.attempt}`,
          [prev.end.call.seq, run.claim.seq],
        );
      }
    }
    for (const run of list) {
      if (!job?.retry || run.end?.outcome !== "failed") continue;
      const code = run.end.code!;
      check(
        "retry-policy",
        !job.retry.retry_on_errors.includes(code) || run.attempt >= job.retry.max_attempts,
        () =>
          `task ${taskId} failed for good on ${code} at attempt ${run.attempt} of ${
            job.retry!.max_attempts
          } (retryable: ${job.retry!.retry_on_errors.join(",")})`,
        [run.end.call.seq],
      );
    }
  }
  // only the holder's report may be accepted (a claim whose answer was lost may hold it unseen)
  for (const [taskId, unheld] of unheldSuccesses) {
    check(
      "one-holder-at-a-time",
      unknownClaims,
      () => `task ${taskId} completed by ${String(unheld[0].data.worker_id)}, which never held it`,
      unheld.map((c) => c.seq),
    );
  }

  // parallelism and budgets: sweep the certain intervals of each job's runs
  const runsByJob = new Map<string, Run[]>();
  for (const run of runs) {
    const list = runsByJob.get(run.jobId) ?? [];
    list.push(run);
    runsByJob.set(run.jobId, list);
  }
  for (const [jobId, list] of runsByJob) {
    const job = jobs.get(jobId);
    if (job?.maxParallel === undefined) continue;
    const points = list.filter((r) => r.until - tol > r.from).flatMap((r) => [
      { t: r.from, d: 1, r },
      { t: r.until - tol, d: -1, r },
    ]).sort((a, b) => a.t - b.t || a.d - b.d);
    let n = 0;
    let memory = 0;
    let cpu = 0;
    let peak = { n: 0, memory: 0, cpu: 0, at: 0, runs: [] as Run[] };
    const open = new Set<Run>();
    for (const p of points) {
      n += p.d;
      memory += p.d * (p.r.reserved?.memory ?? 0);
      cpu += p.d * (p.r.reserved?.cpu ?? 0);
      if (p.d > 0) open.add(p.r);
      else open.delete(p.r);
      if (n > peak.n || memory > peak.memory + 1e-9 || cpu > peak.cpu + 1e-9) {
        peak = {
          n: Math.max(n, peak.n),
          memory: Math.max(memory, peak.memory),
          cpu: Math.max(cpu, peak.cpu),
          at: p.t,
          runs: [...open],
        };
      }
    }
    check(
      "parallelism",
      peak.n <= job.maxParallel,
      () => `job ${jobId}: ${peak.n} tasks held at once, max_parallel_tasks ${job.maxParallel}`,
      peak.runs.map((r) => r.claim.seq),
    );
    if (job.limits) {
      const { max_memory, max_cpu } = job.limits;
      check(
        "resource-budget",
        peak.memory <= max_memory + 1e-6 && peak.cpu <= max_cpu + 1e-6,
        () =>
          `job ${jobId}: reserved ${round2(peak.memory)} MiB / ${
            round2(peak.cpu)
          } cpu at once, limits ${max_memory} / ${max_cpu}`,
        peak.runs.map((r) => r.claim.seq),
      );
      for (const r of list) {
        check(
          "resource-budget",
          r.reserved !== null && r.reserved.memory <= max_memory + 1e-6 &&
            r.reserved.cpu <= max_cpu + 1e-6,
          () => `task ${r.taskId} claimed with reservation ${JSON.stringify(r.reserved)}`,
          [r.claim.seq],
        );
      }
    }
  }

  // ----- job status over time -----
  for (const [jobId, list] of callsByJob) {
    // windows in which the job certainly could not give tasks
    const windows: { from: number; to: number; why: string; seq: number }[] = [];
    /**
     * Until when the status an answer showed certainly held: until any other call that could have
     * changed it may have taken effect after it (an update, or maintenance for a retrying job, that
     * had not ended before this call started).
     */
    const heldUntil = (answer: Call, alsoMaintenance: boolean) => {
      let to = Infinity;
      const movers = alsoMaintenance ? [...list, ...timerCalls] : list;
      for (const u of movers) {
        if (u === answer || u.end <= answer.start) continue;
        if (u.action !== "updateBatchJob" && !(alsoMaintenance && TIMER_ACTIONS.has(u.action))) {
          continue;
        }
        to = Math.min(to, Math.max(u.start, answer.end));
      }
      return to;
    };
    for (const c of list) {
      if (!success(c)) continue;
      let status: string | undefined;
      if (c.action === "createJob" || c.action === "updateBatchJob") {
        status = (c.result as { status?: string })?.status;
      }
      if (c.action === "deleteJob") {
        windows.push({ from: c.end, to: Infinity, why: `deleteJob ${c.status}`, seq: c.seq });
        continue;
      }
      if (!status) continue;
      if (["cancelled", "cancelling", "completed"].includes(status)) {
        windows.push({ from: c.end, to: Infinity, why: status, seq: c.seq });
      } else if (["pending", "paused", "failed"].includes(status)) {
        windows.push({ from: c.end, to: heldUntil(c, false), why: status, seq: c.seq });
      } else if (status === "retrying") {
        windows.push({ from: c.end, to: heldUntil(c, true), why: status, seq: c.seq });
      }
    }
    for (const run of runsByJob.get(jobId) ?? []) {
      for (const w of windows) {
        check(
          "claims-respect-status",
          !(run.claim.start >= w.from && run.claim.end <= w.to),
          () => `task ${run.taskId} of job ${jobId} claimed while the job was ${w.why}`,
          [w.seq, run.claim.seq],
        );
      }
    }

    // answers to updateBatchJob agree with the machine
    for (const c of list) {
      if (c.action !== "updateBatchJob" || typeof c.data.status !== "string") continue;
      const asked = c.data.status;
      if (c.status === 200) {
        const got = (c.result as { status: string }).status;
        check(
          "status-machine",
          (ACCEPTED_TARGETS[asked] ?? []).includes(got),
          () => `job ${jobId}: asked ${asked}, answered ${got}`,
          [c.seq],
        );
      } else if (c.status === 409 && c.error?.code === "INVALID_TRANSITION") {
        const d = c.error.details as { from: string; to: string; allowed: string[] };
        const possible = REQUESTABLE_FROM.get(d.from) ?? new Set<string>();
        check(
          "status-machine",
          d.to === asked && !d.allowed.includes(asked) &&
            d.allowed.every((s) => possible.has(s)) && asked !== "retrying" &&
            (d.allowed.includes("cancelled") === d.allowed.includes("cancelling")),
          () => `job ${jobId}: refused ${asked} with ${JSON.stringify(d)}`,
          [c.seq],
        );
      }
    }

    // terminal stays terminal (completed, cancelled), as every answer shows it
    const shows: { call: Call; status: string }[] = [];
    for (const c of list) {
      if (success(c) && ["createJob", "getJob", "updateBatchJob"].includes(c.action)) {
        shows.push({ call: c, status: (c.result as { status: string }).status });
      }
    }
    shows.push(...(listed.get(jobId) ?? []));
    const terminal = shows.filter((s) =>
      TERMINAL_FOREVER.has(s.status)
    ).sort((a, b) => a.call.end - b.call.end)[0];
    if (terminal) {
      for (const s of shows) {
        if (s.call.start <= terminal.call.end) {
          continue;
        }
        check(
          "terminal-stays-terminal",
          s.status === terminal.status,
          () =>
            `job ${jobId} was ${terminal.status}, later ${s.status}`,
          [terminal.call.seq, s.call.seq],
        );
      }
    }

    // deleted stays deleted
    const job = jobs.get(jobId);
    if (job?.deletedAt !== undefined) {
      for (const c of list) {
        if (c.start <= job.deletedAt || unanswered(c)) continue;
        if (c.action === "createJob") continue;
        check(
          "deleted-stays-deleted",
          c.status === 404,
          () => `${c.action} on deleted job ${jobId} answered ${c.status}`,
          [job.deletedCall!, c.seq],
        );
      }
      for (const s of listed.get(jobId) ?? []) {
        check(
          "deleted-stays-deleted",
          s.call.start <= job.deletedAt,
          () => `listJobs shows deleted job ${jobId}`,
          [job.deletedCall!, s.call.seq],
        );
      }
    }
  }

  // ----- the end state -----
  const final: FinalState | undefined = history.final;
  if (final) {
    const finalJobs = new Map(final.jobs.map((j) => [j.id, j]));
    const tasksByJob = new Map<string, FinalState["tasks"]>();
    for (const t of final.tasks) {
      const list = tasksByJob.get(t.job_id) ?? [];
      list.push(t);
      tasksByJob.set(t.job_id, list);
    }
    const errorsByJob = new Map<string, number>();
    for (const e of final.errors) errorsByJob.set(e.job_id, (errorsByJob.get(e.job_id) ?? 0) + 1);
    const taskById = new Map(final.tasks.map((t) => [t.id, t]));

    for (const fj of final.jobs) {
      const rows = tasksByJob.get(fj.id) ?? [];
      const count = (s: string) => rows.filter((t) => t.status === s).length;
      const fromRows: JobCounters = {
        total: rows.length,
        pending: count("pending"),
        running: count("running"),
        succeeded: count("succeeded"),
        failed: count("failed"),
        cancelled: count("cancelled"),
      };
      check(
        "counters-equal-rows",
        (Object.keys(fromRows) as (keyof JobCounters)[]).every((k) => fj.tasks[k] === fromRows[k]),
        () =>
          `job ${fj.id}: counters ${JSON.stringify(fj.tasks)}, rows ${JSON.stringify(fromRows)}`,
      );
      check(
        "counters-equal-rows",
        fj.detailed_status.active_tasks === fromRows.running &&
          fj.detailed_status.error_count === (errorsByJob.get(fj.id) ?? 0),
        () =>
          `job ${fj.id}: active_tasks ${fj.detailed_status.active_tasks}, error_count ${fj.detailed_status.error_count}; rows ${fromRows.running} running, ${
            errorsByJob.get(fj.id) ?? 0
          } errors`,
      );
      for (const t of rows) {
        check(
          "no-lost-task",
          TASK_STATUSES.has(t.status),
          () => `task ${t.id} has status ${t.status}`,
        );
      }
      if (final.quiescent) {
        check(
          "nothing-stuck",
          fromRows.running === 0 && fj.status !== "cancelling" && !fj.deletion_requested,
          () =>
            `job ${fj.id} is ${fj.status} with ${fromRows.running} running after everything expired${
              fj.deletion_requested ? " (deletion pending)" : ""
            }`,
        );
      }
    }

    for (const job of jobs.values()) {
      if (!job.createCall && !finalJobs.has(job.id)) continue; // never seen created
      const present = finalJobs.get(job.id);
      if (job.deletedAt !== undefined) {
        check(
          "deleted-stays-deleted",
          !present,
          () => `job ${job.id} was deleted but still exists`,
          [job.deletedCall!],
        );
        continue;
      }
      if (!present) {
        check(
          "no-lost-task",
          job.deletionPendingAt !== undefined,
          () => `job ${job.id} vanished without a deletion`,
          job.createCall ? [job.createCall.seq] : [],
        );
        continue;
      }
      if (job.createCall) {
        const rows = (tasksByJob.get(job.id) ?? []).length;
        check(
          "no-lost-task",
          rows >= job.knownTasks && rows <= job.knownTasks + job.unknownTasks,
          () =>
            `job ${job.id} has ${rows} task rows, created ${job.knownTasks} (+ up to ${job.unknownTasks} unacknowledged)`,
          [job.createCall.seq],
        );
      }
      for (const run of runsByJob.get(job.id) ?? []) {
        const row = taskById.get(run.taskId);
        check(
          "no-lost-task",
          row !== undefined && row.job_id === job.id,
          () => `task ${run.taskId} of job ${job.id} was claimed and is gone`,
          [run.claim.seq],
        );
      }
    }
    // a job whose create got no answer (503): all of the tasks that create sent, or none of it
    const lostCreates = new Map<string, Call>();
    for (const c of calls) {
      const id = (c.data.metadata as { create_id?: unknown } | undefined)?.create_id;
      if (c.action === "createJob" && unanswered(c) && typeof id === "string") {
        lostCreates.set(id, c);
      }
    }
    for (const fj of final.jobs) {
      if (jobs.get(fj.id)?.createCall) continue;
      const c = lostCreates.get(String(fj.metadata?.create_id));
      if (!c) continue;
      const sent = Array.isArray(c.data.tasks) ? c.data.tasks.length : 0;
      const rows = (tasksByJob.get(fj.id) ?? []).length;
      const added = jobs.get(fj.id);
      check(
        "no-lost-task",
        rows >= sent && rows <= sent + (added?.knownTasks ?? 0) + (added?.unknownTasks ?? 0),
        () =>
          `job ${fj.id} (create without an answer) has ${rows} task rows, the create sent ${sent}`,
        [c.seq],
      );
    }

    for (const [taskId, successes] of successCalls) {
      const row = taskById.get(taskId);
      const jobId = runsByTask.get(taskId)?.[0]?.jobId;
      if (!row || !jobId || !finalJobs.has(jobId)) continue;
      check(
        "success-durable",
        row.status === "succeeded",
        () => `task ${taskId} was acknowledged succeeded, is ${row.status}`,
        successes.map((c) => c.seq),
      );
    }

    // the status machine, from the job's event log
    const eventsByJob = new Map<string, FinalState["events"]>();
    for (const e of final.events) {
      if (e.type !== "created" && e.type !== "status_changed") continue;
      const list = eventsByJob.get(e.job_id) ?? [];
      list.push(e);
      eventsByJob.set(e.job_id, list);
    }
    for (const [jobId, events] of eventsByJob) {
      let current: string | null = null;
      for (const e of events) {
        if (e.type === "created") {
          check(
            "status-machine",
            current === null && (e.to_status === "pending" || e.to_status === "queued"),
            () => `job ${jobId} created as ${e.to_status}`,
          );
        } else {
          check(
            "status-machine",
            e.from_status === current && EDGES.has(`${e.from_status}>${e.to_status}`),
            () => `job ${jobId}: ${e.from_status} → ${e.to_status} (was ${current})`,
          );
          check(
            "terminal-stays-terminal",
            !TERMINAL_FOREVER.has(String(current)),
            () => `job ${jobId} left ${current} for ${e.to_status}`,
          );
        }
        current = e.to_status;
      }
      const fj = finalJobs.get(jobId);
      if (fj) {
        check(
          "status-machine",
          current === fj.status,
          () => `job ${jobId} is ${fj.status}, its events end at ${current}`,
        );
      }
    }

    for (const v of final.dbViolations) {
      check("db-invariants", false, () => `job ${v.job_id}: ${v.invariant} (${v.detail})`);
    }
    checks["db-invariants"] += final.jobs.length;
  }

  return {
    violations,
    checks,
    jobs: [...jobs.values()].filter((j) => j.createCall !== undefined).length,
    tasks: runsByTask.size,
    runs: runs.length,
    calls: calls.length,
  };
}

/** One line per invariant: checks made and violations found. */
export function summarize(result: CheckResult): string {
  const lines = Object.keys(INVARIANTS).map((name) => {
    const bad = result.violations.filter((v) => v.invariant === name).length;
    return `  ${bad ? "FAIL" : "ok  "} ${name}: ${result.checks[name as InvariantName]} checks${
      bad ? `, ${bad} violations` : ""
    }`;
  });
  return lines.join("\n");
}
