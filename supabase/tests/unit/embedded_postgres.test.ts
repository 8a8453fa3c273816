// The embedded PostgreSQL of the local commands (scripts/lib/embedded_postgres.ts), in a data
// folder of its own: created on the first start, the same data after a restart, shared with a
// command that is still running it (and then not stopped by the other), taken over from a command
// that ended without stopping it, stopped by its owner; pgTAP can be added to it.
// Which server the local commands pick (scripts/lib/local_database.ts) is tested at the end.
import assert from "node:assert/strict";
import postgres from "postgres";
import { startEmbeddedPostgres } from "../../../scripts/lib/embedded_postgres.ts";
import { answers, localDatabase } from "../../../scripts/lib/local_database.ts";
import { preparePgTap } from "../../../scripts/lib/test_prerequisites.ts";

function test(name: string, fn: () => Promise<void>) {
  Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
}

async function query<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The pid of a process that has ended. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

/** Stops whatever server a failed test left on the folder, by the pid PostgreSQL wrote. */
async function killLeftover(dir: string): Promise<void> {
  const pid = await Deno.readTextFile(`${dir}/data/postmaster.pid`).catch(() => "");
  if (pid) Deno.kill(Number(pid.split("\n")[0]), "SIGINT");
}

test("embedded PostgreSQL: created, restarted on the same data, shared, taken over, stopped; pgTAP added", async () => {
  const dir = await Deno.makeTempDir({ prefix: "embedded-pg-" });
  // as root the server runs as the OS user postgres, which must reach its folder
  await Deno.chmod(dir, 0o755);
  try {
    const first = await startEmbeddedPostgres(dir);
    assert.equal(first.state, "started");
    const url = first.url("postgres");
    const facts = await query(
      url,
      (sql) =>
        sql`select current_setting('server_version_num')::int / 10000 as major,
                 current_setting('server_encoding') as encoding,
                 current_setting('listen_addresses') as listen,
                 current_user as "user"`,
    );
    assert.deepEqual({ ...facts[0] }, {
      major: first.installation.major,
      encoding: "UTF8",
      listen: "127.0.0.1",
      user: "postgres",
    });
    await query(url, async (sql) => {
      await sql`create table kept (note text)`;
      await sql`insert into kept values ('still here')`;
      // what the migrations use is there
      await sql`create extension pgcrypto`;
    });

    const second = await startEmbeddedPostgres(dir);
    assert.equal(second.state, "shared", "this process still owns the server");
    assert.equal(second.port, first.port);
    await second.stop();
    assert.equal(await answers(url), true, "a shared server is left running");

    await first.stop();
    assert.equal(await answers(url), false, "stopped by its owner");

    const again = await startEmbeddedPostgres(dir);
    assert.equal(again.state, "started");
    const againUrl = again.url("postgres");
    const rows = await query(againUrl, (sql) => sql`select note from kept`);
    assert.deepEqual(rows.map((r) => r.note), ["still here"], "the data folder is reused");

    // the test command adds pgTAP to the embedded installation
    assert.equal(await preparePgTap(againUrl, again.installation), again.installation.major);
    const [tap] = await query(againUrl, async (sql) => {
      await sql`create extension pgtap`;
      await sql`select plan(1)`;
      return await sql`select ok(true, 'pgTAP runs') as line`;
    });
    assert.equal(tap.line, "ok 1 - pgTAP runs");

    // the command that started it ended without stopping it (killed)
    await Deno.writeTextFile(`${dir}/owner`, `${await deadPid()}\n`);
    const adopted = await startEmbeddedPostgres(dir);
    assert.equal(adopted.state, "adopted");
    await adopted.stop();
    assert.equal(await answers(againUrl), false, "stopped by the command that took it over");
  } finally {
    await killLeftover(dir);
    await Deno.remove(dir, { recursive: true });
  }
});

test("local database: SUPABASE_DB_URL is used as given, a default address that answers as it is", async () => {
  const given = "postgresql://postgres@127.0.0.1:1/somewhere";
  const chosen = await localDatabase({
    given,
    fallback: "postgresql://postgres@127.0.0.1:2/job_operations",
  });
  assert.equal(chosen.url, given, "even when nothing answers there");
  assert.equal(chosen.embedded, undefined);

  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const fallback = `postgresql://postgres@127.0.0.1:${listener.addr.port}/job_operations`;
    const used = await localDatabase({ given: undefined, fallback });
    assert.equal(used.url, fallback);
    assert.equal(used.embedded, undefined);
  } finally {
    listener.close();
  }
});
