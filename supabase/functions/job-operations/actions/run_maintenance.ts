// runMaintenance: every timer, called by cron each minute. One run works at a time (a lease row in
// the database); each step is a series of short transactions so a backlog never holds long locks.
import type { Action } from "../../_shared/dispatcher.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { intEnv } from "../../_shared/env.ts";
import { RunMaintenanceData } from "../../_shared/job_schemas.ts";
import { runNotificationStep } from "../notifications.ts";
import { MaintenanceResult } from "../../_shared/operations_schemas.ts";

// The lease outlives the time budget a little; it is renewed before each step, so a run that dies
// (or cannot give it back) holds up the next one for at most LEASE_MS.
const LEASE_MS = 30_000;
const TIME_BUDGET_MS = 20_000;

/** A run of this instance that could not give its lease back (its connection died at the end). */
let unreleased: string | null = null;

async function release(run: string): Promise<boolean> {
  try {
    await db.endMaintenance({ run });
    return true;
  } catch {
    return false;
  }
}
const BATCH = 500;

type Step = (batch: number) => Promise<number>;

/** Runs a step in batches until it finds less than a full batch of work or the budget is spent. */
async function drain(step: Step, deadline: number): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await step(BATCH);
    total += n;
    if (n < BATCH || Date.now() > deadline) return total;
  }
}

export const runMaintenance: Action<typeof RunMaintenanceData> = {
  data: RunMaintenanceData,
  roles: ["service_role"],
  doc: {
    summary: "Every timer (lease expiry, retries, cancellations, notifications, retention).",
    responses: [
      { status: 200, schema: MaintenanceResult, description: "The work done by this run." },
    ],
  },

  async handle(data, ctx) {
    const options = { retention_days: data.retention_days ?? intEnv("JOB_RETENTION_DAYS", 30) };
    // give back first what an earlier run of this instance could not: else it would block every
    // run, this one included, until its lease ends
    if (unreleased && await release(unreleased)) unreleased = null;
    const run = crypto.randomUUID();
    const lease = async () => await db.beginMaintenance({ run, ttl_ms: LEASE_MS }) === true;
    const ok = await lease();
    const counts = {
      ran: ok as boolean,
      leases_expired: 0,
      retries_started: 0,
      jobs_cancelled: 0,
      notifications_delivered: 0,
      notifications_retrying: 0,
      notifications_failed: 0,
      notifications_purged: 0,
      jobs_purged: 0,
    };
    if (!ok) return { status: 200, body: { data: counts } };
    const deadline = Date.now() + TIME_BUDGET_MS;
    const c = sqlContext(ctx);
    // each step renews the lease first: a run that lost it (it outlived LEASE_MS) stops there
    const steps: (() => Promise<void>)[] = [
      async () => {
        counts.leases_expired = await drain((n) => db.expireLeases({ ctx: c, limit: n }), deadline);
      },
      async () => {
        counts.retries_started = await drain(
          (n) => db.startDueRetries({ ctx: c, limit: n }),
          deadline,
        );
      },
      async () => {
        counts.jobs_cancelled = await drain(
          (n) => db.finishCancelledJobs({ ctx: c, limit: n }),
          deadline,
        );
      },
      async () => {
        const notified = await runNotificationStep({
          deadline,
          retentionDays: options.retention_days,
          run,
        });
        counts.notifications_delivered = notified.delivered;
        counts.notifications_retrying = notified.retrying;
        counts.notifications_failed = notified.failed;
        counts.notifications_purged = notified.purged;
      },
      async () => {
        counts.jobs_purged = await drain(
          (n) => db.purgeFinishedJobs({ ctx: c, retention_days: options.retention_days, limit: n }),
          deadline,
        );
      },
    ];
    try {
      for (const [i, step] of steps.entries()) {
        if (i > 0 && !await lease()) break;
        await step();
      }
    } finally {
      // if this fails the next run of this instance gives it back, or the lease runs out
      if (!await release(run)) unreleased = run;
    }
    return { status: 200, body: { data: counts } };
  },
};
