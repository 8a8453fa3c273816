// deno task bench [--quick] [--only=sql|http] [--rounds=N] [--budget=SECONDS] [--out=FILE]
//
// Every scenario of quality.md's "Performance" in one invocation, on one database of its own, with
// the same N and C for every system and the rounds interleaved (medians reported), so that the
// noise of a shared machine hits all systems alike. Prints one table; a full run writes
// bench/results/latest.json. Exits non-zero when a scenario breaks or an invariant check fails;
// a missed target is reported, not failed.
import { resetDatabase } from "../scripts/lib/database.ts";
import { BENCH_DB_URL, config, connect, log, machine, type Mode } from "./lib/common.ts";
import {
  cleanUp,
  InvariantViolation,
  type JobSpec,
  numberedTasks,
  runOurs as runOursOnce,
  sqlTransport,
  t2Jobs,
} from "./lib/ours.ts";
import * as graphile from "./lib/graphile.ts";
import * as pgboss from "./lib/pgboss.ts";
import { runCycle } from "./lib/pgbench.ts";
import { historyViolations, type JobLimits } from "./lib/invariants.ts";
import {
  bulkCreate,
  createJobLoad,
  functionEnv,
  httpCaller,
  httpTransport,
  type LoadSample,
  LoadSide,
  peakRssMiB,
  type ServerProcess,
  spawnServer,
  summarize,
} from "./lib/http.ts";
import { buildRows, emptyResults, renderTable } from "./lib/report.ts";
import { runT4 } from "./lib/t4.ts";

const cfg = config(Deno.args);
const MODES: Mode[] = ["single", "batched"];
const C_MAX = Math.max(...cfg.concurrencies);
/** seconds of the time budget kept for T4, which runs once after the rounds (full runs) */
const T4_RESERVE = cfg.quick ? 0 : 300;
/** H1's requests go in this many slices per side, alternating HTTP and in-process */
const H1_SLICES = cfg.quick ? 2 : 5;
const results = emptyResults();

/** Runs one measurement; a broken one is recorded (and fails the run) without stopping the rest. */
async function attempt(label: string, fn: () => Promise<number>, into: number[]): Promise<void> {
  try {
    into.push(await fn());
  } catch (error) {
    const message = `${label}: ${error instanceof Error ? error.message : String(error)}`;
    (error instanceof InvariantViolation ? results.violations : results.failures).push(message);
    log(`FAILED ${message}`);
  }
}

// --- our engine ---------------------------------------------------------------------------------

/** runOurs of lib/ours.ts, tasks/s. */
const runOurs = async (options: Parameters<typeof runOursOnce>[0]) =>
  (await runOursOnce(options)).tasksPerSecond;

const oneJob = (n: number, maxParallel: number): JobSpec[] => [
  { priority: 50, maxParallel, limits: null, tasks: numberedTasks(n) },
];

/** T2: mixed priorities, max_parallel_tasks 4, resource limits (and some big tasks) on half. */
const limitedJobs = () => t2Jobs(cfg.t2Jobs, cfg.t2TasksPerJob);

function t2(mode: Mode): Promise<void> {
  const specs = limitedJobs();
  return attempt(`T2 ${mode}`, () =>
    runOurs({
      label: `T2 ${mode} C=${C_MAX}`,
      specs,
      c: C_MAX,
      mode,
      transport: () => Promise.resolve(sqlTransport(C_MAX)),
      judge(history, jobIds) {
        results.t2RunsChecked += history.length;
        const limits = new Map<string, JobLimits>();
        jobIds.forEach((id, j) => limits.set(id, specs[j]));
        return historyViolations(history, limits);
      },
    }), results.t2[mode]);
}

// --- the SQL scenarios: T1 (with both peers), the pgbench ceiling, T2, T3 -----------------------

async function sqlRound(round: number): Promise<void> {
  for (const mode of MODES) {
    for (const c of cfg.concurrencies) {
      const key = `${mode} ${c}`;
      const slot = results.t1[key] ??= { ours: [], oursSeparate: [], graphile: [], pgboss: [] };
      const peer = (name: string, run: typeof graphile.runT1) => async () => {
        const r = await run(cfg.n, c, mode);
        log(
          `T1 ${name} ${key}: ${Math.round(r.tasksPerSecond)} tasks/s (${r.seconds.toFixed(2)} s)`,
        );
        return r.tasksPerSecond;
      };
      const systems: [keyof typeof slot, () => Promise<number>][] = [
        ["ours", () =>
          runOurs({
            label: `T1 ours ${key}`,
            specs: oneJob(cfg.n, 1_000),
            c,
            mode,
            transport: () => Promise.resolve(sqlTransport(c)),
          })],
        // the same workers with reports and claims as separate calls (two per cycle, as the
        // peers make): shown beside the figure above, not judged
        ["oursSeparate", () =>
          runOurs({
            label: `T1 ours separate calls ${key}`,
            specs: oneJob(cfg.n, 1_000),
            c,
            mode,
            transport: () => Promise.resolve(sqlTransport(c)),
            separate: true,
          })],
        ["graphile", peer("graphile-worker", graphile.runT1)],
        ["pgboss", peer("pg-boss", pgboss.runT1)],
      ];
      // rotate who goes first, so that no system always meets the same state of the machine
      for (let i = 0; i < systems.length; i++) {
        const [name, run] = systems[(i + round) % systems.length];
        await attempt(`T1 ${name} ${key}`, run, slot[name] ??= []);
      }
    }
  }
  for (const k of [1, 10]) {
    for (const c of cfg.concurrencies) {
      const key = `claim-${k} ${c}`;
      await attempt(`pgbench ${key}`, async () => {
        const r = await runCycle(cfg.pgbenchSeconds, c, k);
        log(`pgbench ${key}: ${Math.round(r.tasksPerSecond)} tasks/s`);
        return r.tasksPerSecond;
      }, results.pgbench[key] ??= []);
    }
  }
  for (const mode of MODES) {
    await t2(mode);
    await attempt(`T3 ${mode}`, () =>
      runOurs({
        label: `T3 ${mode} C=${C_MAX}`,
        specs: oneJob(cfg.n, 64),
        c: C_MAX,
        mode,
        transport: () => Promise.resolve(sqlTransport(C_MAX)),
      }), results.t3[mode]);
  }
}

// --- the HTTP scenarios: H1, H2, H3 on one function server, whose peak memory is M1 ------------

async function httpRound(round: number, server: ServerProcess): Promise<void> {
  const http = httpCaller(server.url);
  const peak = async (stage: string) => {
    const mib = await peakRssMiB(server.pid);
    results.m1Stages.push({ round: round + 1, stage, peakMiB: Math.round(mib * 10) / 10 });
    log(`M1 function server peak RSS after ${stage}: ${mib.toFixed(1)} MiB`);
  };
  // H1 starts from a service with jobs in it and fresh statistics, as a deployed one has (the SQL
  // scenarios before leave statistics taken on a single job; see docs/performance.md)
  await cleanUp();
  await createJobLoad(http, 200, 8);
  await analyze();
  const sides = { http: new LoadSide(server.url), inProcess: new LoadSide() };
  try {
    for (const c of [1, 32]) {
      await attempt(`H1 concurrency ${c}`, async () => {
        // both sides warmed up alike, then slices that alternate, so that drift hits both
        await sides.http.run(100, c);
        await sides.inProcess.run(100, c);
        const samples = { http: [] as LoadSample[], inProcess: [] as LoadSample[] };
        const size = Math.ceil(cfg.h1Requests / H1_SLICES);
        for (let slice = 0; slice < H1_SLICES; slice++) {
          const order = (slice + round) % 2 === 0
            ? ["http", "inProcess"] as const
            : ["inProcess", "http"] as const;
          for (const side of order) samples[side].push(await sides[side].run(size, c));
        }
        const [h, l] = [summarize(samples.http, c), summarize(samples.inProcess, c)];
        (results.h1[c] ??= { http: [], inProcess: [] }).http.push(h);
        results.h1[c].inProcess.push(l);
        log(
          `H1 concurrency ${c}: HTTP p50 ${h.p50Ms.toFixed(1)} ms, p99 ${h.p99Ms.toFixed(1)} ms, ` +
            `${Math.round(h.requestsPerSecond)} req/s; in-process p50 ${l.p50Ms.toFixed(1)} ms, ` +
            `p99 ${l.p99Ms.toFixed(1)} ms, ${Math.round(l.requestsPerSecond)} req/s`,
        );
        return h.requestsPerSecond;
      }, []);
    }
  } finally {
    await Promise.all([sides.http.close(), sides.inProcess.close()]);
  }
  await peak("H1");
  await attempt("H2", async () => {
    const { ms, cpuMs } = await bulkCreate(server, cfg.h2Tasks);
    results.h2CpuMs.push(cpuMs);
    log(
      `H2 createJob with ${cfg.h2Tasks} tasks: ${Math.round(ms)} ms, function CPU ` +
        `${Math.round(cpuMs)} ms`,
    );
    return ms;
  }, results.h2Ms);
  await peak("H2");
  for (const mode of MODES) {
    await attempt(`H3 ${mode}`, () =>
      runOurs({
        label: `H3 ${mode} C=${C_MAX}`,
        specs: oneJob(cfg.h3Tasks, 1_000),
        c: C_MAX,
        mode,
        transport: () => httpTransport(http),
      }), results.h3[mode]);
  }
  await peak("H3");
}

async function analyze(): Promise<void> {
  const sql = connect(1);
  await sql`analyze job_service.jobs, job_service.job_shards, job_service.tasks, job_service.task_ready`;
  await sql.end();
}

// --- main ---------------------------------------------------------------------------------------

const began = performance.now();
const elapsed = () => (performance.now() - began) / 1000;
log(
  `${cfg.quick ? "quick" : "full"} run, up to ${cfg.rounds} round(s), N=${cfg.n}, ${BENCH_DB_URL}`,
);
await resetDatabase(BENCH_DB_URL);
await graphile.install();
await pgboss.install();
const machineInfo = await machine();

// One server for every round: M1 is its peak over all of H1–H3.
const server = await spawnServer(functionEnv());
try {
  let longestRound = 0;
  for (let round = 0; round < (cfg.only === "t4" ? 0 : cfg.rounds); round++) {
    if (round > 0 && elapsed() + longestRound + T4_RESERVE > cfg.budgetSeconds) {
      log(`time budget (${cfg.budgetSeconds} s): stopping after ${round} round(s)`);
      break;
    }
    const roundStart = elapsed();
    if (cfg.only !== "http") {
      log(`round ${round + 1} of ${cfg.rounds}: SQL scenarios`);
      await sqlRound(round);
    }
    if (cfg.only !== "sql") {
      log(`round ${round + 1} of ${cfg.rounds}: HTTP scenarios`);
      await httpRound(round, server);
    }
    results.roundsRun = round + 1;
    longestRound = Math.max(longestRound, elapsed() - roundStart);
  }
  results.m1PeakRssMiB = await peakRssMiB(server.pid);
  if (cfg.only === undefined || cfg.only === "t4") {
    log(`T4: ${cfg.t4Jobs * cfg.t4TasksPerJob} tasks over ${cfg.t4Jobs} jobs, C=${C_MAX} batched`);
    await attempt("T4", async () => {
      const r = await runT4(cfg.t4Jobs, cfg.t4TasksPerJob, C_MAX);
      results.t4 = r;
      log(
        `T4: first tenth ${Math.round(r.earlyTasksPerSecond)} tasks/s, last tenth ` +
          `${Math.round(r.lateTasksPerSecond)}, all ${Math.round(r.tasksPerSecond)}; createJob ` +
          `${r.createEmptyMs.toFixed(1)} ms empty, ${r.createFullMs.toFixed(1)} ms with the ` +
          `finished tasks kept (${r.createVacuumedMs.toFixed(1)} ms after a VACUUM); WAL per ` +
          `createJob (empty, kept, vacuumed) ${JSON.stringify(r.createWal)}; ` +
          JSON.stringify(r.samples),
      );
      return r.tasksPerSecond;
    }, []);
  }
} finally {
  await server.stop();
}
await cleanUp();

const seconds = elapsed();
const rows = buildRows(results, cfg);
console.log(renderTable(rows));
console.log(
  `\n${cfg.quick ? "quick" : "full"} run: medians of ${results.roundsRun} round(s), ` +
    `N=${cfg.n}, ${Math.round(seconds)} s in all`,
);
for (const problem of [...results.violations, ...results.failures]) {
  console.log(`FAILED ${problem}`);
}

// only a full run of every scenario replaces the committed results
const out = Deno.args.find((a) => a.startsWith("--out="))?.slice(6) ??
  (cfg.quick || cfg.only ? undefined : new URL("results/latest.json", import.meta.url).pathname);
if (out) {
  const report = {
    date: new Date().toISOString(),
    durationSeconds: Math.round(seconds),
    config: cfg,
    machine: machineInfo,
    table: rows,
    raw: results,
  };
  await Deno.writeTextFile(`${out}.tmp`, JSON.stringify(report, null, 2) + "\n");
  await Deno.rename(`${out}.tmp`, out);
  log(`wrote ${out}`);
}
Deno.exit(results.violations.length + results.failures.length > 0 ? 1 : 0);
