// The migrations applied by the real Supabase CLI (tools/supabase-cli, pinned), as a project applies
// them: `supabase db push --db-url … --include-all`, which needs no Docker, connected as the
// non-superuser role that owns the database (like hosted `postgres`). Twice: on a fresh
// Supabase-like database (with Realtime's publication), and on one that already holds an app's own
// public.jobs, public.tasks, public.notifications, public.audit_log, a `private` schema and a
// function public.claim_tasks (and no publication): those are left exactly as they were.
import assert from "node:assert/strict";
import postgres from "postgres";
import { test } from "../helpers/service.ts";
import {
  asMigrationRole,
  bootstrap,
  dropAndCreate,
  dropDatabase,
  migrationFiles,
} from "../../../scripts/lib/database.ts";
import { SUPABASE_CLI } from "../../../scripts/lib/test_prerequisites.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;

function sibling(suffix: string): string {
  const url = new URL(Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL);
  url.pathname = `${url.pathname}_${suffix}`;
  return url.toString();
}

async function run(command: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(command, {
    args,
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** `supabase db push` against the database, as the role that owns it. */
async function dbPush(url: string) {
  const target = new URL(asMigrationRole(url));
  target.searchParams.set("sslmode", "disable"); // the local server has no TLS
  return await run(SUPABASE_CLI, [
    "db",
    "push",
    "--db-url",
    target.toString(),
    "--include-all",
    "--yes",
    "--workdir",
    ROOT,
  ], { SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" });
}

/** The app's schemas, definitions and rows, as pg_dump writes them. */
async function appDump(url: string): Promise<string> {
  const out = await run("pg_dump", [
    "--dbname",
    url,
    "--schema",
    "public",
    "--schema",
    "private",
  ]);
  assert.equal(out.code, 0, out.stderr);
  return out.stdout.split("\n").filter((l) => !/^\\(un)?restrict /.test(l)).join("\n");
}

async function withSql<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The service works after the push: a job is created, claimed and completed through SQL. */
async function assertServiceWorks(url: string) {
  await withSql(url, async (sql) => {
    const ctx = { role: "service_role", user_id: null, request_id: "cli-test" };
    const [{ created }] = await sql`
      select job_service_api.create_job(${sql.json(ctx)}, ${
      sql.json({
        user_id: crypto.randomUUID(),
        product_id: "cli",
        sending_group_id: "g",
        priority: 50,
        max_parallel_tasks: 2,
        start: true,
        metadata: {},
        retry_config: {
          max_attempts: 3,
          retry_interval: 1000,
          backoff: "fixed",
          max_retry_interval: 3600000,
        },
      })
    }, ${sql.json([{ payload: { n: 1 } }])}, null, null) as created`;
    const jobId = created.job.id;
    const [{ claimed }] = await sql`
      select job_service_api.claim_tasks(${sql.json(ctx)}, 'cli-worker', 1, ${jobId}::uuid, 60000)
        as claimed`;
    const taskId = claimed.tasks[0].task_id;
    const [{ outcome }] = await sql`
      select job_service_api.complete_tasks(${sql.json(ctx)}, 'cli-worker',
        ${sql.json([{ task_id: taskId }])}) as outcome`;
    assert.equal(outcome[0].status, "succeeded");
    const [{ status }] = await sql`select status from job_service.jobs where id = ${jobId}`;
    assert.equal(status, "completed");
  });
}

async function appliedVersions(url: string): Promise<string[]> {
  return await withSql(
    url,
    async (sql) =>
      (await sql`select version from supabase_migrations.schema_migrations order by version`)
        .map((r) => r.version as string),
  );
}

test("supabase db push (the real CLI) migrates a fresh Supabase-like database as its owner", async () => {
  const url = sibling("cli_fresh");
  try {
    await dropAndCreate(url);
    await bootstrap(url);
    const push = await dbPush(url);
    assert.equal(push.code, 0, `${push.stdout}\n${push.stderr}`);
    const versions = (await migrationFiles()).map((f) => f.version);
    assert.deepEqual(await appliedVersions(url), versions, "every migration recorded");
    await assertServiceWorks(url);
    await withSql(url, async (sql) => {
      const owners = await sql`
        select distinct pg_get_userbyid(c.relowner) as owner from pg_class c
        join pg_namespace n on n.oid = c.relnamespace where n.nspname like 'job_service%'`;
      assert.deepEqual(owners.map((r) => r.owner), ["project_owner"], "nothing needed a superuser");
      const published = await sql`
        select tablename from pg_publication_tables
        where pubname = 'supabase_realtime' and schemaname = 'job_service'`;
      assert.deepEqual(published.map((r) => r.tablename), ["jobs"], "jobs are in Realtime");
    });
    // a second push finds nothing to do
    const again = await dbPush(url);
    assert.equal(again.code, 0, `${again.stdout}\n${again.stderr}`);
    assert.match(`${again.stdout}${again.stderr}`, /up to date/i);
  } finally {
    await dropDatabase(url);
  }
});

test("supabase db push leaves an app's own public.jobs, tasks, notifications, audit_log, private schema and claim_tasks exactly as they were", async () => {
  const url = sibling("cli_app");
  try {
    await dropAndCreate(url);
    await bootstrap(url);
    await withSql(url, (sql) => sql`drop publication if exists supabase_realtime`);
    // the app's own objects, made by its own migrations (as the owner role)
    await withSql(asMigrationRole(url), async (sql) => {
      await sql.unsafe(`
        create table public.jobs (id bigserial primary key, title text not null, done boolean default false);
        create table public.tasks (id bigserial primary key, job_id bigint references public.jobs, body text);
        create table public.notifications (id serial primary key, message text not null);
        create table public.audit_log (id serial primary key, entry text not null, at timestamptz default now());
        create schema private;
        create table private.settings (key text primary key, value text);
        create function public.claim_tasks(n integer) returns setof public.tasks
          language sql as 'select * from public.tasks order by id limit n';
        insert into public.jobs (title) values ('the app''s job');
        insert into public.tasks (job_id, body) values (1, 'the app''s task');
        insert into public.notifications (message) values ('hello');
        insert into public.audit_log (entry) values ('app audit');
        insert into private.settings values ('theme', 'dark');
      `);
    });
    const before = await appDump(url);
    const push = await dbPush(url);
    assert.equal(push.code, 0, `${push.stdout}\n${push.stderr}`);
    assert.equal(
      await appDump(url),
      before,
      "the app's schemas, definitions and rows are unchanged",
    );
    await assertServiceWorks(url);
    await withSql(url, async (sql) => {
      const [{ n }] = await sql`select count(*)::int as n from public.claim_tasks(10)`;
      assert.equal(n, 1, "the app's claim_tasks still answers its own rows");
    });
  } finally {
    await dropDatabase(url);
  }
});
