// The engine's invariants (docs/architecture.md) judged on a recorded history (T2), next to the engine's own check.
import { maxOverlap } from "../../scripts/lib/intervals.ts";
import type { Run } from "./workers.ts";

export interface JobLimits {
  maxParallel: number;
  limits: { max_memory: number; max_cpu: number } | null;
}

/** Every violation found in the history; empty when all hold. */
export function historyViolations(history: Run[], jobs: Map<string, JobLimits>): string[] {
  const problems: string[] = [];
  const runsOf = new Map<number, Run[]>();
  for (const run of history) runsOf.set(run.task_id, [...runsOf.get(run.task_id) ?? [], run]);
  for (const [taskId, runs] of runsOf) {
    const done = runs.filter((r) => r.status === "succeeded").length;
    if (done !== 1) problems.push(`task ${taskId} completed ${done} times`);
    if (runs.length > 1) problems.push(`task ${taskId} claimed ${runs.length} times`);
  }
  const byJob = Map.groupBy(history, (r) => r.job_id);
  for (const [jobId, job] of jobs) {
    const runs = byJob.get(jobId) ?? [];
    const running = maxOverlap(runs, () => 1);
    if (running > job.maxParallel) {
      problems.push(`job ${jobId}: ${running} running at once, max ${job.maxParallel}`);
    }
    if (job.limits) {
      if (runs.some((r) => r.reserved === null)) {
        problems.push(`job ${jobId}: a claim without its reservation`);
      }
      const memory = maxOverlap(runs, (r) => r.reserved?.memory ?? 0);
      const cpu = maxOverlap(runs, (r) => r.reserved?.cpu ?? 0);
      if (memory > job.limits.max_memory + 1e-9 || cpu > job.limits.max_cpu + 1e-9) {
        problems.push(
          `job ${jobId}: reserved ${memory} MiB / ${cpu} cores at once, limits ` +
            `${job.limits.max_memory} / ${job.limits.max_cpu}`,
        );
      }
    }
  }
  return problems;
}
