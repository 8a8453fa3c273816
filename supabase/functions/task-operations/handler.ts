// task-operations: the API workers use to claim and report tasks (service_role only).
import { createHandler } from "../_shared/dispatcher.ts";
import { addTasks } from "./actions/add_tasks.ts";
import { claimTasks } from "./actions/claim_tasks.ts";
import { heartbeat } from "./actions/heartbeat.ts";
import { completeTask, completeTasks } from "./actions/complete_tasks.ts";
import { failTask } from "./actions/fail_task.ts";

export const taskOperationsActions = {
  addTasks,
  claimTasks,
  heartbeat,
  completeTask,
  completeTasks,
  failTask,
};

export const handler = createHandler({
  name: "task-operations",
  roles: ["service_role"],
  actions: taskOperationsActions,
});
