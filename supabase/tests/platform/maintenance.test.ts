// Maintenance without hand steps (platform.md, "Maintenance on a fresh deployment"), on a database
// of its own and a real server (scripts/serve.ts in a child process) so that nothing left by
// other tests is in the way:
// - with no schedule, the claims run the overdue timers: a task whose lease expired is claimable
//   again after a claim call, a due retry runs, a pending deletion completes; bounded (≤ 100 rows,
//   at most once a second, one caller at a time, not while runMaintenance holds its lease);
// - the one step that schedules runMaintenance (job_service_api.schedule_maintenance and
//   `deno task maintenance:schedule`) against stand-ins of Vault, pg_cron and pg_net with their
//   signatures (a plain PostgreSQL has none of them), idempotent; a missing extension is named;
// - getStats.maintenance says whether the schedule exists and when the timers last ran.
import assert from "node:assert/strict";
import postgres from "postgres";
import { createClient, FunctionsHttpError, type SupabaseClient } from "@supabase/supabase-js";
import { serviceToken, test, userToken } from "../helpers/service.ts";
import { sleep } from "../helpers/jobs.ts";
import { dropDatabase, resetDatabase, RUNTIME_ROLE } from "../../../scripts/lib/database.ts";
import { type ServerProcess, spawnServer } from "../../../scripts/lib/server_process.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";
import type { Stats } from "../../functions/_shared/operations_schemas.ts";
import type { BatchJob } from "../../functions/_shared/job_schemas.ts";
import type { ClaimedTask } from "../../functions/_shared/task_schemas.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const STAND_IN = new URL("../helpers/supabase_extensions_stand_in.sql", import.meta.url);
const CTX = { role: "service_role", user_id: null, request_id: "maintenance-test" };

function sibling(suffix: string): string {
  const url = new URL(Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL);
  url.pathname = `${url.pathname}_${suffix}`;
  return url.toString();
}

const DB = sibling("maintenance");
let ready: Promise<{ server: ServerProcess; sql: postgres.Sql }> | undefined;

/** The scratch database, migrated, and a server on it (once for the file). */
function setUp() {
  ready ??= (async () => {
    await resetDatabase(DB);
    const server = await spawnServer({ SUPABASE_DB_URL: DB, LOG_LEVEL: "error" });
    const sql = postgres(DB, { max: 4, onnotice: () => {} });
    addEventListener("unload", () => {
      server.stop();
    });
    return { server, sql };
  })();
  return ready;
}

async function call<T>(
  bearer: string,
  fn: "job-operations" | "task-operations",
  action: string,
  data: unknown,
): Promise<{ status: number; data: T; code?: string }> {
  const { server } = await setUp();
  const client: SupabaseClient = createClient(server.url, bearer, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
  const { data: body, error, response } = await client.functions.invoke(fn, {
    body: { action, data },
  });
  if (error) {
    if (!(error instanceof FunctionsHttpError)) throw error;
    const res = error.context as Response;
    const parsed = await res.json();
    return { status: res.status, data: undefined as T, code: parsed.error?.code };
  }
  return { status: response!.status, data: (body as { data: T }).data };
}

const service = async <T>(
  fn: "job-operations" | "task-operations",
  action: string,
  data: unknown,
) => await call<T>(await serviceToken(), fn, action, data);

async function claim(worker: string, jobId: string, limit = 1, leaseMs?: number) {
  const res = await service<{ tasks: ClaimedTask[] }>("task-operations", "claimTasks", {
    worker_id: worker,
    limit,
    job_id: jobId,
    ...(leaseMs ? { lease_ms: leaseMs } : {}),
  });
  assert.equal(res.status, 200, res.code);
  return res.data.tasks;
}

async function createJob(data: Record<string, unknown>): Promise<BatchJob> {
  const res = await service<BatchJob>("job-operations", "createJob", {
    product_id: "maintenance-test",
    sending_group_id: "g",
    user_id: crypto.randomUUID(),
    ...data,
  });
  assert.equal(res.status, 201, res.code);
  return res.data;
}

/** Waits past the timers' once-a-second limit (the server's and the database's). */
async function timersDue(sql: postgres.Sql) {
  const [{ wait }] = await sql`
    select greatest(0, extract(epoch from last_run_at + interval '1 second' - clock_timestamp())
      * 1000)::int as wait
    from job_service.due_timers where last_run_at > '-infinity'`.then((r) =>
    r.length ? r : [{ wait: 0 }]
  );
  await sleep(Math.max(wait, 1100));
}

async function stats(): Promise<Stats["maintenance"]> {
  const res = await service<Stats>("job-operations", "getStats", {});
  assert.equal(res.status, 200, res.code);
  return res.data.maintenance;
}

test("no schedule: a task whose lease expired is claimable again after a claim call", async () => {
  const { sql } = await setUp();
  const before = await stats();
  assert.equal(before.scheduled, false, "no pg_cron here: nothing is scheduled");
  assert.equal(before.last_run_at, null);

  const job = await createJob({
    tasks: [{ payload: { n: 1 } }],
    retry_config: { max_attempts: 3, retry_interval: 0, retry_on_errors: ["WORKER_LOST"] },
  });
  const [first] = await claim("w-gone", job.id, 1, 1000);
  assert.equal(first.attempt, 1);
  await timersDue(sql);
  // the worker vanished; nobody runs maintenance; the next claim reclaims its task first
  const again = await claim("w-next", job.id, 1);
  assert.deepEqual(again.map((t) => [t.task_id, t.attempt]), [[first.task_id, 2]]);
  const [error] =
    await sql`select code, attempt from job_service.job_errors where task_id = ${first.task_id}`;
  assert.deepEqual({ ...error }, { code: "WORKER_LOST", attempt: 1 });

  const after = await stats();
  assert.ok(after.due_timers_last_run_at, "getStats says when the claims ran the timers");
  assert.equal(after.scheduled, false);
  assert.equal(after.overdue, true, "no runMaintenance run in the last 2 minutes");
});

test("no schedule: a report runs the overdue timers after it is recorded", async () => {
  const { sql } = await setUp();
  const job = await createJob({
    tasks: [{ payload: { n: 1 } }, { payload: { n: 2 } }],
    retry_config: { max_attempts: 3, retry_interval: 0, retry_on_errors: ["WORKER_LOST"] },
  });
  const [gone] = await claim("w-gone", job.id, 1, 1000);
  const [live] = await claim("w-live", job.id, 1, 60_000);
  await timersDue(sql);
  // no claim comes; the live worker's report is recorded, then the timers reclaim the lost lease
  const done = await service<{ status: string }>("task-operations", "completeTask", {
    worker_id: "w-live",
    task_id: live.task_id,
  });
  assert.equal(done.status, 200, done.code);
  assert.equal(done.data.status, "succeeded");
  const [task] = await sql`select status from job_service.tasks where id = ${gone.task_id}`;
  assert.equal(task.status, "pending", "the lost task waits for its next attempt");
  const [error] =
    await sql`select code, attempt from job_service.job_errors where task_id = ${gone.task_id}`;
  assert.deepEqual({ ...error }, { code: "WORKER_LOST", attempt: 1 });
});

test("no schedule: a due retry of a job runs after a claim call", async () => {
  const { sql } = await setUp();
  const user = crypto.randomUUID();
  const token = await userToken(user);
  const created = await call<BatchJob>(token, "job-operations", "createJob", {
    product_id: "maintenance-test",
    sending_group_id: "g",
    tasks: [{ payload: { n: 1 } }],
    retry_config: { max_attempts: 3, retry_interval: 200, retry_on_errors: ["TIMEOUT"] },
  });
  assert.equal(created.status, 201, created.code);
  const jobId = created.data.id;
  const update = (data: Record<string, unknown>) =>
    call<BatchJob>(token, "job-operations", "updateBatchJob", { job_id: jobId, ...data });
  assert.equal((await update({ status: "running" })).status, 200);
  const failed = await update({
    status: "failed",
    error_details: { code: "TIMEOUT", message: "timed out" },
  });
  assert.equal(failed.data.status, "retrying");
  await timersDue(sql);
  // a claim for any job starts the due attempt, and then takes from it
  const claimed = await claim("w-retry", jobId, 1);
  assert.equal(claimed.length, 1, "the retried job's task is claimable");
  const job = await call<BatchJob>(token, "job-operations", "getJob", { job_id: jobId });
  assert.equal(job.data.attempt, 2);
  assert.ok(["queued", "running"].includes(job.data.status), job.data.status);
});

test("no schedule: a deletion pending on a vanished worker completes after a claim call", async () => {
  const { sql } = await setUp();
  const job = await createJob({ tasks: [{ payload: { n: 1 } }, { payload: { n: 2 } }] });
  const [running] = await claim("w-vanishes", job.id, 1, 1000);
  assert.ok(running);
  const del = await service<{ deleted: boolean }>("job-operations", "deleteJob", {
    job_id: job.id,
  });
  assert.equal(del.status, 202, "deletion waits for the running task");
  await timersDue(sql);
  const other = await createJob({ tasks: [{ payload: { n: 3 } }] });
  await claim("w-other", other.id, 1);
  const rows = await sql`select 1 from job_service.jobs where id = ${job.id}`;
  assert.equal(rows.length, 0, "the job is deleted once its last run's lease ran out");
});

test("run_due_timers is bounded: 100 rows a call, once a second, one caller, not during runMaintenance", async () => {
  const { sql } = await setUp();
  const job = await createJob({
    max_parallel_tasks: 150,
    tasks: Array.from({ length: 150 }, (_, n) => ({ payload: { n } })),
  });
  const claimed = await sql`
    select job_service_api.claim_tasks(${sql.json(CTX)}, 'w-many', 100, ${job.id}::uuid, 1000)
      as a, job_service_api.claim_tasks(${
    sql.json(CTX)
  }, 'w-many', 50, ${job.id}::uuid, 1000) as b`;
  assert.equal(claimed[0].a.tasks.length + claimed[0].b.tasks.length, 150);
  await timersDue(sql);
  const run = () =>
    sql`select job_service_api.run_due_timers(${sql.json(CTX)}, 1000) as r`.then((r) => r[0].r);

  // runMaintenance at work: the timers leave everything to it
  await sql`select job_service_api.begin_maintenance('00000000-0000-4000-8000-0000000000aa', 60000)`;
  assert.deepEqual(await run(), { ran: false, skipped: "maintenance" });
  await sql`select job_service_api.end_maintenance('00000000-0000-4000-8000-0000000000aa')`;

  // another caller inside: skipped at once, never waited for
  const holder = await sql.reserve();
  try {
    await holder`begin`;
    await holder`select pg_advisory_xact_lock(hashtextextended('job_service_api.run_due_timers', 0))`;
    assert.deepEqual(await run(), { ran: false, skipped: "busy" });
    await holder`rollback`;
  } finally {
    holder.release();
  }

  const first = await run();
  assert.equal(first.ran, true);
  assert.equal(first.leases_expired, 100, "at most 100 rows a call, whatever is asked");
  assert.deepEqual(await run(), { ran: false, skipped: "recent" }, "at most once a second");
  await timersDue(sql);
  const second = await run();
  assert.equal(second.leases_expired, 50);
  const [{ n }] = await sql`
    select count(*)::int as n from job_service.tasks where job_id = ${job.id} and status = 'pending'`;
  assert.equal(n, 150);
  const violations = await sql`select * from job_service_api.invariant_violations(${[
    job.id,
  ]}::uuid[])`;
  assert.deepEqual([...violations], []);
});

test("schedule_maintenance: a missing Vault, pg_cron or pg_net is named (55000, with a hint)", async () => {
  const { sql } = await setUp();
  const attempt = async () => {
    try {
      await sql`select job_service_api.schedule_maintenance('https://ref.supabase.co', 'sb_secret_k')`;
      return null;
    } catch (error) {
      return error as postgres.PostgresError;
    }
  };
  const noVault = await attempt();
  assert.equal(noVault?.code, "55000");
  assert.match(noVault!.message, /supabase_vault/);
  assert.match(noVault!.hint ?? "", /create extension supabase_vault/);
  await sql.begin(async (tx) => {
    await tx.unsafe(await Deno.readTextFile(STAND_IN));
    await tx`drop schema cron cascade`;
    await tx`savepoint s`;
    const noCron = await tx`
      select job_service_api.schedule_maintenance('https://ref.supabase.co', 'sb_secret_k')`
      .catch((e) => e);
    assert.equal(noCron.code, "55000");
    assert.match(noCron.message, /pg_cron/);
    assert.match(noCron.hint, /create extension pg_cron with schema pg_catalog/);
    await tx`rollback to savepoint s`;
    await tx`drop schema net cascade`;
    await tx.unsafe(
      `create schema cron; create function cron.schedule(text, text, text) returns bigint
       language sql as 'select 1::bigint'`,
    );
    const noNet = await tx`
      select job_service_api.schedule_maintenance('https://ref.supabase.co', 'sb_secret_k')`
      .catch((e) => e);
    assert.equal(noNet.code, "55000");
    assert.match(noNet.hint, /create extension pg_net with schema extensions/);
    await tx`rollback to savepoint s`;
    const bad = await tx`select job_service_api.schedule_maintenance('ref.supabase.co', 'k')`
      .catch((e) => e);
    assert.equal(bad.code, "22023", "a URL without a scheme is refused");
    await tx`rollback to savepoint s`;
    throw new Rollback();
  }).catch((e) => {
    if (!(e instanceof Rollback)) throw e;
  });
});

class Rollback extends Error {}

async function scheduleTask(env: Record<string, string>, args: string[], stdin?: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "maintenance:schedule", ...args],
    cwd: ROOT,
    env: { DATABASE_URL: DB, ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  if (stdin !== undefined) await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const out = await child.output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

test("deno task maintenance:schedule stores URL and key in Vault and schedules one cron job (idempotent)", async () => {
  const { sql } = await setUp();
  await sql.unsafe(await Deno.readTextFile(STAND_IN));
  try {
    const refused = await scheduleTask({}, ["--url", "https://ref.supabase.co", "--key", "x"]);
    assert.equal(refused.code, 2, "never a key on the command line");
    assert.match(refused.stderr, /not taken from the command line/);

    const first = await scheduleTask({}, ["--url", "https://ref.supabase.co/"], "sb_secret_one\n");
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /maintenance scheduled: batch-jobs-maintenance/);
    const second = await scheduleTask(
      { MAINTENANCE_KEY: "sb_secret_two", SUPABASE_URL: "https://ref2.supabase.co" },
      [],
    );
    assert.equal(second.code, 0, second.stderr);

    const jobs = await sql`select jobname, schedule, command from cron.job`;
    assert.deepEqual(jobs.map((j) => ({ ...j })), [{
      jobname: "batch-jobs-maintenance",
      schedule: "* * * * *",
      command: "select job_service.invoke_maintenance()",
    }], "one schedule after two runs");
    const secrets = await sql`
      select name, decrypted_secret from vault.decrypted_secrets order by name`;
    assert.deepEqual(secrets.map((s) => [s.name, s.decrypted_secret]), [
      ["batch_jobs_project_url", "https://ref2.supabase.co"],
      ["batch_jobs_service_key", "sb_secret_two"],
    ], "the second run updated the secrets in place");

    // what pg_cron runs each minute posts runMaintenance with the stored key
    await sql`select job_service.invoke_maintenance()`;
    const [request] =
      await sql`select url, body, headers from net.requests order by id desc limit 1`;
    assert.equal(request.url, "https://ref2.supabase.co/functions/v1/job-operations");
    assert.deepEqual(request.body, { action: "runMaintenance", data: {} });
    assert.equal(request.headers.Authorization, "Bearer sb_secret_two");
    assert.equal(request.headers.apikey, "sb_secret_two");

    const maintenance = await stats();
    assert.equal(maintenance.scheduled, true, "getStats sees the schedule");
    // a cron schema its owner may not read does not break getStats
    await sql`revoke usage on schema cron from project_owner`;
    assert.equal((await stats()).scheduled, false);
    await sql`grant usage on schema cron to project_owner`;

    // the functions' own role may not call it
    const runtime = new URL(DB);
    runtime.username = RUNTIME_ROLE;
    const asRuntime = postgres(runtime.toString(), { max: 1, onnotice: () => {} });
    try {
      const denied = await asRuntime`
        select job_service_api.schedule_maintenance('https://evil.example', 'k')`.catch((e) => e);
      assert.equal(denied.code, "42501");
    } finally {
      await asRuntime.end({ timeout: 5 });
    }
  } finally {
    await sql.unsafe("drop schema if exists vault, cron, net cascade");
  }
});

test("maintenance test database dropped", async () => {
  const { server, sql } = await setUp();
  await sql.end({ timeout: 5 });
  await server.stop();
  await dropDatabase(DB);
});
