// updateBatchJob: preconditions, detailed_status and progress, errors, the retry policy with small
// intervals, recovery, notifications, the audit trail, and racing updates.
import assert from "node:assert/strict";
import { asService, asUser, test, testDb } from "../helpers/service.ts";
import {
  assertInvariants,
  claim,
  createJob,
  getJob,
  runMaintenance,
  sleep,
  tasks,
  update,
} from "../helpers/jobs.ts";
import { type JobWithHistory } from "../../functions/_shared/job_schemas.ts";

test("expected_status is a precondition: 409 PRECONDITION_FAILED, nothing changed", async () => {
  const user = await asUser();
  const job = await createJob(user);
  const res = await update(user, { job_id: job.id, status: "paused", expected_status: "running" });
  assert.equal(res.status, 409);
  assert.equal(res.error?.code, "PRECONDITION_FAILED");
  assert.deepEqual(res.error?.details, { expected: "running", actual: "queued" });
  assert.equal((await getJob(user, job.id)).status, "queued");
  const ok = await update(user, { job_id: job.id, status: "paused", expected_status: "queued" });
  assert.equal(ok.status, 200);
  assert.equal(ok.data.status, "paused");
});

test("updateBatchJob needs one of status, detailed_status, error_details; validates each", async () => {
  const user = await asUser();
  const job = await createJob(user);
  const cases: [Record<string, unknown>, string][] = [
    [{}, "data"],
    [{ status: "done" }, "data.status"],
    [{ detailed_status: { progress_percentage: 101 } }, "data.detailed_status.progress_percentage"],
    [
      { detailed_status: { progress_percentage: 12.345 } },
      "data.detailed_status.progress_percentage",
    ],
    [{ detailed_status: { current_phase: "x".repeat(65) } }, "data.detailed_status.current_phase"],
    [{ detailed_status: { colour: 1 } }, "data.detailed_status.colour"],
    [{ error_details: { code: "bad", message: "m" } }, "data.error_details.code"],
    [
      { error_details: { code: "TIMEOUT", message: "é".repeat(2049) } },
      "data.error_details.message",
    ],
    [{ error_details: { code: "TIMEOUT" } }, "data.error_details.message"],
    [{ expected_status: "nope", status: "paused" }, "data.expected_status"],
  ];
  for (const [data, path] of cases) {
    const res = await update(user, { job_id: job.id, ...data });
    assert.equal(res.status, 400, JSON.stringify(data));
    const paths = (res.error?.details as { path: string }[]).map((d) => d.path);
    assert.ok(paths.includes(path), `${JSON.stringify(data)}: ${paths}`);
  }
  const missing = await update(user, { job_id: crypto.randomUUID(), status: "paused" });
  assert.equal(missing.status, 404);
  const other = await update(await asUser(), { job_id: job.id, status: "paused" });
  assert.equal(other.status, 404, "another user's job is not found");
});

test("detailed_status: the caller's phase; progress of a job without tasks may not go down", async () => {
  const user = await asUser();
  const job = await createJob(user);
  let res = await update(user, {
    job_id: job.id,
    detailed_status: {
      current_phase: "sending",
      progress_percentage: 40.5,
      active_tasks: 99,
      error_count: 7,
    },
  });
  assert.equal(res.status, 200);
  assert.deepEqual(res.data.detailed_status, {
    current_phase: "sending",
    progress_percentage: 40.5,
    active_tasks: 0,
    error_count: 0,
  });
  res = await update(user, { job_id: job.id, detailed_status: { progress_percentage: 40.49 } });
  assert.equal(res.status, 409);
  assert.equal(res.error?.code, "INVALID_PROGRESS");
  assert.equal((await getJob(user, job.id)).detailed_status.progress_percentage, 40.5);
  res = await update(user, { job_id: job.id, detailed_status: { progress_percentage: 100 } });
  assert.equal(res.data.detailed_status.progress_percentage, 100);
});

test("a job with tasks reports the share of ended tasks; the caller's progress is ignored", async () => {
  const user = await asUser();
  const job = await createJob(user, { tasks: tasks(3) });
  const [t] = await claim("w-progress", 1, { job_id: job.id });
  const service = await asService();
  await service.task("completeTask", { worker_id: "w-progress", task_id: t.task_id });
  const res = await update(user, {
    job_id: job.id,
    detailed_status: { current_phase: "halfway", progress_percentage: 90 },
  });
  assert.equal(res.status, 200);
  assert.equal(res.data.detailed_status.progress_percentage, 33.33);
  assert.equal(res.data.detailed_status.current_phase, "halfway");
});

test("error_details: an error row with its catalogue category, error_count and last_error", async () => {
  const user = await asUser();
  const job = await createJob(user);
  const stack = "at x\n".repeat(5000); // 25 000 bytes, cut to 16 KiB
  let res = await update(user, {
    job_id: job.id,
    error_details: { code: "INVALID_RECIPIENT", message: "no such mailbox", stack },
  });
  assert.equal(res.status, 200);
  assert.equal(res.data.status, "queued");
  assert.equal(res.data.detailed_status.error_count, 1);
  assert.deepEqual(
    { ...res.data.last_error, at: undefined },
    {
      code: "INVALID_RECIPIENT",
      category: "validation",
      message: "no such mailbox",
      at: undefined,
    },
  );
  res = await update(user, {
    job_id: job.id,
    error_details: { code: "SOMETHING_ODD", message: "?" },
  });
  assert.equal(res.data.last_error?.category, "unknown");
  assert.equal(res.data.detailed_status.error_count, 2);

  const full = await user.call<JobWithHistory>("getJob", { job_id: job.id, include: ["errors"] });
  assert.equal(full.data.errors!.length, 2);
  assert.equal(new TextEncoder().encode(full.data.errors![1].stack!).length, 16 * 1024);
  const [{ n }] = await testDb()`select count(*)::int as n from audit_log
                                  where job_id = ${job.id} and action = 'job.error_recorded'`;
  assert.equal(n, 2, "recording an error is an audited mutation");
});

test("retry policy, fixed backoff: retrying with next_attempt_at, maintenance starts attempts, then failed for good", async () => {
  const user = await asUser();
  const job = await createJob(user, {
    retry_config: { max_attempts: 3, retry_interval: 300, retry_on_errors: ["TIMEOUT"] },
  });
  await update(user, { job_id: job.id, status: "running" });
  for (let attempt = 1; attempt <= 2; attempt++) {
    const before = Date.now();
    const res = await update(user, {
      job_id: job.id,
      status: "failed",
      error_details: { code: "TIMEOUT", message: `attempt ${attempt} timed out` },
    });
    assert.equal(res.status, 200, JSON.stringify(res.error));
    assert.equal(res.data.status, "retrying");
    assert.equal(res.data.attempt, attempt);
    const wait = Date.parse(res.data.next_attempt_at!) - before;
    assert.ok(wait >= 250 && wait <= 1500, `fixed interval ~300 ms, got ${wait}`);

    await runMaintenance();
    assert.equal((await getJob(user, job.id)).status, "retrying", "not due yet");
    await sleep(Date.parse(res.data.next_attempt_at!) - Date.now() + 20);
    const ran = await runMaintenance();
    assert.ok((ran.retries_started as number) >= 1);
    const next = await getJob(user, job.id);
    assert.equal(next.status, "queued");
    assert.equal(next.attempt, attempt + 1);
    assert.equal(next.next_attempt_at, null);
    await update(user, { job_id: job.id, status: "running" });
  }
  const last = await update(user, {
    job_id: job.id,
    status: "failed",
    error_details: { code: "TIMEOUT", message: "attempt 3 timed out" },
  });
  assert.equal(last.data.status, "failed", "attempt 3 of 3: failed for good");
  assert.equal(last.data.attempt, 3);
  const notifications =
    await testDb()`select type, payload from notifications where job_id = ${job.id}`;
  assert.equal(notifications.length, 1);
  assert.equal(notifications[0].type, "job.failed");
  assert.equal(notifications[0].payload.last_error.code, "TIMEOUT");
});

test("retry policy: a code not in retry_on_errors fails for good at once; no error_details too", async () => {
  const user = await asUser();
  const a = await createJob(user, {
    retry_config: { max_attempts: 5, retry_interval: 10, retry_on_errors: ["TIMEOUT"] },
  });
  await update(user, { job_id: a.id, status: "running" });
  const res = await update(user, {
    job_id: a.id,
    status: "failed",
    error_details: { code: "INVALID_PAYLOAD", message: "cannot parse" },
  });
  assert.equal(res.data.status, "failed");
  const b = await createJob(user);
  await update(user, { job_id: b.id, status: "running" });
  assert.equal((await update(user, { job_id: b.id, status: "failed" })).data.status, "failed");
});

test("retry policy, exponential backoff doubles per attempt up to max_retry_interval", async () => {
  const user = await asUser();
  const job = await createJob(user, {
    retry_config: {
      max_attempts: 5,
      retry_interval: 1000,
      retry_on_errors: ["NETWORK_ERROR"],
      backoff: "exponential",
      max_retry_interval: 3000,
    },
  });
  const expected = [1000, 2000, 3000, 3000];
  for (let i = 0; i < expected.length; i++) {
    await update(user, { job_id: job.id, status: "running" });
    const res = await update(user, {
      job_id: job.id,
      status: "failed",
      error_details: { code: "NETWORK_ERROR", message: "reset" },
    });
    assert.equal(res.data.status, "retrying");
    const [{ delay }] = await testDb()`
      select round(extract(epoch from (j.next_attempt_at - e.created_at)) * 1000)::int as delay
      from jobs j join job_errors e on e.job_id = j.id
      where j.id = ${job.id} order by e.id desc limit 1`;
    assert.ok(
      Math.abs(delay - expected[i]) <= 5,
      `attempt ${i + 1}: ${delay} ms, expected ${expected[i]}`,
    );
    // the next attempt starts now (as maintenance would once it is due)
    await testDb()`update jobs set next_attempt_at = now() - interval '1 millisecond' where id = ${job.id}`;
    await runMaintenance();
  }
});

test("recovery failed → queued: attempt + 1, failed tasks back to pending with fresh attempts", async () => {
  const user = await asUser();
  const service = await asService();
  const job = await createJob(user, {
    tasks: tasks(2),
    retry_config: { max_attempts: 1, retry_interval: 0, retry_on_errors: [] },
  });
  const claimed = await claim("w-recover", 2, { job_id: job.id });
  await service.task("completeTask", { worker_id: "w-recover", task_id: claimed[0].task_id });
  const failed = await service.task<{ status: string }>("failTask", {
    worker_id: "w-recover",
    task_id: claimed[1].task_id,
    error: { code: "INVALID_RECIPIENT", message: "gone" },
  });
  assert.equal(failed.data.status, "failed");
  let state = await getJob(user, job.id);
  assert.equal(state.status, "failed", "the last task failed for good: the job failed");

  const res = await update(user, { job_id: job.id, status: "queued" });
  assert.equal(res.status, 200);
  assert.equal(res.data.status, "queued");
  assert.equal(res.data.attempt, 2);
  assert.deepEqual(res.data.tasks, {
    total: 2,
    pending: 1,
    running: 0,
    succeeded: 1,
    failed: 0,
    cancelled: 0,
  });
  const again = await claim("w-recover-2", 5, { job_id: job.id });
  assert.deepEqual(again.map((t) => [t.task_id, t.attempt]), [[claimed[1].task_id, 1]]);
  await service.task("completeTask", { worker_id: "w-recover-2", task_id: claimed[1].task_id });
  state = await getJob(user, job.id);
  assert.equal(state.status, "completed");
  await assertInvariants([job.id]);
});

test("cancel: pending tasks cancelled at once, running ones told to stop, cancelled when they end", async () => {
  const user = await asUser();
  const service = await asService();
  const job = await createJob(user, { tasks: tasks(5), max_parallel_tasks: 2 });
  const running = await claim("w-cancel", 2, { job_id: job.id });
  const res = await update(user, { job_id: job.id, status: "cancelled" });
  assert.equal(res.data.status, "cancelling");
  assert.deepEqual(res.data.tasks, {
    total: 5,
    pending: 0,
    running: 2,
    succeeded: 0,
    failed: 0,
    cancelled: 3,
  });
  const beat = await service.task<{ tasks: { action: string }[] }>("heartbeat", {
    worker_id: "w-cancel",
    tasks: running.map((t) => ({ task_id: t.task_id })),
  });
  assert.deepEqual(beat.data.tasks.map((t) => t.action), ["stop", "stop"]);
  assert.deepEqual(
    await claim("w-other", 5, { job_id: job.id }),
    [],
    "no claims from a cancelling job",
  );

  await service.task("completeTask", { worker_id: "w-cancel", task_id: running[0].task_id });
  const stopped = await service.task<{ status: string }>("failTask", {
    worker_id: "w-cancel",
    task_id: running[1].task_id,
    error: { code: "INTERNAL", message: "aborted on stop" },
  });
  assert.equal(stopped.data.status, "cancelled");
  const end = await getJob(user, job.id);
  assert.equal(end.status, "cancelled");
  assert.deepEqual(end.tasks, {
    total: 5,
    pending: 0,
    running: 0,
    succeeded: 1,
    failed: 0,
    cancelled: 4,
  });
  await assertInvariants([job.id]);
});

test("every move writes an event and an audit row with actor and request id", async () => {
  const user = await asUser();
  const job = await createJob(user);
  const clientId = `req-${crypto.randomUUID()}`;
  const res = await user.call("updateBatchJob", { job_id: job.id, status: "paused" }, {
    "x-request-id": clientId,
  });
  assert.equal(res.status, 200);
  const requestId = res.headers.get("x-request-id")!;
  assert.notEqual(requestId, clientId);
  const [event] = await testDb()`
    select from_status, to_status, actor_role, actor_id, request_id from job_events
    where job_id = ${job.id} and type = 'status_changed'`;
  assert.deepEqual({ ...event }, {
    from_status: "queued",
    to_status: "paused",
    actor_role: "authenticated",
    actor_id: user.userId,
    request_id: requestId,
  });
  const [audit] = await testDb()`
    select action, actor_id, request_id, client_request_id, before ->> 'status' as before,
           after ->> 'status' as after
    from audit_log where job_id = ${job.id} and action = 'job.updated'`;
  assert.deepEqual({ ...audit }, {
    action: "job.updated",
    actor_id: user.userId,
    request_id: requestId,
    client_request_id: clientId,
    before: "queued",
    after: "paused",
  });
});

test("20 concurrent conflicting updates: the outcome is exactly a serial order of them", async () => {
  const user = await asUser();
  const job = await createJob(user);
  const requests = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? "paused" : "queued"));
  const answers = await Promise.all(
    requests.map((status) => update(user, { job_id: job.id, status })),
  );

  const accepted = answers.filter((a) => a.status === 200);
  const refused = answers.filter((a) => a.status !== 200);
  assert.ok(refused.every((a) => a.status === 409 && a.error?.code === "INVALID_TRANSITION"));
  assert.ok(accepted.length >= 1);

  // The status changes the database recorded form one chain from the initial status...
  const events = await testDb()`
    select from_status, to_status from job_events
    where job_id = ${job.id} and type = 'status_changed' order by id`;
  let status = "queued";
  for (const e of events) {
    assert.equal(e.from_status, status, "each move starts where the previous one ended");
    status = e.to_status;
  }
  // ...with one link per accepted request, alternating as a serial execution must...
  assert.equal(events.length, accepted.length);
  assert.deepEqual(
    events.map((e) => e.to_status),
    accepted.map((_, i) => (i % 2 === 0 ? "paused" : "queued")),
  );
  // ...and every refusal names the state it met, which a serial order could have produced.
  for (const r of refused) {
    const details = r.error?.details as { from: string; to: string };
    assert.equal(
      details.from,
      details.to,
      "a request is refused only when the job is already there",
    );
  }
  assert.equal((await getJob(user, job.id)).status, status);
});
