// updateBatchJob: status moves decided by the status machine, progress, errors and the retry policy.
//
// No lock is held across round trips: read the job's facts, decide with the machine, then apply the
// move in one statement that locks the job and refuses a decision the job has moved on from
// (STALE_DECISION) — or that its counters no longer allow (the trigger's INVALID_TRANSITION); such
// a decision is simply made again on fresh facts.
import { ApiError } from "../../_shared/errors.ts";
import type { Action } from "../../_shared/dispatcher.ts";
import { jsonb, queryOne } from "../../_shared/db.ts";
import { sqlContext } from "../../_shared/context.ts";
import { type BatchJob, LIMITS, UpdateBatchJobData } from "../../_shared/job_schemas.ts";
import { decideRequest, type JobFacts } from "../../_shared/job_machine.ts";
import { truncateUtf8 } from "../../_shared/validation.ts";

/** Enough for every request of a burst of concurrent updates to get its turn. */
const MAX_DECISIONS = 40;

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const updateBatchJob: Action<typeof UpdateBatchJobData> = {
  data: UpdateBatchJobData,
  roles: ["authenticated", "service_role"],

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
      const { facts } = await queryOne(
        (sql) =>
          sql`select job_service_api.job_facts(${
            jsonb(sql, context)
          }, ${data.job_id}::uuid) as facts`,
        "facts",
      );
      const current = facts as JobFacts;
      if (data.expected_status !== undefined && current.status !== data.expected_status) {
        throw new ApiError(
          409,
          "PRECONDITION_FAILED",
          `The job is ${current.status}, not ${data.expected_status}.`,
          { expected: data.expected_status, actual: current.status },
        );
      }
      let target: string | null = null;
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
        const { job } = await queryOne((sql) =>
          sql`select job_service_api.apply_job_update(
            ${jsonb(sql, context)}, ${data.job_id}::uuid, ${current.status}::job_service.job_status,
            ${target}::job_service.job_status, ${jsonb(sql, update)},
            ${data.expected_status ?? null}::job_service.job_status
          ) as job`, "job");
        return { status: 200, body: { data: job as BatchJob } };
      } catch (failure) {
        const stale = failure instanceof ApiError &&
          ((failure.code as string) === "STALE_DECISION" || failure.code === "INVALID_TRANSITION");
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
