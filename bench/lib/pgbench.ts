// The PostgreSQL ceiling: pgbench clients running a bare claim-and-complete cycle on a plain table,
// the least any queue on this database must do per task. Two transactions per cycle, as in every
// system measured: the claim (FOR UPDATE SKIP LOCKED, older first) commits, then the completion.
import { BENCH_DB_URL, connect, type Throughput } from "./common.ts";

const SCRIPT = `
with claimed as (
  update bench.pgbench_queue q set state = 1, claimed_at = now()
  where id in (select id from bench.pgbench_queue where state = 0
               order by id limit :k for update skip locked)
  returning id
)
select coalesce(array_agg(id), '{}') as ids from claimed \\gset
update bench.pgbench_queue set state = 2, done_at = now() where id = any (:ids::bigint[]);
`;

/**
 * Runs C pgbench clients for `seconds` on a queue big enough that it never runs dry (checked), and
 * returns pgbench's rate of cycles, without connection set-up, times k tasks.
 */
export async function runCycle(seconds: number, c: number, k: number): Promise<Throughput> {
  // far above any rate this machine reaches (~20k tasks/s): a drained queue would make empty,
  // cheap cycles count as work
  const rows = Math.max(20_000, seconds * (k === 1 ? 10_000 : 60_000));
  const sql = connect(1);
  try {
    await sql`create schema if not exists bench`;
    await sql`drop table if exists bench.pgbench_queue`;
    await sql`create table bench.pgbench_queue (
      id bigint primary key, state smallint not null default 0, payload jsonb not null,
      claimed_at timestamptz, done_at timestamptz)`;
    await sql`create index on bench.pgbench_queue (id) where state = 0`;
    await sql`insert into bench.pgbench_queue (id, payload)
      select i, jsonb_build_object('n', i) from generate_series(1, ${rows}::integer) i`;
    await sql`vacuum analyze bench.pgbench_queue`;

    const script = await Deno.makeTempFile({ suffix: ".sql" });
    await Deno.writeTextFile(script, SCRIPT);
    const url = new URL(BENCH_DB_URL);
    const out = await new Deno.Command("pgbench", {
      args: [
        ...["-h", url.hostname, "-p", url.port || "5432"],
        ...["-U", decodeURIComponent(url.username || "postgres")],
        ...["-n", "-M", "prepared", "-c", String(c), "-j", String(Math.min(c, 2))],
        ...["-T", String(seconds), "-D", `k=${k}`, "-f", script],
        decodeURIComponent(url.pathname.slice(1)),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    await Deno.remove(script);
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    if (!out.success) throw new Error(`pgbench failed:\n${text}`);

    const [{ done, left }] = await sql`select count(*) filter (where state = 2)::integer as done,
      count(*) filter (where state = 0)::integer as left from bench.pgbench_queue`;
    if (left === 0) throw new Error(`pgbench drained all ${rows} rows: the rate is not valid`);
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(text)?.[1]);
    if (!Number.isFinite(tps)) throw new Error(`no rate in pgbench output:\n${text}`);
    return { tasks: done, seconds: done / (tps * k), tasksPerSecond: tps * k };
  } finally {
    await sql`drop table if exists bench.pgbench_queue`;
    await sql.end();
  }
}
