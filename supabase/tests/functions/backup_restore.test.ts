// scripts/backup.sh and scripts/restore.sh: a database populated through the API is backed up,
// restored into a new empty one (which lacks Supabase's roles' helpers, so restore bootstraps it)
// and compared with it table by table, row for row, with its sequences, schema and privileges.
// A restore into a database that is not empty is refused; a damaged backup restores nothing.
// Hygiene (#16): no password on any command line the scripts run, archives private whatever the
// caller's umask, a checksum beside the archive that restore checks before it changes anything
// (a tampered archive is refused with the target untouched), schema names from an archive quoted.
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
  return await runWith({}, script, ...args);
}

/** Runs a script with extra environment, under umask 022 (so that its own umask must do the work). */
async function runWith(env: Record<string, string>, script: string, ...args: string[]) {
  const out = await new Deno.Command("bash", {
    args: ["-c", 'umask 022 && exec bash "$@"', "bash", `${ROOT}scripts/${script}`, ...args],
    cwd: ROOT,
    env,
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

/**
 * pg_dump, pg_restore and psql wrapped to log every command line they are started with (and the
 * mode and content of the PGPASSFILE they get) before running the real tool: `env` puts them first
 * on PATH.
 */
async function recordingTools(dir: string) {
  const log = `${dir}/command-lines.log`;
  await Deno.writeTextFile(log, "");
  for (const tool of ["pg_dump", "pg_restore", "psql"]) {
    const found = await new Deno.Command("bash", { args: ["-c", `command -v ${tool}`] }).output();
    const real = new TextDecoder().decode(found.stdout).trim();
    assert.ok(real, `${tool} is installed`);
    await Deno.writeTextFile(
      `${dir}/${tool}`,
      // one write per record: tools that run at once (pg_restore into psql) append to one log
      `#!/usr/bin/env bash
record="argv:$(printf ' %q' "$0" "$@")"
if [ -n "\${PGPASSFILE:-}" ]; then
  record+=$'\\n'"pgpass $(stat -c %a "$PGPASSFILE"): $(cat "$PGPASSFILE")"
fi
printf '%s\\n' "$record" >>'${log}'
exec '${real}' "$@"
`,
      { mode: 0o755 },
    );
  }
  return {
    env: { PATH: `${dir}:${Deno.env.get("PATH")}` },
    read: () => Deno.readTextFile(log),
  };
}

/** A database URL with a password (trust authentication ignores it: only where it travels counts). */
function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = encodeURIComponent(password);
  return u.toString();
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What a database holds, to show that a refused restore changed nothing in it. */
async function snapshotOf(url: string): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`
      select (select string_agg(nspname, ',' order by nspname) from pg_namespace) as schemas,
             (select count(*) from pg_class)::int as relations,
             (select count(*) from pg_proc)::int as routines,
             (select count(*) from pg_type)::int as types,
             (select string_agg(extname, ',' order by extname) from pg_extension) as extensions`;
    return JSON.stringify(row);
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
    // URLs with a password (with characters a URL must escape): it must reach libpq through a
    // private PGPASSFILE, never a command line of psql, pg_dump or pg_restore
    const password = `pw:${crypto.randomUUID()}@/%'`;
    const tools = await recordingTools(dir);
    const backup = await runWith(tools.env, "backup.sh", withPassword(source, password), file);
    assert.equal(backup.code, 0, backup.stderr);
    const restore = await runWith(tools.env, "restore.sh", file, withPassword(target, password));
    assert.equal(restore.code, 0, restore.stderr);
    assert.match(restore.stdout, /applying supabase\/local\/bootstrap\.sql/);
    const commandLines = await tools.read();
    for (const tool of ["pg_dump", "pg_restore", "psql"]) {
      assert.match(commandLines, new RegExp(`argv: \\S*/${tool} `), `${tool} ran`);
    }
    const pgpass = `*:*:*:*:${password.replaceAll(":", "\\:")}`;
    for (const line of commandLines.split("\n").filter((l) => l !== "")) {
      if (line.startsWith("argv: ")) {
        assert.ok(!line.includes(password.slice(3, 39)), `no password on a command line: ${line}`);
      } else {
        assert.equal(line, `pgpass 600: ${pgpass}`, "the password in a private PGPASSFILE");
      }
    }
    // the archive and its checksum: private although the caller's umask was 022
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${file}.sha256`)).mode! & 0o777, 0o600);
    assert.equal(
      await Deno.readTextFile(`${file}.sha256`),
      `${await sha256Hex(await Deno.readFile(file))}  backup.dump\n`,
      "FILE.sha256 in sha256sum's format",
    );
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.includes("partial")),
      [],
      "no temporary file left",
    );

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

    // a backup damaged before its checksum was taken (so the checksum matches) restores nothing:
    // pg_restore fails mid-stream and the transaction is rolled back
    const damaged = `${dir}/damaged.dump`;
    const bytes = await Deno.readFile(file);
    for (let i = Math.floor(bytes.length * 0.9); i < Math.floor(bytes.length * 0.9) + 2000; i++) {
      bytes[i] ^= 0x5a;
    }
    await Deno.writeFile(damaged, bytes);
    await Deno.writeTextFile(`${damaged}.sha256`, `${await sha256Hex(bytes)}  damaged.dump\n`);
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

test("a tampered archive, or one without its checksum, is refused before anything is restored", async () => {
  const dir = await Deno.makeTempDir({ prefix: "batch-jobs-backup-" });
  const file = `${dir}/backup.dump`;
  const target = sibling("backup_tampered");
  try {
    const source = Deno.env.get("TEST_DB_URL") ?? Deno.env.get("SUPABASE_DB_URL") ??
      DEFAULT_DB_URL;
    const backup = await run("backup.sh", source, file);
    assert.equal(backup.code, 0, backup.stderr);
    // a fresh database: restore would apply the bootstrap first, so any step taken would show
    await dropAndCreate(target);
    const before = await snapshotOf(target);

    // one byte changed in the middle of the archive, its checksum file as backup.sh wrote it
    const tampered = `${dir}/tampered.dump`;
    const bytes = await Deno.readFile(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    await Deno.writeFile(tampered, bytes);
    await Deno.copyFile(`${file}.sha256`, `${tampered}.sha256`);
    const refused = await run("restore.sh", tampered, target);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /does not match its checksum .*nothing was restored/);
    assert.equal(refused.stdout, "", "no step was taken");
    assert.equal(await snapshotOf(target), before, "the target database is unchanged");

    // no checksum beside it, or a checksum file that is not one
    await Deno.remove(`${tampered}.sha256`);
    const unchecked = await run("restore.sh", tampered, target);
    assert.equal(unchecked.code, 2);
    assert.match(unchecked.stderr, /no checksum .*tampered\.dump\.sha256/);
    await Deno.writeTextFile(`${tampered}.sha256`, "; drop database postgres\n");
    const garbage = await run("restore.sh", tampered, target);
    assert.equal(garbage.code, 2);
    assert.match(garbage.stderr, /is not a sha256sum line/);
    assert.equal(await snapshotOf(target), before, "still unchanged");

    // the untouched archive restores into the same database
    const restored = await run("restore.sh", file, target);
    assert.equal(restored.code, 0, restored.stderr);
    assert.notEqual(await snapshotOf(target), before);
  } finally {
    await dropDatabase(target);
    await Deno.remove(dir, { recursive: true });
  }
});

test("schema names from an archive are quoted, never pasted into SQL", async () => {
  const dir = await Deno.makeTempDir({ prefix: "batch-jobs-backup-" });
  const source = sibling("backup_hostile_source");
  const target = sibling("backup_hostile_target");
  // a name that, pasted into `nspname in ('…')`, would end the literal and run a statement
  const hostile = `x'); create table public.pwned (); --`;
  const ident = `"${hostile.replaceAll('"', '""')}"`;
  try {
    await dropAndCreate(source);
    const src = postgres(source, { max: 1, onnotice: () => {} });
    try {
      await src.unsafe(`create schema ${ident}`);
      await src.unsafe(`create table ${ident}.t (id int primary key, v text)`);
      await src.unsafe(`insert into ${ident}.t values (1, 'kept')`);
    } finally {
      await src.end({ timeout: 5 });
    }
    // an archive of that schema, made by pg_dump itself, with its checksum
    const file = `${dir}/hostile.dump`;
    const dump = await new Deno.Command("pg_dump", {
      args: [`--dbname=${source}`, "--format=custom", `--schema=${ident}`, `--file=${file}`],
      stderr: "piped",
    }).output();
    assert.equal(dump.code, 0, new TextDecoder().decode(dump.stderr));
    await Deno.writeTextFile(
      `${file}.sha256`,
      `${await sha256Hex(await Deno.readFile(file))}  hostile.dump\n`,
    );

    await dropAndCreate(target);
    const restored = await run("restore.sh", file, target);
    assert.equal(restored.code, 0, restored.stderr);
    const dst = postgres(target, { max: 1, onnotice: () => {} });
    try {
      const [{ pwned }] = await dst`select to_regclass('public.pwned') as pwned`;
      assert.equal(pwned, null, "nothing from the name ran");
      assert.deepEqual(
        (await dst.unsafe(`select id, v from ${ident}.t`)).map((r) => ({ ...r })),
        [{ id: 1, v: "kept" }],
        "the schema is restored under its exact name",
      );
    } finally {
      await dst.end({ timeout: 5 });
    }
    // and the emptiness check reads the name as data too
    const again = await run("restore.sh", file, target);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /not empty \(\d+ objects in x'\); create table/);
  } finally {
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
