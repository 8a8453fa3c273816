// T4 (quality.md): how cost grows with work. A backlog of `jobs` × `perJob` tasks (1 000 000 over
// 10 000 jobs in a full run), worked off by C = 32 batched workers; throughput over the first and
// the last tenth of the tasks, dead tuples and sizes of the hot tables at both tenths and at the
// end, and createJob's latency on an empty database and with the backlog's finished tasks kept.
//
// The backlog is made in SQL, not through the API: one createJob per job (with its first task, in
// one statement), then every other task with one INSERT … SELECT generate_series, its queue rows
// and the jobs' pending counters, as addTasks writes them. Through the API it took 763 s.
import { connect, log, OnceChecker } from "./common.ts";
import { checkJobs, cleanUp, OWNER, sqlTransport } from "./ours.ts";
import { runWorkers } from "./workers.ts";

const CTX = { role: "service_role", user_id: null, request_id: "bench-t4" };
const JOB = {
  user_id: OWNER,
  product_id: "bench-t4",
  sending_group_id: "bench",
  priority: 50,
  max_parallel_tasks: 10,
  retry_config: {
    max_attempts: 3,
    retry_interval: 1_000,
    backoff: "fixed",
    max_retry_interval: 3_600_000,
  },
  resource_limits: null,
  start: true,
  metadata: {},
};

export interface TableSample {
  at: string;
  deadTasks: number;
  deadQueue: number;
  tasksMiB: number;
  queueMiB: number;
  shardsMiB: number;
}

export interface T4Result {
  tasks: number;
  jobs: number;
  setupSeconds: number;
  earlyTasksPerSecond: number;
  lateTasksPerSecond: number;
  tasksPerSecond: number;
  createEmptyMs: number;
  createFullMs: number;
  /** the same after a VACUUM of the hot tables: what of the difference is their dead rows */
  createVacuumedMs: number;
  /** WAL per createJob: empty, with the finished tasks kept, after the VACUUM */
  createWal: CreateWal[];
  samples: TableSample[];
}

/** WAL written per createJob, and how many of its records were full-page images. */
export interface CreateWal {
  bytes: number;
  fullPageImages: number;
}

/**
 * createJob (10 tasks) called `n` times in a row over SQL: the median wall time in ms, and the WAL
 * per call (the server's WAL position and pg_stat_wal's full-page images: the machine is otherwise
 * quiet here). Before the timed calls, alike for the three measurements: 20 untimed ones on the same
 * connection (a new backend plans every statement on its first calls) and a checkpoint (after the
 * backlog the server still has hundreds of MiB of dirty pages to write, and a createJob's commit
 * waits for its WAL flush behind them). Until 2026-12-07 it was 50 timed calls on a new connection:
 * two runs of that day gave 1.9 / 3.0 / 3.1 ms (empty, kept, vacuumed) and 2.7 / 2.0 / 2.5 ms, the
 * order changing from run to run with no vacuum running.
 */
async function createLatency(n: number, wal?: CreateWal[]): Promise<number> {
  const sql = connect(1);
  try {
    const tasks = Array.from({ length: 10 }, (_, i) => ({ payload: { n: i } }));
    const create = () =>
      sql`select job_service_api.create_job(${sql.json(CTX)},
        ${sql.json({ ...JOB, product_id: "bench-t4-create", start: false })}, ${sql.json(tasks)},
        null, null)`;
    for (let i = 0; i < 20; i++) await create();
    await sql`checkpoint`;
    const times: number[] = [];
    const walNow = async () => {
      // this backend's WAL counters reach pg_stat_wal when it goes idle after a forced flush
      await sql`select pg_stat_force_next_flush()`;
      const [r] = await sql`select (pg_current_wal_lsn() - '0/0')::text as bytes,
        wal_fpi::text as fpi from pg_stat_wal`;
      return { bytes: Number(r.bytes), fpi: Number(r.fpi) };
    };
    const before = await walNow();
    for (let i = 0; i < n; i++) {
      const start = performance.now();
      await create();
      times.push(performance.now() - start);
    }
    const after = await walNow();
    wal?.push({
      bytes: Math.round((after.bytes - before.bytes) / n),
      fullPageImages: Math.round((after.fpi - before.fpi) / n * 10) / 10,
    });
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)];
  } finally {
    await sql.end();
  }
}

async function sample(at: string): Promise<TableSample> {
  const sql = connect(1);
  try {
    const [r] = await sql`select
      (select n_dead_tup from pg_stat_user_tables where relid = 'job_service.tasks'::regclass)::float8 as dt,
      (select n_dead_tup from pg_stat_user_tables where relid = 'job_service.task_ready'::regclass)::float8 as dq,
      pg_total_relation_size('job_service.tasks')::float8 as ts,
      pg_total_relation_size('job_service.task_ready')::float8 as qs,
      (pg_total_relation_size('job_service.job_shards')
       + pg_total_relation_size('job_service.job_shard_ends'))::float8 as ss`;
    const mib = (b: number) => Math.round(b / 1024 / 1024 * 10) / 10;
    return {
      at,
      deadTasks: r.dt,
      deadQueue: r.dq,
      tasksMiB: mib(r.ts),
      queueMiB: mib(r.qs),
      shardsMiB: mib(r.ss),
    };
  } finally {
    await sql.end();
  }
}

export async function runT4(jobs: number, perJob: number, c: number): Promise<T4Result> {
  await cleanUp();
  const createWal: CreateWal[] = [];
  const createEmptyMs = await createLatency(200, createWal);
  await cleanUp();
  const total = jobs * perJob;
  const setupStart = performance.now();
  const sql = connect(1);
  let jobIds: string[];
  try {
    // one job per row of generate_series, each with its first task (n = the job's first number)
    const created = await sql`select (job_service_api.create_job(${sql.json(CTX)}, ${sql.json(JOB)},
        jsonb_build_array(jsonb_build_object('payload', jsonb_build_object('n', (g - 1) * ${perJob}::integer))),
        null, null) #>> '{job,id}') as id
      from generate_series(1, ${jobs}::integer) g`;
    jobIds = created.map((r) => r.id as string);
    // every other task in one statement, with its queue row; then the jobs' pending counters
    await sql`with base as (
        select t.job_id, (t.payload ->> 'n')::integer as first
        from job_service.tasks t join job_service.jobs j on j.id = t.job_id
        where j.product_id = 'bench-t4'
      ), inserted as (
        insert into job_service.tasks (job_id, payload)
        select b.job_id, jsonb_build_object('n', b.first + k)
        from base b cross join generate_series(1, ${perJob - 1}::integer) k
        order by b.job_id, k
        returning job_id, id, run_after
      )
      insert into job_service.task_ready (job_id, task_id, run_after)
      select job_id, id, run_after from inserted`;
    await sql`update job_service.job_shards s set pending = s.pending + ${perJob - 1}::integer
      from job_service.jobs j
      where j.product_id = 'bench-t4' and s.job_id = j.id and s.shard = 0`;
    await sql`vacuum analyze job_service.jobs, job_service.job_shards, job_service.job_shard_ends,
      job_service.tasks, job_service.task_ready`;
  } finally {
    await sql.end();
  }
  const setupSeconds = (performance.now() - setupStart) / 1000;
  log(`T4 backlog of ${total} tasks over ${jobs} jobs made in ${setupSeconds.toFixed(1)} s`);

  const samples: TableSample[] = [];
  const pending: Promise<void>[] = [];
  const tenth = Math.floor(total / 10);
  const marks: { early?: number; lateFrom?: number; end?: number } = {};
  const transport = sqlTransport(c);
  const start = performance.now();
  let result;
  try {
    result = await runWorkers(transport, {
      c,
      mode: "batched",
      total,
      jobIds,
      once: new OnceChecker(total, "T4"),
      progress(succeeded) {
        if (succeeded >= total) marks.end ??= performance.now();
        if (marks.early === undefined && succeeded >= tenth) {
          marks.early = performance.now();
          pending.push(sample("first tenth").then((s) => void samples.push(s)));
        }
        if (marks.lateFrom === undefined && succeeded >= total - tenth) {
          marks.lateFrom = performance.now();
          pending.push(sample("last tenth begins").then((s) => void samples.push(s)));
        }
      },
    });
  } finally {
    await transport.close();
  }
  const end = marks.end ?? start + result.seconds * 1000;
  await Promise.all(pending);
  samples.push(await sample("end"));
  const problems = await checkJobs(jobIds);
  if (problems.length > 0) {
    throw new Error(`T4: ${problems.length} problems: ${problems.slice(0, 3).join("; ")}`);
  }
  const createFullMs = await createLatency(200, createWal);
  const vacuum = connect(1);
  try {
    await vacuum`vacuum job_service.tasks, job_service.task_ready, job_service.job_shards,
      job_service.job_shard_ends, job_service.jobs`;
  } finally {
    await vacuum.end();
  }
  const createVacuumedMs = await createLatency(200, createWal);
  return {
    tasks: total,
    jobs,
    setupSeconds,
    earlyTasksPerSecond: tenth / (((marks.early ?? end) - start) / 1000),
    lateTasksPerSecond: tenth / ((end - (marks.lateFrom ?? start)) / 1000),
    tasksPerSecond: result.tasksPerSecond,
    createEmptyMs,
    createFullMs,
    createVacuumedMs,
    createWal,
    samples,
  };
}
