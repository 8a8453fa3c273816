// The job statuses (status-machine.md), in a module of their own so that code running in a browser
// (the dashboard) can name them and use the status machine without loading zod.
export const JOB_STATUSES = [
  "pending",
  "queued",
  "running",
  "paused",
  "retrying",
  "cancelling",
  "completed",
  "failed",
  "cancelled",
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
