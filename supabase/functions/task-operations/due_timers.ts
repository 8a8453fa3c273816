// Overdue timers on the back of the workers' claims (before) and reports (after): where the
// maintenance schedule does not run (not set up yet, or broken), expired leases are still reclaimed,
// due retries still start and cancelling jobs (pending deletions too) still finish. The database bounds the work
// (job_service_api.run_due_timers: ≤ 100 rows a call, one caller at a time, at most once a second
// per database, never while runMaintenance runs); this module asks at most once a second per
// instance, so a busy worker fleet costs one extra statement per instance and second. A failure
// never fails the claim. DUE_TIMERS=off switches it off.
import * as db from "../_shared/sql_api.ts";
import type { Context } from "../_shared/dispatcher.ts";
import { sqlContext } from "../_shared/context.ts";
import { env } from "../_shared/env.ts";
import type { DueTimersResult } from "../_shared/operations_schemas.ts";

/** How often one instance asks (the database refuses more than once a second anyway). */
export const DUE_TIMERS_INTERVAL_MS = 1_000;
/** Rows of work per call at most (the database caps it at 100 too). */
export const DUE_TIMERS_LIMIT = 100;

let nextAt = 0;

export function dueTimersEnabled(): boolean {
  return env("DUE_TIMERS")?.toLowerCase() !== "off";
}

/**
 * Runs the overdue timers when this instance has not asked in the last second; resolves to what
 * they did, or null when it did not ask (or the call failed: logged, the claim goes on).
 */
export async function runDueTimers(ctx: Context): Promise<DueTimersResult | null> {
  if (!dueTimersEnabled()) return null;
  const now = Date.now();
  if (now < nextAt) return null;
  nextAt = now + DUE_TIMERS_INTERVAL_MS;
  try {
    return await db.runDueTimers({ ctx: sqlContext(ctx), limit: DUE_TIMERS_LIMIT });
  } catch (error) {
    if (env("LOG_LEVEL") !== "silent") {
      console.log(JSON.stringify({
        level: "warn",
        time: new Date().toISOString(),
        msg: "overdue timers not run",
        request_id: ctx.requestId,
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      }));
    }
    return null;
  }
}

/** For tests: the next claim asks again whatever the time. */
export function resetDueTimers(): void {
  nextAt = 0;
}
