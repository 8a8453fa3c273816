// Our engine through its SQL entry points (job_service_api.*): job set-up, clean-up between runs, and the
// SQL transport of the workers.
import postgres from "postgres";
import { connect, log, type Mode, OnceChecker, poolSize, sleep } from "./common.ts";
import { ConnectionPool } from "../../supabase/functions/_shared/connection_pool.ts";
import {
  type ClaimedTask,
  type Outcome,
  type Run,
  runWorkers,
  type Transport,
  type WorkerResult,
} from "./workers.ts";

const CTX = { role: "service_role", user_id: null, request_id: "bench" };
export const OWNER = "00000000-0000-4000-8000-00000000be9c";
const CHUNK = 1_000;
const LEASE_MS = 300_000;

export interface JobSpec {
  priority: number;
  maxParallel: number;
  limits: { max_memory: number; max_cpu: number } | null;
  tasks: { payload: { n: number }; resources?: { memory: number; cpu: number } }[];
}

/** `count` tasks whose payloads number them from `first` (the exactly-once check reads n). */
export function numberedTasks(count: number, first = 0): JobSpec["tasks"] {
  return Array.from({ length: count }, (_, i) => ({ payload: { n: first + i } }));
}

/**
 * T2's jobs: mixed priorities, max_parallel_tasks 4, resource limits on every other job (fair share
 * 256 MiB / 0.5 core) and every fourth of its tasks asking for 300 MiB / 0.5 core, so that the budget
 * binds.
 */
export function t2Jobs(jobs: number, perJob: number): JobSpec[] {
  return Array.from({ length: jobs }, (_, j) => {
    const limited = j % 2 === 0;
    return {
      priority: 10 + (j % 5) * 20,
      maxParallel: 4,
      limits: limited ? { max_memory: 1_024, max_cpu: 2 } : null,
      tasks: numberedTasks(perJob, j * perJob).map((task, i) =>
        limited && i % 4 === 0 ? { ...task, resources: { memory: 300, cpu: 0.5 } } : task
      ),
    };
  });
}

/** Creates the jobs (tasks in chunks of 1 000, like the peers' bulk inserts), then ANALYZE. */
export async function createJobs(specs: JobSpec[]): Promise<string[]> {
  const sql = connect(1);
  try {
    const ids: string[] = [];
    for (const spec of specs) {
      const job = {
        user_id: OWNER,
        product_id: "bench",
        sending_group_id: "bench",
        priority: spec.priority,
        max_parallel_tasks: spec.maxParallel,
        retry_config: {
          max_attempts: 3,
          retry_interval: 1_000,
          backoff: "fixed",
          max_retry_interval: 3_600_000,
        },
        resource_limits: spec.limits,
        start: true,
        metadata: {},
      };
      const chunk = (i: number) => sql.json(spec.tasks.slice(i, i + CHUNK) as postgres.JSONValue);
      const [{ r }] = await sql`select job_service_api.create_job(${sql.json(CTX)}, ${
        sql.json(job)
      },
        ${chunk(0)}, null, null) as r`;
      const id = r.job.id as string;
      for (let i = CHUNK; i < spec.tasks.length; i += CHUNK) {
        await sql`select job_service_api.add_tasks(${sql.json(CTX)}, ${id}::uuid, ${chunk(i)})`;
      }
      ids.push(id);
    }
    await sql`analyze job_service.jobs, job_service.job_shards, job_service.tasks, job_service.task_ready`;
    return ids;
  } finally {
    await sql.end();
  }
}

/**
 * Removes the jobs of earlier runs (H1's and H2's are still queued: workers would take their tasks)
 * and their dead rows, so that every run starts alike.
 */
export async function cleanUp(): Promise<void> {
  const sql = connect(1);
  try {
    await sql`delete from job_service.jobs`;
    await sql`vacuum analyze job_service.jobs, job_service.job_shards, job_service.tasks, job_service.task_ready`;
  } finally {
    await sql.end();
  }
}

/**
 * After a run in which every task succeeded: job_service_api.invariant_violations() must be empty and
 * every job completed (docs/architecture.md, the engine's rules: in the transaction of its last task's end). Returns problems.
 */
export async function checkJobs(jobIds: string[]): Promise<string[]> {
  const sql = connect(1);
  const ids = jobIds.join(",");
  try {
    const violations = await sql`select job_id, invariant, detail
      from job_service_api.invariant_violations(string_to_array(${ids}, ',')::uuid[])`;
    const unfinished = await sql`select id, status from job_service.jobs
      where id = any (string_to_array(${ids}, ',')::uuid[]) and status <> 'completed'`;
    return [
      ...violations.map((v) => `job ${v.job_id}: ${v.invariant}: ${v.detail}`),
      ...unfinished.map((j) => `job ${j.id} is ${j.status} after all its tasks succeeded`),
    ];
  } finally {
    await sql.end();
  }
}

/**
 * Workers calling job_service_api.claim_tasks / complete_tasks directly, with a pool of max(10, C+2): the
 * functions' pool, which hands out connections last-in, first-out, as node-postgres's pool of the
 * peers does.
 */
export function sqlTransport(c: number): Transport & { close(): Promise<void> } {
  const pool = new ConnectionPool(poolSize(c), () => connect(1));
  let retries = 0;
  // What the functions do for these two SQLSTATEs (serialization failure, deadlock): retry.
  const retrying = async <T>(operation: () => Promise<T>): Promise<T> => {
    for (let attempt = 1;; attempt++) {
      try {
        return await operation();
      } catch (error) {
        const code = error instanceof postgres.PostgresError ? error.code : "";
        if ((code !== "40001" && code !== "40P01") || attempt >= 6) throw error;
        retries++;
        await sleep(2 ** attempt * (2 + Math.random() * 3));
      }
    }
  };
  return {
    claim: (worker, limit) =>
      retrying(async () => {
        const [{ r }] = await pool.use((sql) =>
          sql`select job_service_api.claim_tasks(${sql.json(CTX)}, ${worker},
            ${limit}::integer, null::uuid, ${LEASE_MS}::integer) as r`
        );
        return r.tasks as ClaimedTask[];
      }),
    complete: (worker, taskIds) =>
      retrying(async () => {
        const [{ r }] = await pool.use((sql) =>
          sql`select job_service_api.complete_tasks(${sql.json(CTX)}, ${worker},
            ${sql.json(taskIds.map((id) => ({ task_id: id })))}) as r`
        );
        return r as Outcome[];
      }),
    completeAndClaim: (worker, taskIds, limit) =>
      retrying(async () => {
        const [{ r }] = await pool.use((sql) =>
          sql`select job_service_api.complete_and_claim(${sql.json(CTX)}, ${worker},
            ${sql.json(taskIds.map((id) => ({ task_id: id })))}, ${limit}::integer, null::uuid,
            ${LEASE_MS}::integer) as r`
        );
        return { outcomes: r.tasks as Outcome[], claimed: r.claimed as ClaimedTask[] };
      }),
    async countSucceeded(jobIds) {
      const [{ n }] = await pool.use((sql) =>
        sql`select count(*)::integer as n from job_service.tasks
          where job_id = any (string_to_array(${jobIds.join(",")}, ',')::uuid[])
            and status = 'succeeded'`
      );
      return n;
    },
    retries: () => retries,
    close: () => pool.end(),
  };
}

/** A run of ours that broke an invariant (the benchmark counts these apart from other failures). */
export class InvariantViolation extends Error {}

/**
 * Creates the jobs, runs C of our workers over the transport until all tasks succeeded, then
 * checks the engine's invariants (and, given a judge, the recorded history); logs the run.
 */
export async function runOurs(options: {
  label: string;
  specs: JobSpec[];
  c: number;
  mode: Mode;
  transport: () => Promise<Transport & { close(): Promise<void> }>;
  judge?: (history: Run[], jobIds: string[]) => string[];
  /** reports and claims as separate calls (else a report carries the next claim where it helps) */
  separate?: boolean;
}): Promise<WorkerResult> {
  const { label, specs, c, mode } = options;
  await cleanUp();
  const jobIds = await createJobs(specs);
  const total = specs.reduce((sum, s) => sum + s.tasks.length, 0);
  const history: Run[] = [];
  const transport = await options.transport();
  try {
    const once = new OnceChecker(total, label);
    const combined = !options.separate;
    const r = await runWorkers(transport, { c, mode, combined, total, jobIds, once, history });
    const problems = [...await checkJobs(jobIds), ...options.judge?.(history, jobIds) ?? []];
    if (problems.length > 0) {
      throw new InvariantViolation(
        `${problems.length} violations: ${problems.slice(0, 5).join("; ")}`,
      );
    }
    log(
      `${label}: ${Math.round(r.tasksPerSecond)} tasks/s (${r.seconds.toFixed(2)} s, ` +
        `${r.claims} claims of which ${r.emptyClaims} empty and ${r.carried} carried by a ` +
        `completion, ${r.completions} completions, ${r.retries} retries)`,
    );
    return r;
  } finally {
    await transport.close();
  }
}
