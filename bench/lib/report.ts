// The raw figures of a run, and the one table built from their medians (printed, and shown in
// docs/performance.md), with each target of quality.md judged.
import { type Config, median, type Mode } from "./common.ts";
import type { Latency } from "./http.ts";
import type { T4Result } from "./t4.ts";

/** Raw figures of every round; the table and latest.json are built from their medians. */
export interface Results {
  /** `${mode} ${c}` → tasks/s per round */
  t1: Record<
    string,
    { ours: number[]; oursSeparate?: number[]; graphile: number[]; pgboss: number[] }
  >;
  /** `claim-${k} ${c}` → tasks/s per round */
  pgbench: Record<string, number[]>;
  t2: Record<Mode, number[]>;
  t3: Record<Mode, number[]>;
  /** `${c}` → one measurement per round, over HTTP and in-process */
  h1: Record<string, { http: Latency[]; inProcess: Latency[] }>;
  h2Ms: number[];
  /** the function process's CPU time (user + system) during each H2 request */
  h2CpuMs: number[];
  h3: Record<Mode, number[]>;
  m1PeakRssMiB: number | null;
  /** the server's peak RSS so far after each HTTP stage: what drives M1 */
  m1Stages: { round: number; stage: string; peakMiB: number }[];
  /** T4, run once after the rounds (null when it was not run or broke) */
  t4: T4Result | null;
  /** rounds completed (fewer than asked when the time budget ran out) */
  roundsRun: number;
  /** runs recorded in T2 and judged against the engine's invariants (docs/architecture.md) */
  t2RunsChecked: number;
  /** invariant violations found after any of our runs (T2's history included): fail the run */
  violations: string[];
  /** scenarios that broke: fail the run */
  failures: string[];
}

export function emptyResults(): Results {
  return {
    t1: {},
    pgbench: {},
    t2: { single: [], batched: [] },
    t3: { single: [], batched: [] },
    h1: {},
    h2Ms: [],
    h2CpuMs: [],
    h3: { single: [], batched: [] },
    m1PeakRssMiB: null,
    m1Stages: [],
    t4: null,
    roundsRun: 0,
    t2RunsChecked: 0,
    violations: [],
    failures: [],
  };
}

export type Verdict = "pass" | "miss" | "FAIL" | "";

export interface Row {
  scenario: string;
  ours: string;
  graphile: string;
  pgboss: string;
  /** the pgbench ceiling, or what the ratio is taken against */
  basis: string;
  ratio: string;
  target: string;
  result: Verdict;
}

const HEADER: Row = {
  scenario: "scenario",
  ours: "ours",
  graphile: "graphile-worker",
  pgboss: "pg-boss",
  basis: "ceiling / basis",
  ratio: "ratio",
  target: "target",
  result: "" as Verdict,
};

/** The median of the rounds, or undefined when no round produced a figure. */
const med = (values: number[] | undefined) => values && values.length ? median(values) : undefined;
const int = (v: number | undefined) =>
  v === undefined ? "—" : Math.round(v).toLocaleString("en-US");
// rounded down, so that a figure shown at the target never hides a miss
const pct = (v: number | undefined) => v === undefined ? "—" : `${Math.floor(v * 100)} %`;
const ms = (v: number | undefined) =>
  v === undefined ? "—" : `${v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString("en-US")} ms`;
const div = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || b === 0 ? undefined : a / b;
/** No figure means the scenario broke (its error is listed under the table). */
const judge = (ok: boolean | undefined): Verdict =>
  ok === undefined ? "FAIL" : ok ? "pass" : "miss";
const MODE_NAME: Record<Mode, string> = { single: "one at a time", batched: "batched" };

export function buildRows(results: Results, cfg: Config): Row[] {
  const rows: Row[] = [];
  const cMax = Math.max(...cfg.concurrencies);
  const t1Ours = (mode: Mode, c: number) => med(results.t1[`${mode} ${c}`]?.ours);

  for (const mode of ["single", "batched"] as Mode[]) {
    for (const c of cfg.concurrencies) {
      const fig = results.t1[`${mode} ${c}`];
      const [ours, g, b] = [med(fig?.ours), med(fig?.graphile), med(fig?.pgboss)];
      const separate = med(fig?.oursSeparate);
      const ceiling = med(results.pgbench[`claim-${mode === "single" ? 1 : 10} ${c}`]);
      const [vsG, vsB] = [div(ours, g), div(ours, b)];
      rows.push({
        scenario: `T1 ${MODE_NAME[mode]}, C=${c} (tasks/s)`,
        // reports carry the next claim; in brackets: separate claim and report calls
        ours: separate === undefined ? int(ours) : `${int(ours)} (separate ${int(separate)})`,
        graphile: int(g),
        pgboss: int(b),
        basis: `pgbench ${int(ceiling)}`,
        ratio: `${pct(vsG)} / ${pct(vsB)} of peers`,
        target: "≥ both peers",
        result: judge(vsG === undefined || vsB === undefined ? undefined : vsG >= 1 && vsB >= 1),
      });
    }
  }
  for (const mode of ["single", "batched"] as Mode[]) {
    const t2 = med(results.t2[mode]);
    const ratio = div(t2, t1Ours(mode, cMax));
    rows.push({
      scenario: `T2 limited, ${MODE_NAME[mode]}, C=${cMax} (tasks/s)`,
      ours: int(t2),
      graphile: "",
      pgboss: "",
      basis: `T1 ${int(t1Ours(mode, cMax))}`,
      ratio: `${pct(ratio)} of T1`,
      target: "≥ 60 % of T1",
      result: judge(ratio === undefined ? undefined : ratio >= 0.6),
    });
  }
  rows.push({
    scenario: "T2 invariants on the history",
    ours: `${results.violations.length} violations in ${
      results.t2RunsChecked.toLocaleString("en-US")
    } runs`,
    graphile: "",
    pgboss: "",
    basis: "",
    ratio: "",
    target: "none",
    result: results.violations.length > 0 ? "FAIL" : results.t2RunsChecked === 0 ? "" : "pass",
  });
  for (const mode of ["single", "batched"] as Mode[]) {
    const t3 = med(results.t3[mode]);
    const ratio = div(t3, t1Ours(mode, cMax));
    rows.push({
      scenario: `T3 hot job, ${MODE_NAME[mode]}, C=${cMax} (tasks/s)`,
      ours: int(t3),
      graphile: "",
      pgboss: "",
      basis: `T1 ${int(t1Ours(mode, cMax))}`,
      ratio: `${pct(ratio)} of T1`,
      target: "≥ 50 % of T1",
      result: judge(ratio === undefined ? undefined : ratio >= 0.5),
    });
  }
  for (const [c, fig] of Object.entries(results.h1)) {
    const http = (f: (l: Latency) => number) => med(fig.http.map(f));
    const local = med(fig.inProcess.map((l) => l.requestsPerSecond));
    const ratio = div(http((l) => l.requestsPerSecond), local);
    rows.push({
      scenario: `H1 HTTP createJob, concurrency ${c}`,
      ours: `p50 ${ms(http((l) => l.p50Ms))}, p99 ${ms(http((l) => l.p99Ms))}, ` +
        `${int(http((l) => l.requestsPerSecond))} req/s`,
      graphile: "",
      pgboss: "",
      basis: `in-process ${int(local)} req/s`,
      ratio: `${pct(ratio)} of in-process`,
      target: "≥ 70 %",
      result: judge(ratio === undefined ? undefined : ratio >= 0.7),
    });
  }
  const h2 = med(results.h2Ms);
  rows.push({
    scenario: `H2 createJob with ${cfg.h2Tasks.toLocaleString("en-US")} tasks`,
    ours: ms(h2),
    graphile: "",
    pgboss: "",
    basis: "",
    ratio: "",
    target: "< 500 ms",
    result: judge(h2 === undefined ? undefined : h2 < 500),
  });
  const h2Cpu = med(results.h2CpuMs ?? []);
  rows.push({
    scenario: `H2 function CPU time (${cfg.h2Tasks.toLocaleString("en-US")} tasks)`,
    ours: ms(h2Cpu),
    graphile: "",
    pgboss: "",
    basis: `wall ${ms(h2)}`,
    ratio: "",
    target: "< 1 s (Edge Runtime: ~2 s a request)",
    result: judge(h2Cpu === undefined ? undefined : h2Cpu < 1000),
  });
  for (const mode of ["single", "batched"] as Mode[]) {
    const h3 = med(results.h3[mode]);
    rows.push({
      scenario: `H3 workers over HTTP, ${MODE_NAME[mode]}, C=${cMax} (tasks/s)`,
      ours: int(h3),
      graphile: "",
      pgboss: "",
      basis: `T1 ${int(t1Ours(mode, cMax))}`,
      ratio: `${pct(div(h3, t1Ours(mode, cMax)))} of T1`,
      target: "reported",
      result: h3 === undefined ? "FAIL" : "",
    });
  }
  const t4 = results.t4 ?? undefined;
  if (t4 !== undefined || cfg.only === undefined || cfg.only === "t4") {
    const late = div(t4?.lateTasksPerSecond, t4?.earlyTasksPerSecond);
    const create = div(t4?.createFullMs, t4?.createEmptyMs);
    const end = t4?.samples.at(-1);
    rows.push({
      scenario: `T4 backlog of ${(cfg.t4Jobs * cfg.t4TasksPerJob).toLocaleString("en-US")} ` +
        `tasks, C=${cMax} batched, last / first tenth (tasks/s)`,
      ours: `${int(t4?.lateTasksPerSecond)} / ${int(t4?.earlyTasksPerSecond)}`,
      graphile: "",
      pgboss: "",
      basis: `all ${int(t4?.tasksPerSecond)}`,
      ratio: pct(late),
      target: "≥ 80 %",
      result: judge(late === undefined ? undefined : late >= 0.8),
    }, {
      scenario: "T4 createJob (10 tasks) with the backlog's finished tasks kept (p50)",
      // and the WAL per call, of which full-page images: what a random key costs in a big index
      ours: t4?.createWal?.[1]
        ? `${ms(t4.createFullMs)} (WAL ${(t4.createWal[1].bytes / 1024).toFixed(1)} kB, ` +
          `${t4.createWal[1].fullPageImages} FPI; empty ${
            (t4.createWal[0].bytes / 1024).toFixed(1)
          } kB)`
        : ms(t4?.createFullMs),
      graphile: "",
      pgboss: "",
      basis: `empty ${ms(t4?.createEmptyMs)}, vacuumed ${ms(t4?.createVacuumedMs)}`,
      ratio: `${pct(create)} of empty`,
      target: "≤ 120 %",
      result: judge(create === undefined ? undefined : create <= 1.2),
    }, {
      scenario: "T4 tables at the end: tasks / queue / shards, dead task rows",
      ours: end === undefined
        ? "—"
        : `${end.tasksMiB} / ${end.queueMiB} / ${end.shardsMiB} MiB, ${int(end.deadTasks)} dead`,
      graphile: "",
      pgboss: "",
      basis: "",
      ratio: "",
      target: "reported",
      result: t4 === undefined ? "FAIL" : "",
    });
  }
  const m1 = results.m1PeakRssMiB ?? undefined;
  rows.push({
    scenario: "M1 function server peak RSS (H1–H3)",
    ours: m1 === undefined ? "—" : `${m1.toFixed(1)} MiB`,
    graphile: "",
    pgboss: "",
    basis: "",
    ratio: "",
    target: "< 150 MiB",
    result: judge(m1 === undefined ? undefined : m1 < 150),
  });
  return rows;
}

/** A Markdown table, padded so that it also reads well in a terminal. */
export function renderTable(rows: Row[]): string {
  const keys = Object.keys(HEADER) as (keyof Row)[];
  const head = { ...HEADER, result: "result" as Verdict };
  const all = [head, ...rows];
  const width = keys.map((k) => Math.max(...all.map((r) => r[k].length)));
  const line = (r: Row) => `| ${keys.map((k, i) => r[k].padEnd(width[i])).join(" | ")} |`;
  const rule = `| ${width.map((w) => "-".repeat(w)).join(" | ")} |`;
  return [line(head), rule, ...rows.map(line)].join("\n");
}
