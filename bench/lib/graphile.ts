// graphile-worker 0.18 as quality.md runs it: a no-op task, run() with concurrency C, pollInterval
// 100, no signal handlers, a quiet logger; batched: a local queue of 10·C and completeJobBatchDelay 0.
// A benchmark-only peer: pinned here, not in deno.json, so it never becomes a runtime dependency.
// deno-lint-ignore no-import-prefix
import { Logger, makeWorkerUtils, run, runMigrations } from "npm:graphile-worker@0.18.0";
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

const quiet = new Logger(() => () => {});

export async function install(): Promise<void> {
  await runMigrations({ connectionString: BENCH_DB_URL, logger: quiet });
}

export async function runT1(n: number, c: number, mode: Mode): Promise<Throughput> {
  const sql = connect(1);
  const utils = await makeWorkerUtils({ connectionString: BENCH_DB_URL, logger: quiet });
  try {
    // Set-up, not timed: completed jobs are deleted by graphile, so only dead rows are left over.
    await sql`vacuum analyze graphile_worker._private_jobs`;
    for (let i = 0; i < n; i += 1_000) {
      await utils.addJobs(
        Array.from({ length: Math.min(1_000, n - i) }, (_, k) => ({
          identifier: "bench",
          payload: { n: i + k },
        })),
      );
    }
    await sql`analyze graphile_worker._private_jobs`;

    const once = new OnceChecker(n, `graphile-worker ${mode} C=${c}`);
    const start = performance.now();
    const runner = await run({
      connectionString: BENCH_DB_URL,
      maxPoolSize: poolSize(c),
      concurrency: c,
      pollInterval: 100,
      noHandleSignals: true,
      logger: quiet,
      taskList: {
        bench: (payload) => {
          once.mark((payload as { n: number }).n);
          return Promise.resolve();
        },
      },
      preset: mode === "batched"
        ? { worker: { localQueue: { size: 10 * c }, completeJobBatchDelay: 0 } }
        : {},
    });
    try {
      // graphile deletes a job once it completed: zero left means all N done
      await waitForCount(
        async () => {
          const [{ left }] = await sql`select count(*)::integer as left
          from graphile_worker._private_jobs`;
          return n - left;
        },
        n,
        { ready: once.allHandled, timeoutMs: 600_000, label: "graphile-worker" },
      );
      const result = throughput(n, performance.now() - start);
      once.assertOnce();
      return result;
    } finally {
      await runner.stop();
    }
  } finally {
    await utils.release();
    await sql.end();
  }
}
