// scripts/backup.sh and scripts/restore.sh: a database populated through the API is backed up,
// restored into a new empty one (which lacks Supabase's roles' helpers, so restore bootstraps it)
// and compared with it table by table, row for row, with its sequences, schema and privileges.
// A restore into a database that is not empty is refused; a damaged backup restores nothing.
import assert from "node:assert/strict";
import postgres from "postgres";
import { test } from "../helpers/service.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";
import { dropAndCreate, resetDatabase } from "../../../scripts/lib/database.ts";
import { spawnServer } from "../../../scripts/lib/server_process.ts";
import { signToken } from "../../../scripts/lib/tokens.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
/** Schemas that are not the service's: PostgreSQL's own and what the local bootstrap creates. */
const NOT_OURS = ["pg_catalog", "information_schema", "pg_toast", "auth", "extensions"];

/** A database next to the test database, named after it (so parallel suites never collide). */
function sibling(suffix: string): string {
  const url = new URL(
    Deno.env.get("TEST_DB_URL") ?? Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL,
  );
  url.pathname = `${url.pathname}_${suffix}`;
  return url.toString();
}

async function run(script: string, ...args: string[]) {
  const out = await new Deno.Command("bash", {
    args: [`${ROOT}scripts/${script}`, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

async function dropDatabase(url: string): Promise<void> {
  const admin = new URL(url);
  const name = admin.pathname.slice(1);
  admin.pathname = "/postgres";
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

// deno-lint-ignore no-explicit-any
type Json = any;
type Call = (fn: string, action: string, data: unknown) => Promise<{ status: number; data: Json }>;

/** Work through the API of a server on the source database: every table gets rows. */
async function populate(call: Call): Promise<void> {
  const ok = async (fn: string, action: string, data: unknown) => {
    const res = await call(fn, action, data);
    assert.ok(res.status < 300, `${action}: ${res.status} ${JSON.stringify(res.data)}`);
    return res.data;
  };
  const users = [crypto.randomUUID(), crypto.randomUUID()];
  const awkward = {
    text: "grüße 'quoted' \"double\" \\ back\\slash \u2028 tab\t end ✓ 𝄞",
    n: 1.5e10,
    tiny: 1e-7,
    nested: { list: [1, null, true, { k: "v" }], empty: {} },
  };
  // a job with work done: claims, completions, a retried failure, usage over the limits
  const a = await ok("job-operations", "createJob", {
    user_id: users[0],
    product_id: "newsletter",
    sending_group_id: "group-1",
    priority: 70,
    resource_limits: { max_memory: 512, max_cpu: 2 },
    tasks: Array.from({ length: 6 }, (_, i) => ({ payload: { i, ...awkward } })),
    metadata: { campaign: "backup", awkward },
    idempotency_key: "backup-test-a",
  });
  const claimed = await ok("task-operations", "claimTasks", {
    worker_id: "backup-worker",
    limit: 4,
    job_id: a.id,
  });
  const ids = claimed.tasks.map((t: { task_id: number }) => t.task_id);
  await ok("task-operations", "completeTasks", {
    worker_id: "backup-worker",
    tasks: [{ task_id: ids[0], result: awkward }, { task_id: ids[1] }],
  });
  await ok("task-operations", "failTask", {
    worker_id: "backup-worker",
    task_id: ids[2],
    error: { code: "TIMEOUT", message: "slow", stack: "at line 1\nat line 2" },
  });
  await ok("task-operations", "heartbeat", {
    worker_id: "backup-worker",
    tasks: [{ task_id: ids[3], usage: { memory: 4096, cpu: 1.5 } }],
  });
  // a job failed for good (error row, job.failed notification), one paused, one deleted
  const b = await ok("job-operations", "createJob", {
    user_id: users[1],
    product_id: "sms",
    sending_group_id: "group-2",
  });
  await ok("job-operations", "updateBatchJob", { job_id: b.id, status: "running" });
  await ok("job-operations", "updateBatchJob", {
    job_id: b.id,
    status: "failed",
    error_details: { code: "INVALID_PAYLOAD", message: "bad template" },
  });
  const c = await ok("job-operations", "createJob", {
    user_id: users[1],
    product_id: "sms",
    sending_group_id: "group-2",
    start: false,
    tasks: [{ payload: "just a string" }],
  });
  await ok("job-operations", "updateBatchJob", {
    job_id: c.id,
    detailed_status: { current_phase: "waiting for approval" },
  });
  const d = await ok("job-operations", "createJob", {
    user_id: users[0],
    product_id: "push",
    sending_group_id: "group-3",
  });
  await ok("job-operations", "deleteJob", { job_id: d.id });
  await ok("job-operations", "runMaintenance", {});
}

async function tablesOf(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql`
    select format('%I.%I', n.nspname, c.relname) as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and n.nspname <> all (${NOT_OURS})
    order by 1`;
  return rows.map((r) => r.name);
}

async function rowsOf(sql: postgres.Sql, table: string): Promise<string[]> {
  const rows = await sql.unsafe(`select t::text as row from ${table} t order by 1`);
  return rows.map((r) => r.row as string);
}

async function sequencesOf(sql: postgres.Sql): Promise<string[]> {
  const seqs = await sql`
    select format('%I.%I', n.nspname, c.relname) as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'S' and n.nspname <> all (${NOT_OURS}) order by 1`;
  const out: string[] = [];
  for (const { name } of seqs) {
    const [s] = await sql.unsafe(`select last_value, is_called from ${name}`);
    out.push(`${name} ${s.last_value} ${s.is_called}`);
  }
  return out;
}

/**
 * The schema as pg_dump writes it (parentheses dropped: PostgreSQL re-nests boolean chains), without
 * owners: the migrations ran as the migration role, the restore as whoever restores.
 */
async function schemaOf(url: string): Promise<string> {
  const out = await new Deno.Command("pg_dump", {
    args: [
      "--schema-only",
      "--no-owner",
      "--dbname",
      url,
      ...NOT_OURS.flatMap((s) => ["--exclude-schema", s]),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).split("\n")
    .filter((l) => !/^\\(un)?restrict /.test(l))
    .map((l) => l.replace(/[()]/g, ""))
    .join("\n");
}

test("backup and restore: a populated database round-trips row for row", async () => {
  const source = sibling("backup_source");
  const target = sibling("backup_target");
  const dir = await Deno.makeTempDir({ prefix: "batch-jobs-backup-" });
  const file = `${dir}/backup.dump`;
  const server = await (async () => {
    await resetDatabase(source);
    return await spawnServer({ SUPABASE_DB_URL: source, LOG_LEVEL: "silent" });
  })();
  const src = postgres(source, { max: 2, onnotice: () => {} });
  const dst = postgres(target, { max: 2, onnotice: () => {} });
  try {
    const token = await signToken({ role: "service_role" });
    await populate(async (fn, action, data) => {
      const res = await fetch(`${server.url}/functions/v1/${fn}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ action, data }),
      });
      const body = await res.json();
      return { status: res.status, data: body.data ?? body.error };
    });
    await server.stop();

    // a fresh database, as `createdb` leaves it: no Supabase roles' helpers, no schemas
    await dropAndCreate(target);
    const backup = await run("backup.sh", source, file);
    assert.equal(backup.code, 0, backup.stderr);
    const restore = await run("restore.sh", file, target);
    assert.equal(restore.code, 0, restore.stderr);
    assert.match(restore.stdout, /applying supabase\/local\/bootstrap\.sql/);

    const tables = await tablesOf(src);
    assert.deepEqual(await tablesOf(dst), tables, "the same tables");
    for (
      const t of [
        "job_service.jobs",
        "job_service.tasks",
        "job_service.audit_log",
        "job_service.notifications",
      ]
    ) {
      assert.ok(tables.includes(t));
    }
    let rows = 0;
    for (const table of tables) {
      const expected = await rowsOf(src, table);
      assert.deepEqual(await rowsOf(dst, table), expected, `${table} row for row`);
      rows += expected.length;
    }
    assert.ok(rows > 100, `a populated database (${rows} rows)`);
    for (const t of ["job_service.jobs", "job_service.job_errors", "job_service.notifications"]) {
      assert.ok((await rowsOf(src, t)).length > 0, `${t} has rows`);
    }
    assert.deepEqual(await sequencesOf(dst), await sequencesOf(src), "identity sequences");
    assert.equal(await schemaOf(target), await schemaOf(source), "schema, policies, grants");

    // the restored database works: invariants hold, triggers and guards are back
    const violations = await dst`select * from job_service_api.invariant_violations()`;
    assert.deepEqual([...violations], []);
    await assert.rejects(
      dst`update job_service.audit_log set action = 'forged'`,
      /AUDIT_LOG_APPEND_ONLY/,
    );
    const [{ id }] = await dst`
      insert into job_service.job_errors (job_id, attempt, code, category, message)
      select id, 1, 'TIMEOUT', 'transient', 'after restore' from job_service.jobs limit 1 returning id`;
    const [{ max }] = await src`select max(id) as max from job_service.job_errors`;
    assert.ok(Number(id) > Number(max), "identities continue after the restored rows");

    // a second restore into the now populated database is refused and changes nothing
    const again = await run("restore.sh", file, target);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /not empty/);

    // a damaged backup restores nothing
    const damaged = `${dir}/damaged.dump`;
    const bytes = await Deno.readFile(file);
    for (let i = Math.floor(bytes.length * 0.9); i < Math.floor(bytes.length * 0.9) + 2000; i++) {
      bytes[i] ^= 0x5a;
    }
    await Deno.writeFile(damaged, bytes);
    const empty = sibling("backup_damaged");
    await dropAndCreate(empty);
    const broken = await run("restore.sh", damaged, empty);
    assert.notEqual(broken.code, 0, "a damaged backup is an error");
    const check = postgres(empty, { max: 1, onnotice: () => {} });
    try {
      const [{ n }] = await check`
        select count(*)::int as n from pg_namespace where nspname in ('job_service', 'job_service_api')`;
      assert.equal(n, 0, `nothing restored: ${broken.stderr}`);
    } finally {
      await check.end({ timeout: 5 });
      await dropDatabase(empty);
    }
  } finally {
    await server.stop().catch(() => {});
    await src.end({ timeout: 5 });
    await dst.end({ timeout: 5 });
    await dropDatabase(source);
    await dropDatabase(target);
    await Deno.remove(dir, { recursive: true });
  }
});

test("backup and restore refuse wrong arguments", async () => {
  const backup = await run("backup.sh", "only-one-argument");
  assert.equal(backup.code, 2);
  assert.match(backup.stderr, /usage/);
  const restore = await run("restore.sh", "/nonexistent/backup.dump", sibling("never_created"));
  assert.equal(restore.code, 2);
  assert.match(restore.stderr, /cannot read/);
});
