// updateBatchJob: status moves decided by the status machine, progress, errors and the retry policy.
//
// No lock is held across round trips: read the job's facts, decide with the machine, then apply the
// move in one statement that locks the job and refuses a decision the job has moved on from
// (STALE_DECISION) — or that its counters no longer allow (the trigger's INVALID_TRANSITION); such
// a decision is simply made again on fresh facts.
import { ApiError } from "../../_shared/errors.ts";
import type { Action } from "../../_shared/dispatcher.ts";
import * as db from "../../_shared/sql_api.ts";
import { sqlContext } from "../../_shared/context.ts";
import { BatchJob, type JobStatus, LIMITS, UpdateBatchJobData } from "../../_shared/job_schemas.ts";
import { decideRequest } from "../../_shared/job_machine.ts";
import { truncateUtf8 } from "../../_shared/validation.ts";

/** Enough for every request of a burst of concurrent updates to get its turn. */
const MAX_DECISIONS = 40;

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const updateBatchJob: Action<typeof UpdateBatchJobData> = {
  data: UpdateBatchJobData,
  roles: ["authenticated", "service_role"],
  doc: {
    summary: "Status moves checked by the status machine, progress, errors and the retry policy.",
    responses: [{ status: 200, schema: BatchJob, description: "The updated job." }],
  },

  async handle(data, ctx) {
    const error = data.error_details && {
      code: data.error_details.code,
      message: data.error_details.message,
      stack: data.error_details.stack === undefined
        ? undefined
        : truncateUtf8(data.error_details.stack, LIMITS.stackBytes),
    };
    const update = { detailed_status: data.detailed_status, error_details: error };
    const context = sqlContext(ctx);

    for (let round = 1;; round++) {
      const current = await db.jobFacts({ ctx: context, job_id: data.job_id });
      if (data.expected_status !== undefined && current.status !== data.expected_status) {
        throw new ApiError(
          409,
          "PRECONDITION_FAILED",
          `The job is ${current.status}, not ${data.expected_status}.`,
          { expected: data.expected_status, actual: current.status },
        );
      }
      let target: JobStatus | null = null;
      if (data.status !== undefined) {
        const decision = decideRequest(current, data.status, error?.code);
        if (!decision.ok) {
          throw new ApiError(
            409,
            "INVALID_TRANSITION",
            `The job cannot move from ${decision.from} to ${decision.to}.`,
            { from: decision.from, to: decision.to, allowed: decision.allowed },
          );
        }
        target = decision.target;
      }
      try {
        const job = await db.applyJobUpdate({
          ctx: context,
          job_id: data.job_id,
          decided_from: current.status,
          target,
          update,
          expected_status: data.expected_status ?? null,
        });
        return { status: 200, body: { data: job } };
      } catch (failure) {
        const stale = failure instanceof ApiError &&
          (failure.code === "STALE_DECISION" || failure.code === "INVALID_TRANSITION");
        if (!stale) throw failure;
        if (round >= MAX_DECISIONS) {
          throw new ApiError(
            409,
            "PRECONDITION_FAILED",
            "The job kept changing while this update was decided; send it again.",
            { expected: current.status },
          );
        }
        await delay(Math.random() * 2 * round);
      }
    }
  },
};
