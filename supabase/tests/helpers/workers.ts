// Simulated workers over HTTP for the engine tests: they claim, optionally heartbeat, then complete
// or fail each task, and record every run with client-side times (a run's recorded interval lies
// inside the interval the database held it running).
import { asService, type Caller } from "./service.ts";
import type { ClaimedTask } from "../../functions/_shared/task_schemas.ts";

export interface Run {
  task_id: number;
  job_id: string;
  attempt: number;
  worker: string;
  claimed_at: number;
  ended_at: number;
  outcome: string;
  reserved: { memory: number; cpu: number } | null;
}

export type Decision = "complete" | { fail: string } | "abandon";

export interface WorkerOptions {
  id: string;
  limit: number;
  jobId?: string;
  /** how long a task "runs" before its report */
  workMs?: number;
  decide?: (task: ClaimedTask) => Decision;
  /** stop when this returns true after an empty claim */
  done: () => Promise<boolean> | boolean;
  history: Run[];
  statuses: number[];
  batchComplete?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runWorker(options: WorkerOptions): Promise<void> {
  const service: Caller = await asService();
  for (;;) {
    const claim = await service.task<{ tasks: ClaimedTask[] }>("claimTasks", {
      worker_id: options.id,
      limit: options.limit,
      ...(options.jobId ? { job_id: options.jobId } : {}),
    });
    options.statuses.push(claim.status);
    // the job this worker serves is gone (deleted): nothing more to do
    if (claim.status === 404 && options.jobId) return;
    const claimedAt = performance.now();
    const claimed = claim.status === 200 ? claim.data.tasks : [];
    if (claimed.length === 0) {
      if (await options.done()) return;
      await sleep(5);
      continue;
    }
    if (options.workMs) await sleep(options.workMs);
    const decisions = claimed.map((t) => ({
      task: t,
      decision: options.decide?.(t) ?? "complete",
    }));
    const completions = decisions.filter((d) => d.decision === "complete").map((d) => d.task);
    const record = (task: ClaimedTask, outcome: string) =>
      options.history.push({
        task_id: task.task_id,
        job_id: task.job_id,
        attempt: task.attempt,
        worker: options.id,
        claimed_at: claimedAt,
        ended_at: performance.now(),
        outcome,
        reserved: task.resources,
      });
    if (options.batchComplete && completions.length > 0) {
      const endedAt = performance.now();
      const res = await service.task<{ tasks: { task_id: number; status: string }[] }>(
        "completeTasks",
        {
          worker_id: options.id,
          tasks: completions.map((t) => ({ task_id: t.task_id, result: { by: options.id } })),
        },
      );
      options.statuses.push(res.status);
      for (const t of completions) {
        const outcome = res.data?.tasks.find((x) => x.task_id === t.task_id)?.status ??
          `http ${res.status}`;
        options.history.push({
          task_id: t.task_id,
          job_id: t.job_id,
          attempt: t.attempt,
          worker: options.id,
          claimed_at: claimedAt,
          ended_at: endedAt,
          outcome,
          reserved: t.resources,
        });
      }
    }
    await Promise.all(decisions.map(async ({ task, decision }) => {
      if (decision === "abandon") return;
      if (decision === "complete") {
        if (options.batchComplete) return;
        record(task, "succeeded?");
        const index = options.history.length - 1;
        const res = await service.task("completeTask", {
          worker_id: options.id,
          task_id: task.task_id,
        });
        options.statuses.push(res.status);
        options.history[index].outcome = res.status === 200 ? "succeeded" : `http ${res.status}`;
        return;
      }
      record(task, "failed?");
      const index = options.history.length - 1;
      const res = await service.task<{ status: string }>("failTask", {
        worker_id: options.id,
        task_id: task.task_id,
        error: { code: decision.fail, message: `failed by ${options.id}` },
      });
      options.statuses.push(res.status);
      options.history[index].outcome = res.status === 200
        ? `fail:${res.data.status}`
        : `http ${res.status}`;
    }));
  }
}
