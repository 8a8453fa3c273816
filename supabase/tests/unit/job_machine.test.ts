// The status machine's single source: the committed generated files match the machine, and every
// guard means the same in TypeScript and in the SQL the database evaluates.
import assert from "node:assert/strict";
import fc from "fast-check";
import postgres from "postgres";
import { generatedFiles } from "../../../scripts/lib/generate.ts";
import {
  allowedRequests,
  decideRequest,
  type GuardName,
  GUARDS,
  type JobEvent,
  type JobFacts,
} from "../../functions/_shared/job_machine.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";
import { JOB_STATUSES } from "../../functions/_shared/job_statuses.ts";

const ROOT = new URL("../../../", import.meta.url);

Deno.test("generated files (transition table migration, diagram) match the machine", async () => {
  for (const file of generatedFiles()) {
    const committed = await Deno.readTextFile(new URL(file.path, ROOT));
    assert.equal(committed, file.content, `${file.path} is stale: run deno task gen`);
  }
});

Deno.test("decideRequest: cancel goes to cancelling or cancelled by running tasks; retrying never requested", () => {
  const facts: JobFacts = {
    status: "running",
    tasks: { total: 3, pending: 1, running: 1, succeeded: 1, failed: 0 },
    attempt: 1,
    max_attempts: 2,
    retry_on_errors: ["TIMEOUT"],
    next_attempt_at: null,
  };
  assert.deepEqual(decideRequest(facts, "cancelled"), { ok: true, target: "cancelling" });
  assert.deepEqual(decideRequest(facts, "cancelling"), { ok: true, target: "cancelling" });
  assert.deepEqual(
    decideRequest({ ...facts, tasks: { ...facts.tasks, running: 0 } }, "cancelling"),
    { ok: true, target: "cancelled" },
  );
  assert.deepEqual(decideRequest(facts, "failed", "TIMEOUT"), { ok: true, target: "retrying" });
  assert.deepEqual(decideRequest({ ...facts, attempt: 2 }, "failed", "TIMEOUT"), {
    ok: true,
    target: "failed",
  });
  assert.equal(decideRequest(facts, "retrying").ok, false);
  assert.equal(
    decideRequest(facts, "running").ok,
    false,
    "a request for the current status is refused",
  );
  assert.deepEqual(allowedRequests(facts), ["paused", "cancelled", "cancelling", "failed"]);
});

const facts = fc.record({
  status: fc.constantFrom(...JOB_STATUSES),
  tasks: fc.record({
    total: fc.constant(0),
    pending: fc.nat(3),
    running: fc.nat(3),
    succeeded: fc.nat(3),
    failed: fc.nat(3),
  }).map((t) => ({ ...t, total: t.pending + t.running + t.succeeded + t.failed })),
  attempt: fc.integer({ min: 1, max: 4 }),
  max_attempts: fc.integer({ min: 1, max: 4 }),
  retry_on_errors: fc.subarray(["TIMEOUT", "NETWORK_ERROR"]),
  next_attempt_at: fc.option(fc.integer({ min: -5000, max: 5000 }), { nil: null }),
});

Deno.test({
  name: "every guard holds in SQL exactly when it holds in TypeScript",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = postgres(Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL, {
      max: 1,
      onnotice: () => {},
    });
    try {
      await fc.assert(
        fc.asyncProperty(
          facts,
          fc.constantFrom(...(Object.keys(GUARDS) as GuardName[])),
          fc.option(fc.constantFrom("TIMEOUT", "NETWORK_ERROR", "INVALID_PAYLOAD"), {
            nil: undefined,
          }),
          async (f, guard, errorCode) => {
            const now = Date.now();
            const nextAttempt = f.next_attempt_at === null ? null : now + f.next_attempt_at;
            const event: JobEvent = guard === "retryDue"
              ? { type: "engine.retry_due", now }
              : { type: "to.failed", error_code: errorCode };
            const expected = GUARDS[guard].test({ ...f, next_attempt_at: nextAttempt }, event);
            const row = {
              attempt: f.attempt,
              max_attempts: f.max_attempts,
              retry_on_errors: f.retry_on_errors,
              next_attempt_at: nextAttempt === null ? null : new Date(nextAttempt).toISOString(),
            };
            const [{ holds }] = await sql`
              select job_service.job_guard_holds(
                ${guard},
                row(${f.tasks.total}, ${f.tasks.pending}, ${f.tasks.running}, ${f.tasks.succeeded},
                    ${f.tasks.failed}, 0, 0)::job_service.task_counts,
                jsonb_populate_record(null::job_service.jobs, ${sql.json(row)}),
                jsonb_populate_record(null::job_service.jobs, ${sql.json(row)}),
                ${errorCode ?? null}::text
              ) as holds`;
            // next_attempt_at within a few ms of now can flip between the two clocks
            if (guard === "retryDue" && nextAttempt !== null && Math.abs(nextAttempt - now) < 50) {
              return;
            }
            assert.equal(holds ?? false, expected, `${guard} ${JSON.stringify({ f, errorCode })}`);
          },
        ),
        { numRuns: 300 },
      );
    } finally {
      await sql.end();
    }
  },
});
