// What a person may do to a job from its current status: the moves the status machine allows
// (supabase/functions/_shared/job_machine.ts, the same definition the function decides with), and
// deleting it. The service decides again when the request arrives; a job that moved on meanwhile
// answers 409 with what is allowed then.
import { allowedRequests, type JobFacts } from "../supabase/functions/_shared/job_machine.ts";
import type { BatchJob, JobServiceClient } from "../client/job_service.ts";

export interface JobAction {
  id: "start" | "resume" | "recover" | "pause" | "cancel" | "delete" | "force-delete";
  label: string;
  /** what the confirmation asks */
  confirm: string;
  danger: boolean;
  /** what the page says once the service answered */
  run(client: JobServiceClient, job: BatchJob): Promise<string>;
}

export function factsOf(job: BatchJob): JobFacts {
  return {
    status: job.status,
    tasks: job.tasks,
    attempt: job.attempt,
    max_attempts: job.retry_config.max_attempts,
    retry_on_errors: job.retry_config.retry_on_errors,
    next_attempt_at: job.next_attempt_at === null ? null : Date.parse(job.next_attempt_at),
  };
}

function move(
  id: JobAction["id"],
  label: string,
  to: "queued" | "paused" | "cancelled",
  confirm: string,
  danger = false,
): JobAction {
  return {
    id,
    label,
    confirm,
    danger,
    async run(client, job) {
      const updated = await client.updateBatchJob({ job_id: job.id, status: to });
      return `${label}: the job is ${updated.status} now.`;
    },
  };
}

/** The actions the page offers for the job as it is now, in the order they are shown. */
export function actionsFor(job: BatchJob): JobAction[] {
  const allowed = new Set(allowedRequests(factsOf(job)));
  const running = job.tasks.running;
  const actions: JobAction[] = [];
  if (allowed.has("queued")) {
    if (job.status === "pending") {
      actions.push(
        move("start", "Start", "queued", "Queue this job so that workers take its tasks?"),
      );
    } else if (job.status === "paused") {
      actions.push(
        move("resume", "Resume", "queued", "Resume this job: workers take its tasks again?"),
      );
    } else {
      actions.push(move(
        "recover",
        "Recover",
        "queued",
        "Recover this job: its failed tasks run again with fresh attempts?",
      ));
    }
  }
  if (allowed.has("paused")) {
    actions.push(move(
      "pause",
      "Pause",
      "paused",
      "Pause this job? Running tasks finish; no new task starts until it is resumed.",
    ));
  }
  if (allowed.has("cancelled")) {
    actions.push(move(
      "cancel",
      "Cancel",
      "cancelled",
      running > 0
        ? `Cancel this job? Its ${running} running tasks are told to stop; the rest never run.`
        : "Cancel this job? Its remaining tasks never run. This cannot be undone.",
      true,
    ));
  }
  actions.push({
    id: "delete",
    label: "Delete",
    confirm: running > 0
      ? `Delete this job? Its ${running} running tasks are stopped first; the job, its tasks, ` +
        "errors and events are deleted when they have ended."
      : "Delete this job with its tasks, errors and events? This cannot be undone.",
    danger: true,
    async run(client, job) {
      const result = await client.deleteJob({ job_id: job.id });
      return result.deleted
        ? `Deleted job ${job.id} (${result.tasks_deleted} tasks).`
        : `Deletion of job ${job.id} is pending: it is cancelling and is deleted when its ` +
          "running tasks have stopped.";
    },
  });
  if (running > 0 || job.status === "cancelling") {
    actions.push({
      id: "force-delete",
      label: "Force delete",
      confirm: "Force delete this job now? Running tasks are cancelled at once (their workers' " +
        "reports are refused) and everything is deleted. This cannot be undone.",
      danger: true,
      async run(client, job) {
        const result = await client.deleteJob({ job_id: job.id, force: true });
        return `Deleted job ${job.id}${result.deleted ? ` (${result.tasks_deleted} tasks)` : ""}.`;
      },
    });
  }
  return actions;
}
