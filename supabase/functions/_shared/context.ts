// What the SQL entry points receive about the caller; they record it in the audit and event logs.
import type { Context } from "./dispatcher.ts";

export function sqlContext(ctx: Context) {
  return {
    role: ctx.caller.role,
    user_id: ctx.caller.userId,
    request_id: ctx.requestId,
    client_request_id: ctx.clientRequestId,
  };
}
