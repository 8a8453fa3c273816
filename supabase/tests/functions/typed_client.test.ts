// The typed client (client/job_service.ts) against the served functions: it covers every action
// of both functions, answers with the data of the action, and turns every failure into a
// JobServiceError with the API's code, details, request id and HTTP status.
import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import { JobServiceClient, JobServiceError } from "../../../client/job_service.ts";
import { jobOperationsActions } from "../../functions/job-operations/handler.ts";
import { taskOperationsActions } from "../../functions/task-operations/handler.ts";
import { BatchJob, JobList } from "../../functions/_shared/job_schemas.ts";
import { ClaimTasksResult } from "../../functions/_shared/task_schemas.ts";
import { clientWith, newUserId, serviceToken, test, userToken } from "../helpers/service.ts";

const asUser = async (id = newUserId()) =>
  new JobServiceClient(await clientWith(await userToken(id)));
const asService = async () => new JobServiceClient(await clientWith(await serviceToken()));

async function refusal(call: Promise<unknown>): Promise<JobServiceError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof JobServiceError, `a JobServiceError, not ${error}`);
    return error;
  }
  throw new Error("the call was not refused");
}

test("the typed client has a function for every action of both functions", async () => {
  const client = await asService();
  const served = [...Object.keys(jobOperationsActions), ...Object.keys(taskOperationsActions)];
  assert.ok(served.includes("setUserLimits"));
  for (const action of served) {
    assert.equal(typeof (client as unknown as Record<string, unknown>)[action], "function", action);
  }
});

test("the typed client answers with each action's data, as its schema describes it", async () => {
  const user = await asUser();
  const job = await user.createJob({
    product_id: "typed",
    sending_group_id: "g",
    tasks: [{ payload: { n: 1 } }],
  }, { idempotencyKey: `typed-${crypto.randomUUID()}`, requestId: "typed-client-1" });
  BatchJob.parse(job);
  JobList.parse(await user.listJobs({ product_id: "typed", limit: 5 }));
  const service = await asService();
  const claimed = await service.claimTasks({ worker_id: "typed", limit: 1, job_id: job.id });
  ClaimTasksResult.parse(claimed);
  const done = await service.completeTask({
    worker_id: "typed",
    task_id: claimed.tasks[0].task_id,
  });
  assert.deepEqual(done, { task_id: claimed.tasks[0].task_id, status: "succeeded" });
  const finished = await user.getJob({ job_id: job.id, include: ["events"] });
  assert.equal(finished.status, "completed");
  assert.ok(finished.events && finished.events.length > 0);
});

test("a refusal is a JobServiceError with the API's code, details, request id and status", async () => {
  const user = await asUser();
  const job = await user.createJob({ product_id: "typed", sending_group_id: "g", start: false });

  const conflict = await refusal(
    user.updateBatchJob({ job_id: job.id, status: "paused" }, { requestId: "typed-409" }),
  );
  assert.equal(conflict.status, 409);
  assert.equal(conflict.code, "INVALID_TRANSITION");
  assert.deepEqual(conflict.details, {
    from: "pending",
    to: "paused",
    allowed: ["queued", "cancelled", "cancelling"],
  });
  // the server's id of the request (the one its log and audit rows carry), not the caller's
  assert.match(conflict.request_id ?? "", /^[0-9a-f-]{36}$/);
  assert.notEqual(conflict.request_id, "typed-409");

  const invalid = await refusal(user.getJob({ job_id: "not-a-uuid" }));
  assert.equal(invalid.status, 400);
  assert.equal(invalid.code, "VALIDATION_ERROR");
  assert.ok(Array.isArray(invalid.details) && invalid.details.length === 1);
  assert.match(invalid.request_id ?? "", /\S/);

  const hidden = await refusal((await asUser()).getJob({ job_id: job.id }));
  assert.equal(hidden.status, 404);
  assert.equal(hidden.code, "JOB_NOT_FOUND");

  const forbidden = await refusal(user.getStats());
  assert.equal(forbidden.status, 403);
  assert.equal(forbidden.code, "FORBIDDEN");
});

test("an unreachable service is a JobServiceError with code NETWORK_ERROR and status 0", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens there now
  const client = new JobServiceClient(
    createClient(`http://127.0.0.1:${port}`, await serviceToken(), {
      auth: { persistSession: false, autoRefreshToken: false },
    }),
  );
  const error = await refusal(client.listJobs());
  assert.equal(error.code, "NETWORK_ERROR");
  assert.equal(error.status, 0);
  assert.equal(error.request_id, null);
});

test("an aborted call rejects with the caller's reason", async () => {
  const controller = new AbortController();
  const reason = new Error("the caller gave up");
  controller.abort(reason);
  await assert.rejects(
    (await asUser()).listJobs({}, { signal: controller.signal }),
    (e) => e === reason,
  );
});
