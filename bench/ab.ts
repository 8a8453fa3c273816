// deno task bench:ab [--c=8] [--mode=single|batched] [--n=20000] [--rounds=3] [--systems=ours,graphile]
//   [--max-parallel=1000] [--t2] [--combined]
//
// One T1 cell of `deno task bench`, ours and graphile-worker (and pg-boss if asked) alternating for
// a few rounds on a freshly reset bench database: a quick A/B while changing the engine. The full
// benchmark stays the measure of record.
import { resetDatabase } from "../scripts/lib/database.ts";
import { BENCH_DB_URL, connect, log, median, type Mode } from "./lib/common.ts";
import { cleanUp, numberedTasks, runOurs, sqlTransport, t2Jobs } from "./lib/ours.ts";
import * as graphile from "./lib/graphile.ts";
import * as pgboss from "./lib/pgboss.ts";
import process from "node:process";

const probe = connect(1);
/**
 * The index each system's claims scan from its head: entries read and rows fetched through it count
 * what a claim steps over (entries of rows other claims hold or left dead), beside one-entry probes
 * (ours: the walk's and the tail check's).
 */
const QUEUE_INDEX: Record<string, string> = {
  ours: "job_service.task_ready_pkey",
  graphile: "graphile_worker.jobs_main_index",
};

/**
 * WAL position, MultiXact pages made, transactions committed, and the system's queue index entries
 * read and rows fetched: the database's side of a run. (Backends report their counts when they end:
 * read after a run.)
 */
async function dbCounters(name: string): Promise<
  { wal: bigint; multixactPages: number; commits: number; queueRead: number; queueFetched: number }
> {
  // (null for a system without one: to_regclass(null) is null, to_regclass('') an error)
  const index = QUEUE_INDEX[name] ?? null;
  const [r] = await probe`select pg_current_wal_lsn() - '0/0' as wal,
      (select sum(blks_zeroed) from pg_stat_slru where name like 'Multi%')::integer as multixact_pages,
      (select xact_commit from pg_stat_database where datname = current_database())::integer as commits,
      coalesce(q.idx_tup_read, 0) as queue_read, coalesce(q.idx_tup_fetch, 0) as queue_fetched
    from (select) one
    left join pg_stat_user_indexes q on q.indexrelid = to_regclass(${index})`;
  return {
    wal: BigInt(r.wal),
    multixactPages: r.multixact_pages,
    commits: r.commits,
    queueRead: Number(r.queue_read),
    queueFetched: Number(r.queue_fetched),
  };
}

/** CPU seconds of the whole machine (user + system, from /proc/stat) and of this process. */
function cpu(): { machine: number; self: number } {
  const [, ...fields] = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq] = fields.map(Number);
  const u = process.cpuUsage();
  return { machine: (user + nice + system + irq + softirq) / 100, self: (u.user + u.system) / 1e6 };
}

const arg = (name: string, fallback: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const c = Number(arg("c", "8"));
const mode = arg("mode", "single") as Mode;
const n = Number(arg("n", "20000"));
const rounds = Number(arg("rounds", "3"));
const systems = arg("systems", "ours,graphile").split(",");
// T3 is `--max-parallel=64 --c=32 --systems=ours`; T2's jobs (100 × 200 tasks) with `--t2`
const maxParallel = Number(arg("max-parallel", "1000"));
const t2 = Deno.args.includes("--t2");
// reports also claim (completeTask(s) with `claim`)
const combined = Deno.args.includes("--combined");

async function ours(): Promise<number> {
  const r = await runOurs({
    label: `ours ${mode} C=${c}`,
    specs: t2
      ? t2Jobs(100, n / 100)
      : [{ priority: 50, maxParallel, limits: null, tasks: numberedTasks(n) }],
    c,
    mode,
    transport: () => Promise.resolve(sqlTransport(c)),
    separate: !combined,
  });
  return r.tasksPerSecond;
}

const runners: Record<string, () => Promise<number>> = {
  ours,
  graphile: async () => (await graphile.runT1(n, c, mode)).tasksPerSecond,
  pgboss: async () => (await pgboss.runT1(n, c, mode)).tasksPerSecond,
};

await resetDatabase(BENCH_DB_URL);
if (systems.includes("graphile")) await graphile.install();
if (systems.includes("pgboss")) await pgboss.install();
const figures: Record<string, number[]> = {};
for (let round = 0; round < rounds; round++) {
  for (let i = 0; i < systems.length; i++) {
    const name = systems[(i + round) % systems.length];
    const before = cpu();
    const dbBefore = await dbCounters(name);
    const tps = await runners[name]();
    const after = cpu();
    const dbAfter = await dbCounters(name);
    (figures[name] ??= []).push(tps);
    // CPU per task (the set-up of a run included, the same for every system): the workers'
    // process, and the rest of the machine (the database, mostly)
    const self = (after.self - before.self) / n * 1e6;
    const rest = (after.machine - before.machine) / n * 1e6 - self;
    log(
      `round ${round + 1} ${name} ${mode} C=${c}: ${Math.round(tps)} tasks/s; CPU per task ` +
        `${Math.round(self)} µs in the workers' process, ${Math.round(rest)} µs elsewhere; WAL ` +
        `${Number(dbAfter.wal - dbBefore.wal) / n | 0} B, transactions ` +
        `${((dbAfter.commits - dbBefore.commits) / n).toFixed(2)}, MultiXact pages ` +
        `${dbAfter.multixactPages - dbBefore.multixactPages} (set-up included)` +
        (QUEUE_INDEX[name]
          ? `; queue entries read ${((dbAfter.queueRead - dbBefore.queueRead) / n).toFixed(1)}, ` +
            `rows fetched ${
              ((dbAfter.queueFetched - dbBefore.queueFetched) / n).toFixed(1)
            } per task`
          : ""),
    );
  }
}
const line = systems.map((s) => `${s} ${Math.round(median(figures[s]))}`).join(", ");
console.log(`T1 ${mode} C=${c} N=${n}, medians of ${rounds}: ${line}`);
await cleanUp();
await probe.end();
Deno.exit(0);
