// updateBatchJob: status moves decided by the status machine under the job's row lock, progress,
// errors and the retry policy.
import { ApiError } from "../../_shared/errors.ts";
import type { Action } from "../../_shared/dispatcher.ts";
import { jsonb, withDb } from "../../_shared/db.ts";
import { sqlContext } from "../../_shared/context.ts";
import { LIMITS, UpdateBatchJobData } from "../../_shared/job_schemas.ts";
import { decideRequest, type JobFacts } from "../../_shared/job_machine.ts";
import { truncateUtf8 } from "../../_shared/validation.ts";

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

    const job = await withDb((sql) =>
      sql.begin(async (tx) => {
        const [{ facts }] = await tx`
          select batch_api.lock_job(${jsonb(tx, sqlContext(ctx))}, ${data.job_id}::uuid) as facts`;
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
        const [{ job }] = await tx`
          select batch_api.apply_job_update(
            ${jsonb(tx, sqlContext(ctx))}, ${data.job_id}::uuid, ${target}::public.job_status,
            ${jsonb(tx, update)}
          ) as job`;
        return job;
      })
    );
    return { status: 200, body: { data: job } };
  },
};
