// Shared settings and small helpers of the benchmark: the database, sizes, timing, medians.
import postgres from "postgres";

export const BENCH_DB_URL = Deno.env.get("BENCH_DB_URL") ??
  "postgresql://postgres@127.0.0.1:5432/job_operations_bench";

/** Sizes of one invocation. `--quick` keeps every scenario but makes it small. */
export interface Config {
  quick: boolean;
  /** `--only=sql`, `--only=http` (one half of every round) or `--only=t4` (T4 alone): a check of
   * one part, no full table */
  only?: "sql" | "http" | "t4";
  rounds: number;
  /** T1 and T3 tasks; T2 is jobs × tasksPerJob */
  n: number;
  concurrencies: number[];
  t2Jobs: number;
  t2TasksPerJob: number;
  /** T4: a backlog of t4Jobs × t4TasksPerJob tasks */
  t4Jobs: number;
  t4TasksPerJob: number;
  /** seconds per pgbench measurement */
  pgbenchSeconds: number;
  h1Requests: number;
  h2Tasks: number;
  h3Tasks: number;
  /** rounds after the first start only while the longest round so far still fits in this */
  budgetSeconds: number;
}

export function config(args: string[]): Config {
  const quick = args.includes("--quick");
  const onlyArg = args.find((a) => a.startsWith("--only="))?.slice(7);
  if (onlyArg !== undefined && onlyArg !== "sql" && onlyArg !== "http" && onlyArg !== "t4") {
    throw new Error(`bad --only=${onlyArg} (sql, http or t4)`);
  }
  const only = onlyArg as Config["only"];
  const roundsArg = args.find((a) => a.startsWith("--rounds="));
  const rounds = roundsArg ? Number(roundsArg.split("=")[1]) : quick ? 1 : 3;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`bad ${roundsArg}`);
  const budgetArg = args.find((a) => a.startsWith("--budget="));
  const budget = budgetArg ? Number(budgetArg.split("=")[1]) : undefined;
  if (budget !== undefined && !(budget > 0)) throw new Error(`bad ${budgetArg}`);
  return quick
    ? {
      quick,
      only,
      rounds,
      n: 400,
      concurrencies: [1, 8, 32],
      t2Jobs: 10,
      t2TasksPerJob: 20,
      t4Jobs: 100,
      t4TasksPerJob: 100,
      pgbenchSeconds: 1,
      h1Requests: 64,
      h2Tasks: 10_000,
      h3Tasks: 400,
      budgetSeconds: budget ?? Infinity,
    }
    : {
      quick,
      only,
      rounds,
      n: 20_000,
      concurrencies: [1, 8, 32],
      t2Jobs: 100,
      t2TasksPerJob: 200,
      t4Jobs: 10_000,
      t4TasksPerJob: 100,
      pgbenchSeconds: 4,
      h1Requests: 1_000,
      h2Tasks: 10_000,
      h3Tasks: 5_000,
      budgetSeconds: budget ?? 30 * 60,
    };
}

/** The pool size the spec gives every system: max(10, C + 2). */
export const poolSize = (c: number) => Math.max(10, c + 2);

export function connect(max = 4): postgres.Sql {
  return postgres(BENCH_DB_URL, { max, fetch_types: false, onnotice: () => {} });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * Polls `count` until it reaches `target`, the spec's "a count query confirms all N done". Polling
 * starts once `ready` resolves (every item handled), so the count query does not compete with the
 * system it measures for the two CPUs.
 */
export async function waitForCount(
  count: () => Promise<number>,
  target: number,
  options: { ready: Promise<void>; timeoutMs: number; label: string },
): Promise<void> {
  const { timeoutMs, label } = options;
  const deadline = performance.now() + timeoutMs;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${label}: not all handled after ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([options.ready, late]);
  } finally {
    clearTimeout(timer);
  }
  for (;;) {
    const n = await count();
    if (n >= target) return;
    if (performance.now() > deadline) {
      throw new Error(`${label}: only ${n} of ${target} done after ${timeoutMs} ms`);
    }
    await sleep(5);
  }
}

/** Counts how often each of 0..n-1 was handled; throws unless every one was handled exactly once. */
export class OnceChecker {
  #seen: Uint8Array;
  #handled = 0;
  #all = Promise.withResolvers<void>();
  constructor(readonly n: number, readonly label: string) {
    this.#seen = new Uint8Array(n);
  }
  mark(index: number): void {
    if (index < 0 || index >= this.n) throw new Error(`${this.label}: unexpected item ${index}`);
    this.#seen[index] = Math.min(255, this.#seen[index] + 1);
    if (++this.#handled === this.n) this.#all.resolve();
  }
  /** Resolves once n items were handled: only then is the count query worth polling. */
  get allHandled(): Promise<void> {
    return this.#all.promise;
  }
  assertOnce(): void {
    const missing = this.#seen.filter((v) => v === 0).length;
    const twice = this.#seen.filter((v) => v > 1).length;
    if (missing || twice) {
      throw new Error(`${this.label}: ${missing} never handled, ${twice} handled more than once`);
    }
  }
}

/** One throughput measurement. */
export interface Throughput {
  tasks: number;
  seconds: number;
  tasksPerSecond: number;
}

export function throughput(tasks: number, ms: number): Throughput {
  return { tasks, seconds: ms / 1000, tasksPerSecond: tasks / (ms / 1000) };
}

export function log(message: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

/** "single": one task per claim and per completion; "batched": claims of up to 10, merged completions. */
export type Mode = "single" | "batched";

/** What the figures were measured on, for latest.json and docs/performance.md. */
export async function machine(): Promise<Record<string, string | number>> {
  const sql = connect(1);
  try {
    const [{ version }] = await sql`select version()`;
    const settings = await sql`select name, setting from pg_settings where name in
      ('shared_buffers', 'synchronous_commit', 'fsync', 'max_connections', 'wal_buffers')`;
    const cpu = /^model name\s*:\s*(.+)$/m.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1];
    return {
      cpus: navigator.hardwareConcurrency,
      cpu: cpu ?? "unknown",
      memoryGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
      loadAverage: Deno.loadavg().map((l) => l.toFixed(2)).join(" "),
      deno: Deno.version.deno,
      postgres: String(version).split(" on ")[0],
      ...Object.fromEntries(settings.map((s) => [`pg.${s.name}`, s.setting])),
    };
  } finally {
    await sql.end();
  }
}
