// The stress test's checker judged on histories made by hand: a correct one passes, and each
// broken one (double completion, parallelism breach, lost task, counter drift, …) fails with the
// invariant it breaks.
import assert from "node:assert/strict";
import { checkHistory, type CheckOptions, INVARIANTS } from "../stress/checker.ts";
import type { Call, FinalJob, FinalState, History } from "../stress/history.ts";

const JOB = "00000000-0000-4000-8000-00000000000a";
const JOB2 = "00000000-0000-4000-8000-00000000000b";
const OWNER = "00000000-0000-4000-8000-0000000000aa";
const T0 = 1_700_000_000_000;

interface TaskSpec {
  task_id: number;
  job_id?: string;
  attempt?: number;
  lease?: number;
  resources?: { memory: number; cpu: number } | null;
}

/** Builds histories: each call takes 5 ms, at the time given or 5 ms after the previous one. */
class Builder {
  calls: Call[] = [];
  final?: FinalState;
  private seq = 0;
  private now = T0;

  at(t: number): this {
    this.now = T0 + t;
    return this;
  }

  add(
    actor: string,
    action: string,
    data: Record<string, unknown>,
    status: number,
    answer?: unknown,
    extra: Partial<Call> = {},
  ): Call {
    const start = this.now;
    this.now += 5;
    const call: Call = {
      seq: this.seq++,
      actor,
      as: action === "createJob" ? OWNER : "service",
      fn: ["createJob", "updateBatchJob", "deleteJob", "getJob", "listJobs", "runMaintenance"]
          .includes(action)
        ? "job-operations"
        : "task-operations",
      action,
      data,
      start,
      end: this.now,
      status,
      ...(status < 300 ? { result: answer } : { error: answer as Call["error"] }),
      ...extra,
    };
    this.now += 5;
    this.calls.push(call);
    return call;
  }

  create(
    id = JOB,
    options: {
      tasks?: number;
      max_parallel_tasks?: number;
      status?: string;
      retry?: Record<string, unknown>;
      limits?: { max_memory: number; max_cpu: number } | null;
      key?: string;
    } = {},
  ): this {
    const n = options.tasks ?? 2;
    this.add(
      "creator",
      "createJob",
      {
        product_id: "p",
        sending_group_id: "g",
        tasks: Array.from({ length: n }, (_, i) => ({ payload: i })),
        ...(options.key ? { idempotency_key: options.key } : {}),
      },
      201,
      {
        ...jobShape(id, options.status ?? "queued", {
          total: n,
          pending: n,
          running: 0,
          succeeded: 0,
          failed: 0,
          cancelled: 0,
        }, options.max_parallel_tasks ?? 10),
        user_id: OWNER,
        retry_config: {
          max_attempts: 3,
          retry_interval: 100,
          retry_on_errors: ["TIMEOUT", "WORKER_LOST"],
          backoff: "fixed",
          max_retry_interval: 3_600_000,
          ...options.retry,
        },
        resource_limits: options.limits ?? null,
      },
    );
    return this;
  }

  claim(worker: string, tasks: TaskSpec[], leaseMs = 60_000): this {
    const start = this.now;
    this.add("worker", "claimTasks", { worker_id: worker, limit: 10 }, 200, {
      tasks: tasks.map((t) => ({
        task_id: t.task_id,
        job_id: t.job_id ?? JOB,
        payload: null,
        attempt: t.attempt ?? 1,
        lease_expires_at: new Date(t.lease ?? start + leaseMs).toISOString(),
        resources: t.resources ?? null,
      })),
    });
    return this;
  }

  complete(worker: string, taskId: number, status = 200): this {
    this.add(
      "worker",
      "completeTask",
      { worker_id: worker, task_id: taskId },
      status,
      status === 200 ? { task_id: taskId, status: "succeeded" } : { code: "LEASE_LOST" },
    );
    return this;
  }

  fail(worker: string, taskId: number, code: string, outcome: string, nextAt?: number): this {
    this.add(
      "worker",
      "failTask",
      {
        worker_id: worker,
        task_id: taskId,
        error: { code, message: "m" },
      },
      200,
      {
        task_id: taskId,
        status: outcome,
        ...(nextAt !== undefined ? { next_attempt_at: new Date(nextAt).toISOString() } : {}),
      },
    );
    return this;
  }

  update(status: string, answer: string, id = JOB): this {
    this.add("updater", "updateBatchJob", { job_id: id, status }, 200, {
      ...jobShape(id, answer, zero()),
    });
    return this;
  }

  end(
    jobs: FinalJob[],
    tasks: { id: number; status: string; attempt?: number; job_id?: string }[],
    more: Partial<FinalState> = {},
  ): this {
    this.final = {
      quiescent: true,
      jobs,
      tasks: tasks.map((t) => ({ job_id: JOB, attempt: 1, ...t })),
      errors: [],
      events: [
        { job_id: JOB, type: "created", from_status: null, to_status: "queued" },
        { job_id: JOB, type: "status_changed", from_status: "queued", to_status: "running" },
        { job_id: JOB, type: "status_changed", from_status: "running", to_status: "completed" },
      ],
      dbViolations: [],
      ...more,
    };
    return this;
  }

  history(): History {
    return { calls: this.calls, final: this.final };
  }
}

function zero() {
  return { total: 0, pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
}

function jobShape(
  id: string,
  status: string,
  tasks: FinalJob["tasks"],
  maxParallel = 10,
): FinalJob & Record<string, unknown> {
  const ended = tasks.succeeded + tasks.failed + tasks.cancelled;
  return {
    id,
    status,
    max_parallel_tasks: maxParallel,
    tasks,
    detailed_status: {
      active_tasks: tasks.running,
      error_count: 0,
      progress_percentage: tasks.total ? Math.round(10000 * ended / tasks.total) / 100 : 0,
    },
    deletion_requested: false,
  };
}

function completedJob(n: number, maxParallel = 10): FinalJob {
  return jobShape(JOB, "completed", { ...zero(), total: n, succeeded: n }, maxParallel);
}

/** The invariants the history breaks (sorted, without repeats). */
function broken(h: Builder, options?: CheckOptions): string[] {
  const result = checkHistory(h.history(), options);
  return [...new Set(result.violations.map((v) => v.invariant))].sort();
}

/** Two tasks, one worker after the other: everything holds. */
function cleanHistory(): Builder {
  return new Builder().create(JOB, { tasks: 2, max_parallel_tasks: 1 })
    .claim("w1", [{ task_id: 1 }])
    .complete("w1", 1)
    .claim("w2", [{ task_id: 2 }])
    .complete("w2", 2)
    .end([completedJob(2, 1)], [{ id: 1, status: "succeeded" }, { id: 2, status: "succeeded" }]);
}

Deno.test("checker: a correct history passes, and every invariant was checked", () => {
  const result = checkHistory(cleanHistory().history());
  assert.deepEqual(result.violations, []);
  assert.equal(result.runs, 2);
  assert.equal(result.tasks, 2);
  for (
    const name of [
      "answers-documented",
      "completed-once",
      "parallelism",
      "counters-equal-rows",
      "no-lost-task",
      "status-machine",
      "success-durable",
      "nothing-stuck",
    ] as const
  ) {
    assert.ok(result.checks[name] > 0, `${name} was checked`);
  }
  assert.equal(Object.keys(result.checks).length, Object.keys(INVARIANTS).length);
});

Deno.test("checker catches a double completion (two runs of one task both acknowledged)", () => {
  const h = new Builder().create(JOB, { tasks: 1 })
    .claim("w1", [{ task_id: 1 }], 10)
    .at(200).claim("w2", [{ task_id: 1, attempt: 2 }])
    .complete("w1", 1)
    .complete("w2", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded" }]);
  assert.deepEqual(broken(h), ["completed-once"]);
  // a replay by the same worker is one completion, not two
  const replay = new Builder().create(JOB, { tasks: 1 })
    .claim("w1", [{ task_id: 1 }])
    .complete("w1", 1)
    .complete("w1", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded" }]);
  assert.deepEqual(broken(replay), []);
});

Deno.test("checker catches a completed task that is claimed again", () => {
  const h = new Builder().create(JOB, { tasks: 1 })
    .claim("w1", [{ task_id: 1 }])
    .complete("w1", 1)
    .claim("w2", [{ task_id: 1, attempt: 1 }])
    .end([completedJob(1)], [{ id: 1, status: "succeeded" }], { quiescent: false });
  assert.ok(broken(h).includes("completed-once"));
});

Deno.test("checker catches a task held by two workers at once", () => {
  const h = new Builder().create(JOB, { tasks: 1 })
    .claim("w1", [{ task_id: 1 }])
    .claim("w2", [{ task_id: 1 }])
    .complete("w2", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded" }]);
  assert.ok(broken(h).includes("one-holder-at-a-time"));
  // the same two claims are fine once the first lease has expired
  const expired = new Builder().create(JOB, { tasks: 1 })
    .claim("w1", [{ task_id: 1 }], 5)
    .at(200).claim("w2", [{ task_id: 1, attempt: 2 }])
    .complete("w2", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded" }]);
  assert.deepEqual(broken(expired), []);
});

Deno.test("checker catches an accepted completion by a worker that never held the task", () => {
  const h = new Builder().create(JOB, { tasks: 1 })
    .claim("w1", [{ task_id: 1 }])
    .complete("intruder", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded" }]);
  assert.ok(broken(h).includes("one-holder-at-a-time"));
});

Deno.test("checker catches a parallelism breach", () => {
  const h = new Builder().create(JOB, { tasks: 2, max_parallel_tasks: 1 })
    .claim("w1", [{ task_id: 1 }])
    .claim("w2", [{ task_id: 2 }])
    .complete("w1", 1)
    .complete("w2", 2)
    .end([completedJob(2, 1)], [{ id: 1, status: "succeeded" }, { id: 2, status: "succeeded" }]);
  assert.deepEqual(broken(h), ["parallelism"]);
  // the same with max_parallel_tasks 2 holds
  const ok = new Builder().create(JOB, { tasks: 2, max_parallel_tasks: 2 })
    .claim("w1", [{ task_id: 1 }])
    .claim("w2", [{ task_id: 2 }])
    .complete("w1", 1)
    .complete("w2", 2)
    .end([completedJob(2, 2)], [{ id: 1, status: "succeeded" }, { id: 2, status: "succeeded" }]);
  assert.deepEqual(broken(ok), []);
});

Deno.test("checker catches a resource budget breach", () => {
  const limits = { max_memory: 100, max_cpu: 1 };
  const h = new Builder().create(JOB, { tasks: 2, limits })
    .claim("w1", [{ task_id: 1, resources: { memory: 60, cpu: 0.5 } }])
    .claim("w2", [{ task_id: 2, resources: { memory: 60, cpu: 0.5 } }])
    .complete("w1", 1)
    .complete("w2", 2)
    .end([completedJob(2)], [{ id: 1, status: "succeeded" }, { id: 2, status: "succeeded" }]);
  assert.deepEqual(broken(h), ["resource-budget"]);
});

Deno.test("checker catches a lost task: claimed, then gone; fewer rows than created; a job that vanished", () => {
  const gone = new Builder().create(JOB, { tasks: 2 })
    .claim("w1", [{ task_id: 1 }, { task_id: 2 }])
    .complete("w1", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded" }], { quiescent: false });
  assert.ok(broken(gone).includes("no-lost-task"));

  const vanished = new Builder().create(JOB, { tasks: 2 })
    .end([], [], { events: [] });
  assert.deepEqual(broken(vanished), ["no-lost-task"]);

  // deleted on purpose is not lost
  const deleted = new Builder().create(JOB, { tasks: 2 });
  deleted.add("deleter", "deleteJob", { job_id: JOB }, 200, {
    job_id: JOB,
    deleted: true,
    tasks_deleted: 2,
    errors_deleted: 0,
    events_deleted: 1,
  });
  deleted.end([], [], { events: [] });
  assert.deepEqual(broken(deleted), []);
});

Deno.test("checker catches counter drift, in the end state and in any answer", () => {
  const drift = cleanHistory();
  drift.final!.jobs[0].tasks = { ...zero(), total: 2, succeeded: 3, failed: -1 };
  assert.deepEqual(broken(drift), ["counters-equal-rows"]);

  const errors = cleanHistory();
  errors.final!.jobs[0].detailed_status.error_count = 1;
  assert.deepEqual(broken(errors), ["counters-equal-rows"]);

  const answer = cleanHistory();
  answer.add("reader", "getJob", { job_id: JOB }, 200, {
    ...jobShape(JOB, "running", {
      total: 2,
      pending: 1,
      running: 0,
      succeeded: 0,
      failed: 0,
      cancelled: 0,
    }),
  });
  assert.deepEqual(broken(answer), ["job-answers-consistent"]);

  const active = cleanHistory();
  const shape = jobShape(JOB, "running", { ...zero(), total: 1, running: 1 });
  shape.detailed_status.active_tasks = 0;
  active.add("reader", "getJob", { job_id: JOB }, 200, shape);
  assert.deepEqual(broken(active), ["job-answers-consistent"]);
});

Deno.test("checker catches a broken retry policy: failed for good too early, retried too soon", () => {
  const early = new Builder().create(JOB, { tasks: 1 })
    .claim("w1", [{ task_id: 1 }])
    .fail("w1", 1, "TIMEOUT", "failed")
    .end([jobShape(JOB, "failed", { ...zero(), total: 1, failed: 1 })], [{
      id: 1,
      status: "failed",
    }], {
      events: [
        { job_id: JOB, type: "created", from_status: null, to_status: "queued" },
        { job_id: JOB, type: "status_changed", from_status: "queued", to_status: "running" },
        { job_id: JOB, type: "status_changed", from_status: "running", to_status: "failed" },
      ],
      errors: [{ job_id: JOB, task_id: 1, code: "TIMEOUT", attempt: 1 }],
    });
  early.final!.jobs[0].detailed_status.error_count = 1;
  assert.deepEqual(broken(early), ["retry-policy"]);

  const soon = new Builder().create(JOB, { tasks: 1, retry: { retry_interval: 500 } })
    .at(10).claim("w1", [{ task_id: 1 }])
    .at(20).fail("w1", 1, "TIMEOUT", "pending", T0 + 520)
    .at(100).claim("w2", [{ task_id: 1, attempt: 2 }])
    .complete("w2", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded", attempt: 2 }], {
      errors: [{ job_id: JOB, task_id: 1, code: "TIMEOUT", attempt: 1 }],
    });
  soon.final!.jobs[0].detailed_status.error_count = 1;
  assert.deepEqual(broken(soon), ["retry-policy"]);

  const waited = new Builder().create(JOB, { tasks: 1, retry: { retry_interval: 500 } })
    .at(10).claim("w1", [{ task_id: 1 }])
    .at(20).fail("w1", 1, "TIMEOUT", "pending", T0 + 520)
    .at(600).claim("w2", [{ task_id: 1, attempt: 2 }])
    .complete("w2", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded", attempt: 2 }], {
      errors: [{ job_id: JOB, task_id: 1, code: "TIMEOUT", attempt: 1 }],
    });
  waited.final!.jobs[0].detailed_status.error_count = 1;
  assert.deepEqual(broken(waited), []);

  const exponential = new Builder().create(JOB, {
    tasks: 1,
    retry: { retry_interval: 100, backoff: "exponential", max_attempts: 5 },
  })
    .at(10).claim("w1", [{ task_id: 1 }])
    .at(20).fail("w1", 1, "TIMEOUT", "pending")
    .at(200).claim("w2", [{ task_id: 1, attempt: 2 }])
    .at(210).fail("w2", 1, "TIMEOUT", "pending")
    // attempt 2 failed: the wait is 200 ms, not 100
    .at(350).claim("w3", [{ task_id: 1, attempt: 3 }])
    .complete("w3", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded", attempt: 3 }], {
      errors: [
        { job_id: JOB, task_id: 1, code: "TIMEOUT", attempt: 1 },
        { job_id: JOB, task_id: 1, code: "TIMEOUT", attempt: 2 },
      ],
    });
  exponential.final!.jobs[0].detailed_status.error_count = 2;
  assert.deepEqual(broken(exponential), ["retry-policy"]);
});

Deno.test("checker catches attempts out of sequence and above max_attempts", () => {
  const h = new Builder().create(JOB, { tasks: 1, retry: { max_attempts: 2 } })
    .claim("w1", [{ task_id: 1, attempt: 3 }])
    .complete("w1", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded", attempt: 3 }]);
  assert.deepEqual(broken(h), ["attempt-sequence"]);
});

Deno.test("checker: a claim may start a due job retry (overdue timers), but only for a task that failed for good", () => {
  const attemptBreaches = (outcome: string) => {
    const h = new Builder().create(JOB, { tasks: 1, retry: { retry_interval: 10 } })
      .at(10).claim("w1", [{ task_id: 1 }])
      .at(20).fail("w1", 1, "TIMEOUT", "pending", T0 + 30)
      .at(40).claim("w2", [{ task_id: 1, attempt: 2 }])
      .at(50).fail("w2", 1, "TIMEOUT", outcome, outcome === "pending" ? T0 + 60 : undefined)
      // no runMaintenance and no recovery by update: the claim ran the overdue timers itself
      .at(100).claim("w3", [{ task_id: 1, attempt: 1 }])
      .complete("w3", 1)
      .end([completedJob(1)], [{ id: 1, status: "succeeded", attempt: 1 }]);
    return checkHistory(h.history()).violations.filter((v) => v.invariant === "attempt-sequence");
  };
  assert.deepEqual(
    attemptBreaches("failed"),
    [],
    "failed for good, then a job retry: attempt 1 again",
  );
  assert.equal(attemptBreaches("pending").length, 1, "a task retry must go on with attempt 2");
});

Deno.test("checker catches a claim from a paused, cancelled or deleted job", () => {
  for (const [status, answer] of [["paused", "paused"], ["cancelled", "cancelled"]]) {
    const h = new Builder().create(JOB, { tasks: 1 })
      .update(status, answer)
      .claim("w1", [{ task_id: 1 }])
      .complete("w1", 1)
      .end([completedJob(1)], [{ id: 1, status: "succeeded" }]);
    assert.ok(broken(h).includes("claims-respect-status"), status);
  }
  // claimed after the job was resumed: fine
  const resumed = new Builder().create(JOB, { tasks: 1 })
    .update("paused", "paused")
    .update("queued", "queued")
    .claim("w1", [{ task_id: 1 }])
    .complete("w1", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded" }]);
  assert.deepEqual(broken(resumed), []);

  // a resume sent while the pause was under way may take effect after it: no proof of a breach
  const racing = new Builder().create(JOB, { tasks: 1 }).at(100);
  racing.add("pauser", "updateBatchJob", { job_id: JOB, status: "paused" }, 200, {
    ...jobShape(JOB, "paused", { ...zero(), total: 1, pending: 1 }),
  });
  racing.calls.at(-1)!.end = T0 + 120;
  racing.at(110).add("updater", "updateBatchJob", { job_id: JOB, status: "queued" }, 200, {
    ...jobShape(JOB, "queued", { ...zero(), total: 1, pending: 1 }),
  });
  racing.at(200).claim("w1", [{ task_id: 1 }]).complete("w1", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded" }]);
  assert.deepEqual(broken(racing), []);

  const deleted = new Builder().create(JOB, { tasks: 1 });
  deleted.add("deleter", "deleteJob", { job_id: JOB }, 200, { job_id: JOB, deleted: true });
  deleted.claim("w1", [{ task_id: 1 }]);
  deleted.add(
    "reader",
    "getJob",
    { job_id: JOB },
    200,
    jobShape(JOB, "running", {
      ...zero(),
      total: 1,
      running: 1,
    }),
  );
  assert.deepEqual(broken(deleted), ["claims-respect-status", "deleted-stays-deleted"]);
});

Deno.test("checker catches moves outside the status machine and terminal jobs coming back", () => {
  const h = cleanHistory();
  h.final!.events.push(
    { job_id: JOB, type: "status_changed", from_status: "completed", to_status: "running" },
  );
  h.final!.jobs[0].status = "running";
  assert.deepEqual(broken(h), ["status-machine", "terminal-stays-terminal"]);

  const answers = new Builder().create(JOB, { tasks: 0 }).update("cancelled", "cancelled");
  answers.add("reader", "getJob", { job_id: JOB }, 200, jobShape(JOB, "queued", zero()));
  assert.deepEqual(broken(answers), ["terminal-stays-terminal"]);

  const wrongAnswer = new Builder().create(JOB, { tasks: 0 }).update("paused", "running");
  assert.deepEqual(broken(wrongAnswer), ["status-machine"]);

  const refusal = new Builder().create(JOB, { tasks: 0 });
  refusal.add("updater", "updateBatchJob", { job_id: JOB, status: "paused" }, 409, {
    code: "INVALID_TRANSITION",
    message: "no",
    details: { from: "queued", to: "paused", allowed: ["paused", "running"] },
  });
  assert.deepEqual(broken(refusal), ["status-machine"]);
});

Deno.test("checker catches undocumented answers: a 500, a 503 outside a fault run or without Retry-After", () => {
  const h500 = cleanHistory();
  h500.add("reader", "getJob", { job_id: JOB }, 500, { code: "INTERNAL_ERROR", message: "x" });
  assert.deepEqual(broken(h500), ["answers-documented"]);

  const h503 = cleanHistory();
  h503.add("reader", "getJob", { job_id: JOB }, 503, {
    code: "SERVICE_UNAVAILABLE",
    message: "x",
  }, { retryAfter: "1" });
  assert.deepEqual(broken(h503), ["answers-documented"]);
  assert.deepEqual(broken(h503, { allowUnavailable: true }), []);

  const noRetryAfter = cleanHistory();
  noRetryAfter.add("reader", "getJob", { job_id: JOB }, 503, {
    code: "SERVICE_UNAVAILABLE",
    message: "x",
  }, { retryAfter: null });
  assert.deepEqual(broken(noRetryAfter, { allowUnavailable: true }), ["answers-documented"]);

  const wrongCode = cleanHistory();
  wrongCode.add("worker", "completeTask", { worker_id: "w", task_id: 9 }, 409, {
    code: "INVALID_TRANSITION",
    message: "x",
  });
  assert.deepEqual(broken(wrongCode), ["answers-documented"]);
});

Deno.test("checker catches a task left running once everything expired, and an acknowledged success undone", () => {
  const stuck = new Builder().create(JOB, { tasks: 1 })
    .claim("w1", [{ task_id: 1 }], 10)
    .end([jobShape(JOB, "running", { ...zero(), total: 1, running: 1 })], [{
      id: 1,
      status: "running",
    }], {
      events: [
        { job_id: JOB, type: "created", from_status: null, to_status: "queued" },
        { job_id: JOB, type: "status_changed", from_status: "queued", to_status: "running" },
      ],
    });
  assert.deepEqual(broken(stuck), ["nothing-stuck"]);

  const undone = cleanHistory();
  undone.final!.tasks[0].status = "pending";
  undone.final!.jobs[0].tasks = { ...zero(), total: 2, pending: 1, succeeded: 1 };
  undone.final!.jobs[0].detailed_status.progress_percentage = 50;
  assert.deepEqual(broken(undone), ["success-durable"]);
});

Deno.test("checker catches an idempotency key that made two jobs, and passes on database violations", () => {
  const h = new Builder().create(JOB, { tasks: 0, key: "k" }).create(JOB2, { tasks: 0, key: "k" });
  assert.deepEqual(broken(h), ["idempotency"]);

  const db = cleanHistory();
  db.final!.dbViolations.push({
    job_id: JOB,
    invariant: "shard counts its running tasks",
    detail: "x",
  });
  assert.deepEqual(broken(db), ["db-invariants"]);
});

Deno.test("checker: under faults a claim without an answer explains a later attempt number", () => {
  const h = new Builder().create(JOB, { tasks: 1 });
  h.add("worker", "claimTasks", { worker_id: "w0", limit: 1 }, 503, {
    code: "SERVICE_UNAVAILABLE",
    message: "x",
  }, { retryAfter: "1" });
  h.at(200).claim("w1", [{ task_id: 1, attempt: 2 }]).complete("w1", 1)
    .end([completedJob(1)], [{ id: 1, status: "succeeded", attempt: 2 }]);
  assert.deepEqual(broken(h, { allowUnavailable: true }), []);
  assert.deepEqual(broken(h), ["answers-documented"]);
});
