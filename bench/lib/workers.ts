// Our workers, over any transport (SQL entry points or HTTP): C concurrent slots that claim and
// complete until every task succeeded, recording each run for the invariant checks.
import { type Mode, type OnceChecker, sleep, type Throughput, throughput } from "./common.ts";

export interface ClaimedTask {
  task_id: number;
  job_id: string;
  payload: { n: number };
  resources: { memory: number; cpu: number } | null;
}

export interface Outcome {
  task_id: number;
  status: string;
}

/** How workers reach the engine: job_service_api over SQL, or task-operations over HTTP. */
export interface Transport {
  claim(worker: string, limit: number): Promise<ClaimedTask[]>;
  complete(worker: string, taskIds: number[]): Promise<Outcome[]>;
  /** the count query: tasks of these jobs that succeeded */
  countSucceeded(jobIds: string[]): Promise<number>;
  /** serialization failures and deadlocks retried on the client side (SQL path only) */
  retries(): number;
}

/**
 * One run of a task as its worker saw it: from the moment the claim answered to the moment the
 * completion was sent. The database held the task running for at least this interval, so overlaps
 * counted on these intervals never exceed the real ones.
 */
export interface Run {
  task_id: number;
  job_id: string;
  claimed_at: number;
  ended_at: number;
  status: string;
  reserved: { memory: number; cpu: number } | null;
}

export interface WorkerResult extends Throughput {
  retries: number;
  emptyClaims: number;
  claims: number;
  completions: number;
}

/** One worker id per process: only the claiming worker may complete, and batched mode merges. */
const PROCESS_WORKER = "bench-process";
const STALL_MS = 15_000;
/**
 * Batched mode: claims one process has in flight at once. Slots beyond wait for a turn, as
 * graphile-worker's slots wait for its local queue's one fetch: on 2 CPUs, 32 concurrent claims
 * spent the CPUs on one another (T1 batched C = 32: 4,500 tasks/s with every slot claiming, 9,200
 * with 4 in flight, 8,500 with 8; C = 8 unchanged; docs/performance.md, finding 24).
 */
const BATCHED_CLAIMS_IN_FLIGHT = 4;

/**
 * Runs C worker slots until `total` tasks succeeded and the count query confirms it. "single": each
 * slot claims one task and completes it. "batched": each slot claims up to 10, at most
 * BATCHED_CLAIMS_IN_FLIGHT claims at once; the completions of all slots go to one merger that sends
 * whatever has accumulated as one call (at most 1 000 tasks), like graphile-worker's
 * completeJobBatchDelay 0; slots do not wait for it, as graphile's do not.
 */
export async function runWorkers(transport: Transport, options: {
  c: number;
  mode: Mode;
  total: number;
  jobIds: string[];
  once: OnceChecker;
  history?: Run[];
}): Promise<WorkerResult> {
  const { c, mode, total, once, history } = options;
  const stats = { emptyClaims: 0, claims: 0, completions: 0 };
  const limit = mode === "batched" ? 10 : 1;
  let succeeded = 0;
  let failure: unknown;
  let lastProgress = performance.now();

  const complete = async (worker: string, runs: Run[]) => {
    stats.completions++;
    const outcomes = await transport.complete(worker, runs.map((r) => r.task_id));
    for (const outcome of outcomes) {
      if (outcome.status !== "succeeded") {
        throw new Error(`task ${outcome.task_id} completed as ${outcome.status}`);
      }
    }
    for (const run of runs) run.status = "succeeded";
    succeeded += outcomes.length;
    lastProgress = performance.now();
  };

  // The merger of batched mode: one call in flight; what arrives meanwhile goes in the next one.
  const pending: Run[] = [];
  let flushing: Promise<void> | undefined;
  const flush = async () => {
    await Promise.resolve(); // let the other slots of this tick add theirs first
    while (pending.length > 0) await complete(PROCESS_WORKER, pending.splice(0, 1_000));
    flushing = undefined;
  };

  // batched mode's claim turns: a slot whose turn comes takes the place of the one that ended
  let claiming = 0;
  const turns: (() => void)[] = [];
  const claim = async (worker: string): Promise<ClaimedTask[]> => {
    if (mode === "single") return await transport.claim(worker, limit);
    if (claiming < BATCHED_CLAIMS_IN_FLIGHT) claiming++;
    else await new Promise<void>((resolve) => turns.push(resolve));
    try {
      return await transport.claim(worker, limit);
    } finally {
      const next = turns.shift();
      if (next) next();
      else claiming--;
    }
  };

  const slot = async (index: number) => {
    const worker = mode === "batched" ? PROCESS_WORKER : `bench-slot-${index}`;
    let idle = 0; // consecutive empty claims: a worker that finds nothing backs off
    while (succeeded < total && failure === undefined) {
      stats.claims++;
      const tasks = await claim(worker);
      if (tasks.length === 0) {
        // a task that can never be claimed again (lost by the engine) must not hang the run
        if (performance.now() - lastProgress > STALL_MS) {
          throw new Error(`no progress for ${STALL_MS} ms at ${succeeded} of ${total} tasks`);
        }
        stats.emptyClaims++;
        await sleep(Math.min(50, 2 ** Math.min(++idle, 6)));
        continue;
      }
      idle = 0;
      const claimedAt = performance.now();
      const runs = tasks.map((t) => {
        once.mark(t.payload.n); // the no-op handler
        return {
          task_id: t.task_id,
          job_id: t.job_id,
          claimed_at: claimedAt,
          ended_at: performance.now(),
          status: "sent",
          reserved: t.resources,
        };
      });
      history?.push(...runs);
      if (mode === "single") {
        await complete(worker, runs);
      } else {
        pending.push(...runs);
        flushing ??= flush().catch((error) => {
          failure = error;
        });
      }
    }
  };

  const start = performance.now();
  await Promise.all(Array.from({ length: c }, (_, i) =>
    slot(i).catch((error) => {
      failure ??= error;
    })));
  await flushing;
  if (failure !== undefined) throw failure;
  const n = await transport.countSucceeded(options.jobIds);
  if (n !== total) throw new Error(`count query found ${n} of ${total} tasks succeeded`);
  const result = throughput(total, performance.now() - start);
  once.assertOnce();
  return { ...result, ...stats, retries: transport.retries() };
}
