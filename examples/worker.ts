// A worker for the batch job service, to copy into your own project (with the typed client,
// client/job_service.ts, that it calls the task-operations function with). It claims tasks, runs
// your handler for each, keeps their leases alive with heartbeats, reports results in batches, and
// stops gracefully (finishes what it holds) on SIGINT/SIGTERM.
//
//   deno run -A examples/worker.ts            (SUPABASE_URL, SUPABASE_SERVICE_KEY, WORKER_ID)
//
// Throw a TaskError("CODE", "message") from the handler to choose the error code the job's retry
// policy judges; any other exception is reported as INTERNAL. When the job stops a task (cancel,
// failure), `signal` aborts: finish quickly or throw.
import { createClient } from "@supabase/supabase-js";
import { type ClaimedTask, JobServiceClient } from "../client/job_service.ts";

export type { ClaimedTask };

/** the most tasks one claimTasks call may ask for (the API's bound, limits.ts `claimLimit`) */
const CLAIM_LIMIT = 1000;

export interface TaskContext {
  /** aborted when the job asks this task to stop, or the lease is lost */
  signal: AbortSignal;
  /** reported with the next heartbeat (MiB, cores) */
  reportUsage(usage: { memory: number; cpu: number }): void;
}

export type Handler = (task: ClaimedTask, ctx: TaskContext) => Promise<unknown>;

export class TaskError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export interface WorkerOptions {
  /** project URL, e.g. https://<ref>.supabase.co (or the local server) */
  url: string;
  /** a service key: the functions serve workers with role service_role only */
  serviceKey: string;
  workerId: string;
  handler: Handler;
  /** tasks run at once (default 10) */
  concurrency?: number;
  /** tasks asked for per claim at most (default and cap: the API's claim limit, 1 000); a claim
   * asks for all free slots at once, up to this */
  batchSize?: number;
  /** lease per task (default 60 s); heartbeats renew it at a third of that */
  leaseMs?: number;
  /** wait before claiming again after an empty claim (default 500 ms) */
  idleMs?: number;
  /** results are sent together after this delay (default 20 ms) */
  completeDelayMs?: number;
  onError?: (error: unknown) => void;
}

interface Running {
  task: ClaimedTask;
  controller: AbortController;
  usage?: { memory: number; cpu: number };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

export class Worker {
  private readonly client: JobServiceClient;
  private readonly running = new Map<number, Running>();
  private readonly stopping = new AbortController();
  private pendingResults: { task_id: number; result?: unknown }[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private flushing: Promise<unknown> = Promise.resolve();
  /** flushes queued or in flight */
  private reporting = 0;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: WorkerOptions) {
    this.client = new JobServiceClient(createClient(options.url, options.serviceKey, {
      auth: { persistSession: false, autoRefreshToken: false },
    }));
  }

  /** Starts claiming; resolves when stop() has finished every held task. */
  start(): Promise<void> {
    const leaseMs = this.options.leaseMs ?? 60_000;
    this.heartbeat = setInterval(() => this.beat().catch(this.report), Math.max(1000, leaseMs / 3));
    this.loop = this.claimLoop();
    return this.loop;
  }

  /** Graceful stop: no new claims, held tasks finish and are reported. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
  }

  private report = (error: unknown) => (this.options.onError ?? console.error)(error);

  private async claimLoop(): Promise<void> {
    const concurrency = this.options.concurrency ?? 10;
    while (!this.stopping.signal.aborted) {
      const free = concurrency - this.running.size;
      if (free <= 0) {
        await sleep(10, this.stopping.signal);
        continue;
      }
      let tasks: ClaimedTask[] = [];
      const limit = Math.min(free, this.options.batchSize ?? CLAIM_LIMIT, CLAIM_LIMIT);
      try {
        // reports waiting to be sent carry the claim: one call and one commit instead of two,
        // and the claim sees the room they give back
        const carried = this.pendingResults.length > 0 ? await this.flush(limit) : undefined;
        tasks = carried ?? (await this.client.claimTasks({
          worker_id: this.options.workerId,
          limit,
          lease_ms: this.options.leaseMs ?? 60_000,
        })).tasks;
      } catch (error) {
        this.report(error); // a JobServiceError (503 and friends): back off and try again
      }
      if (tasks.length === 0) {
        if (this.pendingResults.length > 0 || this.reporting > 0) {
          // our own reports give room back in their jobs (parallelism, budgets): send them now
          // and claim again once they land, instead of idling
          await this.flush().catch(this.report);
          continue;
        }
        await sleep(this.options.idleMs ?? 500, this.stopping.signal);
        continue;
      }
      for (const task of tasks) this.run(task);
    }
    // drain: wait for held tasks, then send what is left
    while (this.running.size > 0) await sleep(10);
    clearInterval(this.heartbeat);
    clearTimeout(this.flushTimer);
    await this.flush();
  }

  private run(task: ClaimedTask): void {
    const entry: Running = { task, controller: new AbortController() };
    this.running.set(task.task_id, entry);
    const ctx: TaskContext = {
      signal: entry.controller.signal,
      reportUsage: (usage) => (entry.usage = usage),
    };
    this.options.handler(task, ctx)
      .then((result) => this.queueResult(task.task_id, result))
      .catch((error) => this.fail(task, error))
      .finally(() => this.running.delete(task.task_id));
  }

  private queueResult(taskId: number, result: unknown): void {
    this.pendingResults.push({ task_id: taskId, ...(result === undefined ? {} : { result }) });
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      this.flush().catch(this.report);
    }, this.options.completeDelayMs ?? 20);
  }

  /**
   * Sends the queued reports; given a claim limit, the last call also claims (completeTasks with
   * `claim`) and its tasks are the answer (undefined when no call carried the claim).
   */
  private flush(claim?: number): Promise<ClaimedTask[] | undefined> {
    this.reporting++;
    // after the flush before it, whether that one got its reports through or not
    const done = this.flushing.catch(() => {}).then(async () => {
      let claimed: ClaimedTask[] | undefined;
      while (this.pendingResults.length > 0) {
        const batch = this.pendingResults.splice(0, 1000);
        for (let attempt = 0;; attempt++) {
          // a retry never claims: the first try may have claimed before its answer was lost
          const limit = attempt === 0 && this.pendingResults.length === 0 ? claim : undefined;
          try {
            const answer = await this.client.completeTasks({
              worker_id: this.options.workerId,
              tasks: batch,
              ...(limit !== undefined
                ? { claim: { limit, lease_ms: this.options.leaseMs ?? 60_000 } }
                : {}),
            });
            if (limit !== undefined) {
              claimed = answer.claimed ?? [];
              claim = undefined; // once: reports that arrive meanwhile go without
            }
            break;
          } catch (error) {
            // completing is idempotent for the worker that holds the task: retry safely
            if (attempt >= 5) throw error;
            await sleep(200 * 2 ** attempt);
          }
        }
      }
      return claimed;
    }).finally(() => this.reporting--);
    this.flushing = done;
    return done;
  }

  private async fail(task: ClaimedTask, error: unknown): Promise<void> {
    const code = error instanceof TaskError ? error.code : "INTERNAL";
    const message = (error instanceof Error ? error.message : String(error)).slice(0, 4000) || code;
    try {
      await this.client.failTask({
        worker_id: this.options.workerId,
        task_id: task.task_id,
        error: { code, message, stack: error instanceof Error ? error.stack : undefined },
      });
    } catch (reportError) {
      this.report(reportError); // the lease will expire and the task will come back
    }
  }

  private async beat(): Promise<void> {
    if (this.running.size === 0) return;
    const held = [...this.running.values()];
    const { tasks } = await this.client.heartbeat({
      worker_id: this.options.workerId,
      tasks: held.map((r) => ({
        task_id: r.task.task_id,
        ...(r.usage ? { usage: r.usage } : {}),
      })),
    });
    for (const answer of tasks) {
      if (answer.action !== "continue") {
        this.running.get(answer.task_id)?.controller.abort(answer.action);
      }
    }
  }
}

if (import.meta.main) {
  const url = Deno.env.get("SUPABASE_URL") ?? "http://127.0.0.1:54321";
  const serviceKey = Deno.env.get("SUPABASE_SERVICE_KEY");
  if (!serviceKey) {
    console.error("set SUPABASE_SERVICE_KEY (locally: deno task token --role service_role)");
    Deno.exit(2);
  }
  const worker = new Worker({
    url,
    serviceKey,
    workerId: Deno.env.get("WORKER_ID") ?? `worker-${crypto.randomUUID().slice(0, 8)}`,
    concurrency: Number(Deno.env.get("CONCURRENCY") ?? 10),
    handler: async (task, { signal }) => {
      // replace with the real work, e.g. sending the message in task.payload
      console.log(`task ${task.task_id} of job ${task.job_id}, attempt ${task.attempt}`);
      await sleep(50, signal);
      if (signal.aborted) throw new TaskError("INTERNAL", "stopped by its job");
      return { sent_at: new Date().toISOString() };
    },
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => {
      console.error(`${sig}: finishing held tasks`);
      worker.stop();
    });
  }
  await worker.start();
}
