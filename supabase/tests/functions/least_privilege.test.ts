// Least privilege from the outside: the role the functions connect as (job_service_runtime) can
// call the entry points and nothing else, and the served functions work through it. The declared
// list of every routine, table and grant is pgTAP (supabase/tests/database/10_privileges.test.sql).
import assert from "node:assert/strict";
import postgres from "postgres";
import { asRuntimeRole, RUNTIME_ROLE } from "../../../scripts/lib/database.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";
import { asUser, jobData, test, testDb } from "../helpers/service.ts";

const DB_URL = Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL;

async function asRuntime<T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(asRuntimeRole(DB_URL), { max: 1, onnotice: () => {}, fetch_types: false });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function sqlState(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

test("least privilege: the served functions connect as job_service_runtime", async () => {
  const user = await asUser();
  const created = await user.call<{ id: string }>(
    "createJob",
    jobData({ tasks: [{ payload: 1 }] }),
  );
  assert.equal(created.status, 201);
  const [row] = await testDb()`
    select actor_role, request_id from job_service.audit_log where job_id = ${created.data.id}`;
  assert.equal(row.actor_role, "authenticated", "the audit row names the API caller");
  const sessions = await testDb()`
    select count(*)::int as n from pg_stat_activity
    where datname = current_database() and usename = ${RUNTIME_ROLE}`;
  assert.ok(sessions[0].n >= 1, "the server's pool holds sessions of the runtime role");
  const owners = await testDb()`
    select count(*)::int as n from pg_stat_activity
    where datname = current_database() and application_name = 'batch-job-service'
      and usename <> ${RUNTIME_ROLE}`;
  assert.equal(owners[0].n, 0, "no session of the served functions runs as another role");
});

test("least privilege: the runtime role calls an entry point but reads no table", async () => {
  await asRuntime(async (sql) => {
    const [who] = await sql`select current_user as name`;
    assert.equal(who.name, RUNTIME_ROLE);
    const [stats] = await sql`select job_service_api.get_stats(60) as s`;
    assert.equal(typeof stats.s, "object", "an entry point answers");
    for (
      const table of [
        "jobs",
        "tasks",
        "audit_log",
        "notifications",
        "idempotency_keys",
        "signing_keys",
        "task_ready",
      ]
    ) {
      assert.equal(
        await sqlState(sql.unsafe(`select 1 from job_service.${table} limit 1`)),
        "42501",
        `${table} is not readable by the runtime role`,
      );
    }
    assert.equal(
      await sqlState(sql`delete from job_service.audit_log`),
      "42501",
      "nor writable",
    );
    assert.equal(
      await sqlState(sql`select job_service.set_request_context('{}'::jsonb)`),
      "42501",
      "internal routines are not executable by it",
    );
    assert.equal(
      await sqlState(sql`create table public.runtime_owned (id int)`),
      "42501",
      "it creates nothing",
    );
  });
});
