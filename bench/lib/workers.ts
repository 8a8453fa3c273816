// Our workers, over any transport (SQL entry points or HTTP): C concurrent slots that claim and
// complete until every task succeeded, recording each run for the invariant checks.
import { setImmediate } from "node:timers";
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
  /** completeTask(s) with `claim`: the report, then a claim of up to `limit`, in one call */
  completeAndClaim?(
    worker: string,
    taskIds: number[],
    limit: number,
  ): Promise<{ outcomes: Outcome[]; claimed: ClaimedTask[] }>;
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
  /** claims made by completion calls (completeTask(s) with `claim`) */
  carried: number;
  completions: number;
}

/** One worker id per process: only the claiming worker may complete, and batched mode merges. */
const PROCESS_WORKER = "bench-process";
const STALL_MS = 15_000;
/**
 * Batched mode's local queue holds up to this many tasks per slot: a claim asks for the queue's
 * free room, up to 10 × C tasks in one call, as graphile-worker's `localQueue: { size: 10 * C }`.
 */
const LOCAL_QUEUE_PER_SLOT = 10;
/** Chains of carried calls of one job's runs, each keeping to claim shards of its own (`send`) ... */
const LANES = 2;
/** ... made only when each starts with at least this many runs (a call's fixed cost). */
const MIN_LANE_RUNS = 64;

/**
 * Runs C worker slots until `total` tasks succeeded and the count query confirms it. "single": each
 * slot claims one task and completes it (its own worker id). "batched": the process keeps a local
 * queue that one claim at a time fills for all slots, asking for its free room (up to 10 × C tasks),
 * as graphile-worker's local queue does; the completions of all slots go to one merger that sends
 * whatever has accumulated as one call (at most 1 000 tasks), like graphile-worker's
 * completeJobBatchDelay 0, one call in flight at a time; slots do not wait for it, as graphile's do
 * not. With `combined`, each such call carries a claim, and two may be in flight: of different
 * jobs, or of one job's two lanes (chains of calls on claim shards of their own).
 */
export async function runWorkers(transport: Transport, options: {
  c: number;
  mode: Mode;
  /** reports also claim (completeTask(s) with `claim`), where the transport can */
  combined?: boolean;
  total: number;
  jobIds: string[];
  once: OnceChecker;
  history?: Run[];
  /** told the count of tasks succeeded after every completion (T4's early and late tenths) */
  progress?: (succeeded: number) => void;
}): Promise<WorkerResult> {
  const { c, mode, total, once, history } = options;
  const combined = (options.combined ?? false) && transport.completeAndClaim !== undefined;
  const stats = { emptyClaims: 0, claims: 0, completions: 0, carried: 0 };
  let succeeded = 0;
  let failure: unknown;
  let lastProgress = performance.now();

  /** Reports the runs (and, given a claim limit and a transport that can, claims in the same call). */
  const complete = async (worker: string, runs: Run[], claim?: number) => {
    stats.completions++;
    const ids = runs.map((r) => r.task_id);
    let outcomes: Outcome[];
    let claimed: ClaimedTask[] | undefined;
    if (claim !== undefined && transport.completeAndClaim) {
      stats.claims++;
      stats.carried++;
      ({ outcomes, claimed } = await transport.completeAndClaim(worker, ids, claim));
    } else {
      outcomes = await transport.complete(worker, ids);
    }
    for (const outcome of outcomes) {
      if (outcome.status !== "succeeded") {
        throw new Error(`task ${outcome.task_id} completed as ${outcome.status}`);
      }
    }
    for (const run of runs) run.status = "succeeded";
    succeeded += outcomes.length;
    lastProgress = performance.now();
    options.progress?.(succeeded);
    return claimed;
  };

  /** a claim that found nothing: back off, and fail the run when nothing moved for too long */
  const idleClaim = async (idle: number) => {
    // a task that can never be claimed again (lost by the engine) must not hang the run
    if (performance.now() - lastProgress > STALL_MS) {
      throw new Error(`no progress for ${STALL_MS} ms at ${succeeded} of ${total} tasks`);
    }
    stats.emptyClaims++;
    await sleep(Math.min(50, 2 ** Math.min(idle, 6)));
  };

  const record = (task: ClaimedTask, claimedAt: number): Run => {
    once.mark(task.payload.n); // the no-op handler
    const run = {
      task_id: task.task_id,
      job_id: task.job_id,
      claimed_at: claimedAt,
      ended_at: performance.now(),
      status: "sent",
      reserved: task.resources,
    };
    history?.push(run);
    return run;
  };

  // One at a time: each slot claims one task and completes it; with a transport that can, the
  // report of a task also claims the next one (one call per task, one task per claim and report).
  const slot = async (index: number) => {
    const worker = `bench-slot-${index}`;
    let idle = 0; // consecutive empty claims: a worker that finds nothing backs off
    let next: ClaimedTask[] | undefined;
    while (succeeded < total && failure === undefined) {
      let tasks = next;
      next = undefined;
      if (!tasks) {
        stats.claims++;
        tasks = await transport.claim(worker, 1);
      }
      if (tasks.length === 0) {
        await idleClaim(++idle);
        continue;
      }
      idle = 0;
      const claimedAt = performance.now();
      next = await complete(
        worker,
        tasks.map((t) => record(t, claimedAt)),
        combined ? 1 : undefined,
      );
    }
  };

  // Batched: the local queue, filled whenever it holds fewer tasks than there are slots, and the
  // merger, which sends the completions of all slots as one call (at most 1 000 tasks) and what
  // arrives meanwhile in the next one.
  const size = LOCAL_QUEUE_PER_SLOT * c;
  const queue: { task: ClaimedTask; claimedAt: number; lane: number }[] = [];
  const waiting: (() => void)[] = []; // slots waiting for a task
  let refill: (() => void) | undefined; // the fetcher waiting for room, or for a completion
  let fetching = true;
  const wakeFetcher = () => {
    const r = refill;
    refill = undefined;
    r?.();
  };
  const wake = () => {
    for (const resolve of waiting.splice(0)) resolve();
    wakeFetcher();
  };
  // A lane is a chain of carried calls of one job's runs (see `send`): the tasks a call claimed
  // belong to its lane. A claim of the fetcher's big enough for two lanes is split by task id (a
  // batch claim gives its first tasks the first claim shards it walked, so the halves hold
  // different shards, but for the one the split falls in).
  const enqueue = (tasks: ClaimedTask[], lane?: number) => {
    const claimedAt = performance.now();
    const sorted = lane === undefined ? tasks.toSorted((a, b) => a.task_id - b.task_id) : tasks;
    const half = Math.ceil(sorted.length / LANES);
    sorted.forEach((task, i) =>
      queue.push({ task, claimedAt, lane: lane ?? Math.floor(i / half) })
    );
    for (const resolve of waiting.splice(0)) resolve();
  };
  const pending: Run[] = [];
  let inFlight = 0; // completion calls sent and not answered yet
  let scheduled = false;
  const landed: (() => void)[] = [];
  // With `combined`, every completion call carries a claim from the start, as the shipped worker's
  // reports do (examples/worker.ts): the claim sees the room the report gives back, one call and
  // one commit instead of two, no claim that comes back empty. The fetcher claims on its own only
  // when nothing of ours is in flight or waiting to be sent (the first claim, and after a pause).
  // Until the fourteenth session a run carried only once a claim had come back short (its jobs at
  // their parallelism or budget); T1 batched, whose job never is, made a claim call beside every
  // completion call: at C = 8 51-57 against 39-44 µs of database CPU a task (docs/performance.md,
  // "Carried claims from the start"). A carried claim that gets all it asked for, with more room
  // given back than it asked for, shows that the jobs have room beyond the local queue's: claims
  // then go on their own, beside the completions, until one comes back short. Without carrying,
  // one completion call is in flight at a time, with all that is pending. While carrying, two may
  // be, of different jobs (two reports of one job's runs would wait on its end row), each with
  // about half of the runs pending and in flight (`send`), each asking for the slots its report
  // gives back, together no more than the local queue's room. The engine hands a report's slots
  // over to its jobs' next tasks, so a call's cost follows its size, and the database works on
  // both calls at once, one on each CPU (T2: docs/performance.md, "Hand-over across jobs, two
  // calls in flight"). One job's runs (T1, T3) are split only by lane: a lane is a chain of calls
  // that keeps to the claim shards its first claim gave it (the engine hands a run's slot over in
  // the run's shard), so the two calls share at most the end row of the shard the lanes were split
  // in, where halves by task id at every call shared most of them. A fetcher's claim of one job
  // big enough for two lanes of at least MIN_LANE_RUNS makes two (`enqueue`); a smaller one stays
  // one lane, whose calls are never split (claims of 80, at C = 8, were slower in two lanes: a
  // call's fixed cost weighs more, and the shared shard is one of five). docs/performance.md, "Two
  // lanes of one job's carried calls".
  let carrying = combined;
  const CARRIED_CALLS = 2; // three were slower (docs/performance.md)
  const laneOf = new WeakMap<Run, number>();
  const lanesInFlight = new Set<string>(); // job id and lane of the one-job calls in flight
  let asked = 0; // tasks the carried claims in flight asked for
  let inFlightRuns = 0; // runs the completion calls in flight report
  const send = () => {
    scheduled = false;
    if (pending.length === 0 || inFlight >= (carrying ? CARRIED_CALLS : 1)) return;
    let runs = pending.splice(0, 1_000);
    let lane: number | undefined; // a one-job call's lane
    let laneKey: string | undefined; // and its job, in lanesInFlight while the call is
    let rest: Run[] = []; // runs for a second call now (none in flight) or when this one lands
    if (carrying) {
      const byJob = Map.groupBy(runs, (run) => run.job_id);
      if (byJob.size === 1) {
        // One job's runs: a call a lane, one call in flight a lane
        const key = (l: number) => `${runs[0].job_id} ${l}`;
        const byLane = Map.groupBy(runs, (run) => laneOf.get(run) ?? 0);
        lane = [...byLane.keys()].find((l) => !lanesInFlight.has(key(l)));
        if (lane === undefined) {
          pending.unshift(...runs);
          return;
        }
        laneKey = key(lane);
        rest = runs.filter((run) => laneOf.get(run) !== lane);
        runs = byLane.get(lane)!;
      } else {
        // Two calls of about the same size: whole jobs into this call until it holds half of the
        // runs pending and in flight
        const half = Math.ceil((runs.length + inFlightRuns) / CARRIED_CALLS);
        const first: Run[] = [];
        for (const jobRuns of byJob.values()) (first.length < half ? first : rest).push(...jobRuns);
        if (rest.length > 0) runs = first;
      }
    }
    if (rest.length > 0) {
      pending.unshift(...rest);
      if (inFlight === 0) {
        scheduled = true;
        queueMicrotask(send);
      }
    }
    // the local queue's room less what the other call asked for; the first of two calls asks for
    // the slots it gives back, the last for the rest
    const room = Math.max(0, size - queue.length - asked);
    const ask = carrying ? (pending.length > 0 ? Math.min(room, runs.length) : room) : 0;
    asked += ask;
    inFlightRuns += runs.length;
    inFlight++;
    if (laneKey !== undefined) lanesInFlight.add(laneKey);
    complete(PROCESS_WORKER, runs, ask > 0 ? ask : undefined).then((claimed) => {
      if (ask > 0) {
        if (claimed?.length === 0) stats.emptyClaims++;
        enqueue(claimed ?? [], lane ?? 0);
        // all it asked for, with more room given back than it asked for: the jobs have room beyond
        // the local queue's, and claims go on their own again (beside the completions)
        if ((claimed?.length ?? 0) === ask && runs.length > ask) carrying = false;
      }
    }).catch((error) => {
      failure ??= error;
      wake();
    }).finally(() => {
      inFlight--;
      if (laneKey !== undefined) lanesInFlight.delete(laneKey);
      asked -= ask;
      inFlightRuns -= runs.length;
      for (const resolve of landed.splice(0)) resolve();
      schedule();
      wakeFetcher();
    });
  };
  // After the slots of this turn have added theirs; a call that will carry a claim waits for the
  // next turn of the event loop, when every slot has run what the last claim gave it, so that the
  // claim sees all the room they give back (sent in a microtask, it went out after the first 32 or
  // 64 completions and the rest waited for the next call: two calls a cycle where one does)
  const schedule = () => {
    if (scheduled || pending.length === 0) return;
    scheduled = true;
    if (carrying) setImmediate(send);
    else queueMicrotask(send);
  };
  const nextLanding = () => new Promise<void>((resolve) => landed.push(resolve));

  const running = () => succeeded < total && failure === undefined;
  const fetcher = async () => {
    let idle = 0;
    let short = false;
    try {
      while (running()) {
        // completions carry the claims while the jobs are at their limits (combined)
        const parked = carrying && (inFlight > 0 || pending.length > 0);
        if (queue.length >= c || parked) {
          await new Promise<void>((resolve) => (refill = resolve));
          continue;
        }
        // A claim that got less than it asked for met its jobs' limits: the room it lacked comes
        // back as our completions land, so the next claim waits for one. While the jobs have
        // room, a claim goes out at once, beside completions.
        if (short && inFlight > 0) await nextLanding();
        stats.claims++;
        const ask = size - queue.length;
        const tasks = await transport.claim(PROCESS_WORKER, ask);
        short = tasks.length < ask;
        carrying ||= combined && short;
        if (tasks.length === 0) {
          // Our own completions in flight free room in their jobs (parallelism, budgets): the next
          // claim waits for them instead of backing off; back off only when nothing of ours is
          // in flight.
          if (inFlight > 0 || pending.length > 0) {
            stats.emptyClaims++;
            continue;
          }
          // completions still in flight may be the last ones: wait for them, not the stall
          await idleClaim(++idle);
          continue;
        }
        idle = 0;
        const oneJob = tasks.every((task) => task.job_id === tasks[0].job_id);
        enqueue(tasks, carrying && oneJob && tasks.length >= LANES * MIN_LANE_RUNS ? undefined : 0);
      }
    } finally {
      fetching = false;
      wake();
    }
  };
  const batchedSlot = async () => {
    while (running()) {
      if (queue.length === 0) {
        if (!fetching) return;
        await new Promise<void>((resolve) => waiting.push(resolve));
        continue;
      }
      const next = queue.shift()!;
      if (queue.length < c) wakeFetcher();
      const run = record(next.task, next.claimedAt);
      laneOf.set(run, next.lane);
      pending.push(run);
      schedule();
      // the no-op handler returns at once: let the merger and the fetcher run between tasks
      await Promise.resolve();
    }
  };

  const start = performance.now();
  const fail = (error: unknown) => {
    failure ??= error;
    wake();
  };
  if (mode === "single") {
    await Promise.all(Array.from({ length: c }, (_, i) => slot(i).catch(fail)));
  } else {
    await Promise.all([
      fetcher().catch(fail),
      ...Array.from({ length: c }, () => batchedSlot().catch(fail)),
    ]);
  }
  while (inFlight > 0 || pending.length > 0) await nextLanding();
  if (failure !== undefined) throw failure;
  const n = await transport.countSucceeded(options.jobIds);
  if (n !== total) throw new Error(`count query found ${n} of ${total} tasks succeeded`);
  const result = throughput(total, performance.now() - start);
  once.assertOnce();
  return { ...result, ...stats, retries: transport.retries() };
}
