// The job status machine, defined once. The function validates requested moves with it and lists
// the allowed targets; `deno task gen` turns the same definition into the database's transition
// table (with each guard's SQL) and the Mermaid diagram in docs/status-machine.md.
import { setup, transition } from "xstate";
import type { JobStatus } from "./job_statuses.ts";

/** What the guards look at: the job's counters and retry policy at the moment of the move. */
export interface JobFacts {
  status: JobStatus;
  tasks: { total: number; pending: number; running: number; succeeded: number; failed: number };
  attempt: number;
  max_attempts: number;
  retry_on_errors: string[];
  /** epoch ms; set while retrying */
  next_attempt_at: number | null;
}

/** Caller requests are named after the status asked for; engine moves after what happened. */
export type JobEvent =
  | { type: "to.queued" }
  | { type: "to.running" }
  | { type: "to.paused" }
  | { type: "to.cancelled" }
  | { type: "to.completed" }
  | { type: "to.failed"; error_code?: string }
  | { type: "engine.claimed" }
  | { type: "engine.tasks_done" }
  | { type: "engine.retry_due"; now: number }
  | { type: "engine.stopped" };

interface Guard {
  test: (facts: JobFacts, event: JobEvent) => boolean;
  /**
   * The same condition in SQL, over `c` (the job's task counts: total, pending, running,
   * succeeded, failed), `o` and `n` (the job row before and after the move) and `e` (the job's
   * latest error code, text).
   */
  sql: string;
  describe: string;
}

export const GUARDS = {
  hasRunningTasks: {
    test: (f) => f.tasks.running > 0,
    sql: "c.running > 0",
    describe: "a task is running",
  },
  noRunningTasks: {
    test: (f) => f.tasks.running === 0,
    sql: "c.running = 0",
    describe: "no task is running",
  },
  nothingOpenOrFailed: {
    test: (f) => f.tasks.pending === 0 && f.tasks.running === 0 && f.tasks.failed === 0,
    sql: "c.pending = 0 and c.running = 0 and c.failed = 0",
    describe: "no task pending, running or failed",
  },
  allTasksSucceeded: {
    test: (f) =>
      f.tasks.total > 0 && f.tasks.pending === 0 && f.tasks.running === 0 && f.tasks.failed === 0,
    sql: "c.total > 0 and c.pending = 0 and c.running = 0 and c.failed = 0",
    describe: "every task ended, none failed",
  },
  tasksEndedWithFailure: {
    test: (f) =>
      f.tasks.total > 0 && f.tasks.pending === 0 && f.tasks.running === 0 && f.tasks.failed > 0,
    sql: "c.total > 0 and c.pending = 0 and c.running = 0 and c.failed > 0",
    describe: "every task ended, one failed for good",
  },
  retryAllowed: {
    test: (f, e) =>
      e.type === "to.failed" && e.error_code !== undefined &&
      f.retry_on_errors.includes(e.error_code) && f.attempt < f.max_attempts,
    sql: "e is not null and e = any (n.retry_on_errors) and n.attempt < n.max_attempts",
    describe: "error code retryable and attempts left",
  },
  retryDue: {
    test: (f, e) =>
      e.type === "engine.retry_due" && f.next_attempt_at !== null && f.next_attempt_at <= e.now,
    sql: "o.next_attempt_at <= now()",
    describe: "next_attempt_at reached",
  },
} satisfies Record<string, Guard>;

export type GuardName = keyof typeof GUARDS;

const cancel = [
  { target: "cancelling", guard: "hasRunningTasks" },
  { target: "cancelled", guard: "noRunningTasks" },
] as const;

const completionCheck = [
  { target: "completed", guard: "allTasksSucceeded" },
  { target: "failed", guard: "tasksEndedWithFailure" },
] as const;

export const jobMachine = setup({
  types: {
    context: {} as JobFacts,
    events: {} as JobEvent,
    input: {} as JobFacts,
  },
  guards: Object.fromEntries(
    Object.entries(GUARDS).map(([name, g]) => [
      name,
      ({ context, event }: { context: JobFacts; event: JobEvent }) => g.test(context, event),
    ]),
  ) as Record<GuardName, (args: { context: JobFacts; event: JobEvent }) => boolean>,
}).createMachine({
  id: "job",
  initial: "pending",
  context: ({ input }) => input,
  states: {
    pending: {
      on: {
        "to.queued": "queued",
        "to.cancelled": { target: "cancelled", guard: "noRunningTasks" },
      },
    },
    queued: {
      on: {
        "to.running": "running",
        "engine.claimed": "running",
        "to.paused": "paused",
        "to.cancelled": [...cancel],
        "engine.tasks_done": [...completionCheck],
      },
    },
    running: {
      on: {
        "to.paused": "paused",
        "to.cancelled": [...cancel],
        "to.completed": { target: "completed", guard: "nothingOpenOrFailed" },
        "to.failed": [{ target: "retrying", guard: "retryAllowed" }, { target: "failed" }],
        "engine.tasks_done": [...completionCheck],
      },
    },
    paused: {
      on: {
        "to.queued": "queued",
        "to.cancelled": [...cancel],
      },
    },
    retrying: {
      on: {
        "engine.retry_due": { target: "queued", guard: "retryDue" },
        "to.cancelled": [...cancel],
      },
    },
    cancelling: {
      on: {
        "engine.stopped": { target: "cancelled", guard: "noRunningTasks" },
      },
    },
    failed: {
      on: {
        "to.queued": "queued",
        "to.cancelled": [...cancel],
      },
    },
    completed: { type: "final" },
    cancelled: { type: "final" },
  },
});

/** Statuses a caller may name in updateBatchJob (`cancelling` is a synonym of `cancelled`). */
export const REQUESTABLE = [
  "queued",
  "running",
  "paused",
  "cancelled",
  "cancelling",
  "completed",
  "failed",
] as const satisfies readonly JobStatus[];

function requestEvent(status: JobStatus, errorCode?: string): JobEvent | null {
  switch (status) {
    case "queued":
    case "running":
    case "paused":
    case "completed":
      return { type: `to.${status}` };
    case "cancelled":
    case "cancelling":
      return { type: "to.cancelled" };
    case "failed":
      return { type: "to.failed", error_code: errorCode };
    default:
      return null; // pending and retrying are never requested
  }
}

function snapshotOf(facts: JobFacts) {
  return jobMachine.resolveState({ value: facts.status, context: facts });
}

/** The statuses this caller could request now and have accepted, for the 409 body. */
export function allowedRequests(facts: JobFacts): JobStatus[] {
  const snapshot = snapshotOf(facts);
  return REQUESTABLE.filter((status) => {
    const event = requestEvent(status);
    return event !== null && snapshot.can(event);
  });
}

export type Decision =
  | { ok: true; target: JobStatus }
  | { ok: false; from: JobStatus; to: string; allowed: JobStatus[] };

/** Where a caller's request for `status` takes the job, or why it may not. */
export function decideRequest(facts: JobFacts, status: JobStatus, errorCode?: string): Decision {
  const event = requestEvent(status, errorCode);
  const snapshot = snapshotOf(facts);
  if (event !== null && snapshot.can(event)) {
    const [next] = transition(jobMachine, snapshot, event);
    return { ok: true, target: next.value as JobStatus };
  }
  return { ok: false, from: facts.status, to: status, allowed: allowedRequests(facts) };
}

export interface Edge {
  from: JobStatus;
  to: JobStatus;
  event: JobEvent["type"];
  guard: GuardName | null;
}

/** Every edge of the machine, in definition order: what the database's table is made of. */
export function machineEdges(): Edge[] {
  const edges: Edge[] = [];
  for (const [from, node] of Object.entries(jobMachine.root.states)) {
    for (const [event, transitions] of node.transitions) {
      for (const t of transitions) {
        for (const target of t.target ?? []) {
          edges.push({
            from: from as JobStatus,
            to: target.key as JobStatus,
            event: event as JobEvent["type"],
            guard: typeof t.guard === "string" ? (t.guard as GuardName) : null,
          });
        }
      }
    }
  }
  return edges;
}
