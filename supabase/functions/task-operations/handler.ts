// task-operations: the API workers use to claim and report tasks (service_role only).
import { createHandler } from "../_shared/dispatcher.ts";

export const taskOperationsActions = {};

export const handler = createHandler({
  name: "task-operations",
  roles: ["service_role"],
  actions: taskOperationsActions,
});
