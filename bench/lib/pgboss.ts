// pg-boss 12 as quality.md runs it: work() with localConcurrency C, pollingIntervalSeconds 0.5 and
// burstWhenReadyExceeds 1 (one at a time) or batchSize 10 with burstWhenBatchFull (batched), after
// one supervise() of the queue so that its cached ready count lets the workers burst.
// A benchmark-only peer: pinned here, not in deno.json, so it never becomes a runtime dependency.
// deno-lint-ignore no-import-prefix
import { PgBoss } from "npm:pg-boss@12.38.0";
import {
  BENCH_DB_URL,
  connect,
  type Mode,
  OnceChecker,
  poolSize,
  throughput,
  waitForCount,
} from "./common.ts";
import type { Throughput } from "./common.ts";

const QUEUE = "bench";

function boss(max: number): PgBoss {
  // The built-in supervisor and cron stay off: the one supervise() pass is made by hand, and no
  // background timers compete with the workers.
  const instance = new PgBoss({
    connectionString: BENCH_DB_URL,
    max,
    supervise: false,
    schedule: false,
  });
  instance.on("error", (error) => console.error("pg-boss:", error));
  return instance;
}

export async function install(): Promise<void> {
  const loader = boss(2);
  await loader.start();
  await loader.createQueue(QUEUE);
  await loader.stop({ graceful: false });
}

export async function runT1(n: number, c: number, mode: Mode): Promise<Throughput> {
  const sql = connect(1);
  // Set-up, not timed: clear the previous run, bulk insert, ANALYZE, one supervise pass.
  const loader = boss(2);
  await loader.start();
  await loader.deleteAllJobs(QUEUE);
  await sql`vacuum analyze pgboss.job`;
  for (let i = 0; i < n; i += 1_000) {
    await loader.insert(
      QUEUE,
      Array.from({ length: Math.min(1_000, n - i) }, (_, k) => ({ data: { n: i + k } })),
    );
  }
  await sql`analyze pgboss.job`;
  await loader.supervise(QUEUE);
  await loader.stop({ graceful: false });

  // A fresh instance loads the queue cache (with the ready count) when it starts.
  const workers = boss(poolSize(c));
  await workers.start();
  const once = new OnceChecker(n, `pg-boss ${mode} C=${c}`);
  try {
    const start = performance.now();
    await workers.work<{ n: number }>(
      QUEUE,
      mode === "batched"
        ? {
          localConcurrency: c,
          batchSize: 10,
          pollingIntervalSeconds: 0.5,
          burstWhenReadyExceeds: 1,
          burstWhenBatchFull: true,
        }
        : {
          localConcurrency: c,
          batchSize: 1,
          pollingIntervalSeconds: 0.5,
          burstWhenReadyExceeds: 1,
        },
      (jobs) => {
        for (const job of jobs) once.mark(job.data.n);
        return Promise.resolve();
      },
    );
    await waitForCount(
      async () => {
        const [{ done }] = await sql`select count(*)::integer as done from pgboss.job
        where name = ${QUEUE} and state = 'completed'`;
        return done;
      },
      n,
      { ready: once.allHandled, timeoutMs: 600_000, label: "pg-boss" },
    );
    const result = throughput(n, performance.now() - start);
    once.assertOnce();
    return result;
  } finally {
    await workers.stop({ graceful: false });
    await sql.end();
  }
}
