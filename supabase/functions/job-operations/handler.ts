// job-operations: the API the web application uses to create, steer, read and delete jobs.
import { createHandler } from "../_shared/dispatcher.ts";
import { createJob } from "./actions/create_job.ts";
import { getJob } from "./actions/get_job.ts";
import { listJobs } from "./actions/list_jobs.ts";
import { updateBatchJob } from "./actions/update_batch_job.ts";
import { runMaintenance } from "./actions/run_maintenance.ts";
import { getStats } from "./actions/get_stats.ts";
import { deleteJob } from "./actions/delete_job.ts";
import { setGroupRateLimit } from "./actions/set_group_rate_limit.ts";
import { setUserLimits } from "./actions/set_user_limits.ts";

export const jobOperationsActions = {
  createJob,
  updateBatchJob,
  deleteJob,
  getJob,
  listJobs,
  runMaintenance,
  getStats,
  setGroupRateLimit,
  setUserLimits,
};

export const handler = createHandler({
  name: "job-operations",
  roles: ["authenticated", "service_role"],
  actions: jobOperationsActions,
});
