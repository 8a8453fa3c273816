// The stress run: many workers, creators, updaters, pausers, cancellers, deleters, readers and
// maintenance callers against one database through the HTTP API, bounded in time and in calls.
// Every call is recorded (history.ts); once the chaos phase ends, a drain phase lets the jobs finish
// (workers keep working, paused jobs are resumed, maintenance expires abandoned leases), the
// database's end state is read, and the checker (checker.ts) judges the whole history.
//
// The CI test runs it small; the benchmark calls `runStress({ scale: "large", … })`. STRESS_SCALE
// ("small", "medium", "large" or a number multiplying "small") picks the size when none is given.
import postgres from "postgres";
import { checkHistory, type CheckResult, summarize } from "./checker.ts";
import type { Call, FinalState, History } from "./history.ts";
import { Recorder, wallNow } from "./history.ts";

export interface StressSizes {
  users: number;
  creators: number;
  workers: number;
  updaters: number;
  pausers: number;
  cancellers: number;
  deleters: number;
  readers: number;
  maintainers: number;
  /** length of the chaos phase */
  chaosMs: number;
  /** longest the drain phase may take */
  drainMs: number;
  /** the chaos phase ends after this many calls at the latest */
  maxCalls: number;
  maxJobs: number;
  maxTasksPerJob: number;
}

export const STRESS_PRESETS: Record<"small" | "medium" | "large", StressSizes> = {
  small: {
    users: 3,
    creators: 2,
    workers: 8,
    updaters: 2,
    pausers: 1,
    cancellers: 1,
    deleters: 1,
    readers: 1,
    maintainers: 1,
    chaosMs: 12_000,
    drainMs: 30_000,
    maxCalls: 10_000,
    maxJobs: 80,
    maxTasksPerJob: 30,
  },
  medium: {
    users: 6,
    creators: 4,
    workers: 16,
    updaters: 3,
    pausers: 2,
    cancellers: 1,
    deleters: 1,
    readers: 2,
    maintainers: 1,
    chaosMs: 25_000,
    drainMs: 60_000,
    maxCalls: 40_000,
    maxJobs: 300,
    maxTasksPerJob: 60,
  },
  large: {
    users: 10,
    creators: 6,
    workers: 32,
    updaters: 4,
    pausers: 2,
    cancellers: 2,
    deleters: 2,
    readers: 2,
    maintainers: 2,
    chaosMs: 60_000,
    drainMs: 120_000,
    maxCalls: 200_000,
    maxJobs: 1_500,
    maxTasksPerJob: 200,
  },
};

/** "small" | "medium" | "large" | a number (multiplies "small"), e.g. from STRESS_SCALE. */
export function stressSizes(scale: string | number = "small"): StressSizes {
  if (typeof scale === "string" && scale in STRESS_PRESETS) {
    return { ...STRESS_PRESETS[scale as keyof typeof STRESS_PRESETS] };
  }
  const factor = Number(scale);
  if (!Number.isFinite(factor) || factor <= 0) throw new Error(`unknown stress scale ${scale}`);
  const base = STRESS_PRESETS.small;
  const grow = (n: number) => Math.max(1, Math.round(n * factor));
  return {
    users: grow(base.users),
    creators: grow(base.creators),
    workers: grow(base.workers),
    updaters: grow(base.updaters),
    pausers: grow(base.pausers),
    cancellers: grow(base.cancellers),
    deleters: grow(base.deleters),
    readers: grow(base.readers),
    maintainers: grow(base.maintainers),
    chaosMs: grow(base.chaosMs),
    drainMs: Math.max(base.drainMs, grow(base.drainMs)),
    maxCalls: grow(base.maxCalls),
    maxJobs: grow(base.maxJobs),
    maxTasksPerJob: grow(base.maxTasksPerJob),
  };
}

export interface StressOptions {
  /** base URL of the served functions (without /functions/v1) */
  url: string;
  /** the same database, for pausing foreign jobs and reading the end state */
  dbUrl: string;
  scale?: string | number;
  /** overrides of the preset's sizes */
  sizes?: Partial<StressSizes>;
  seed?: number;
  /** pause claimable jobs that are not this run's first (claims without job_id see only ours) */
  isolate?: boolean;
  /** faults are injected: 503s and lost answers are expected */
  allowUnavailable?: boolean;
  /** runs alongside the chaos phase (fault injection); given a signal aborted when it ends */
  during?: (signal: AbortSignal) => Promise<void>;
  log?: (line: string) => void;
}

export interface StressReport {
  runId: string;
  sizes: StressSizes;
  seed: number;
  calls: number;
  /** action → HTTP status → count */
  answers: Record<string, Record<string, number>>;
  jobs: number;
  tasks: number;
  runs: number;
  chaosMs: number;
  drainMs: number;
  totalMs: number;
  drained: boolean;
  /** jobs not finished when the drain phase gave up */
  unfinished: string[];
  check: CheckResult;
  history: History;
}

/** A small seeded generator (mulberry32), so a failing run can be repeated with its seed. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min: number, max: number) => min + Math.floor(next() * (max - min + 1)),
    chance: (p: number) => next() < p,
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)],
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const FINISHED = new Set(["completed", "failed", "cancelled"]);

interface KnownJob {
  id: string;
  owner: string;
  limits: { max_memory: number; max_cpu: number } | null;
  hasTasks: boolean;
  gone: boolean;
  /** when a worker last got one of its tasks */
  lastClaim: number;
}

interface Claimed {
  task_id: number;
  job_id: string;
  attempt: number;
  lease_expires_at: string;
  resources: { memory: number; cpu: number } | null;
}

export async function runStress(options: StressOptions): Promise<StressReport> {
  const sizes = { ...stressSizes(options.scale ?? Deno.env.get("STRESS_SCALE") ?? "small") };
  Object.assign(sizes, options.sizes ?? {});
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = rng(seed);
  const runId = `stress-${crypto.randomUUID().slice(0, 8)}`;
  const log = options.log ?? (() => {});
  const rec = new Recorder({ url: options.url, timeoutMs: 30_000 });
  const sql = postgres(options.dbUrl, {
    max: 2,
    onnotice: () => {},
    fetch_types: false,
    connection: { search_path: "job_service, public" }, // its checks name the tables unqualified
  });
  const users = Array.from({ length: sizes.users }, () => crypto.randomUUID());
  const jobs: KnownJob[] = [];
  const byId = new Map<string, KnownJob>();
  const keys: { owner: string; as: string; key: string; data: Record<string, unknown> }[] = [];
  let chaos = true;
  let draining = false;
  let finished = false;
  const started = wallNow();

  const liveJob = (): KnownJob | undefined => {
    const live = jobs.filter((j) => !j.gone);
    return live.length ? random.pick(live) : undefined;
  };
  /** mostly a job whose tasks are being worked on right now (safe stops, stops on heartbeat) */
  const busyJob = (): KnownJob | undefined => {
    const now = wallNow();
    const busy = jobs.filter((j) => !j.gone && now - j.lastClaim < 500);
    return busy.length && random.chance(0.7) ? random.pick(busy) : liveJob();
  };
  const chaosOver = () => !chaos || rec.calls.length >= sizes.maxCalls;
  const noteJob = (c: Call) => {
    if ((c.status === 201 || c.status === 200) && c.action === "createJob") {
      const job = c.result as { id: string; user_id: string; resource_limits: KnownJob["limits"] };
      if (!byId.has(job.id)) {
        const known: KnownJob = {
          id: job.id,
          owner: job.user_id,
          limits: job.resource_limits,
          hasTasks: Array.isArray(c.data.tasks) && c.data.tasks.length > 0,
          gone: false,
          lastClaim: 0,
        };
        jobs.push(known);
        byId.set(job.id, known);
      }
    }
  };

  if (options.isolate !== false) {
    await sql`update jobs set status = 'paused' where status in ('queued', 'running')`;
  }

  // ----- actors -----
  function taskList(limits: KnownJob["limits"], n: number) {
    return Array.from({ length: n }, (_, i) => {
      const task: Record<string, unknown> = { payload: { run: runId, i, note: "stress" } };
      if (limits && random.chance(0.4)) {
        task.resources = {
          memory: random.int(1, Math.floor(limits.max_memory / 2)),
          cpu: random.int(1, 10) / 10,
        };
      }
      return task;
    });
  }

  // creations are spread over the chaos phase
  const createEveryMs = sizes.chaosMs * sizes.creators / sizes.maxJobs;
  async function creator(n: number) {
    while (!chaosOver()) {
      if (jobs.length < sizes.maxJobs && random.chance(0.85)) {
        const owner = random.pick(users);
        const asService = random.chance(0.3);
        const as = asService ? "service" : owner;
        if (keys.length && random.chance(0.08)) {
          // the same key and data again: the first job, not a second one
          const k = random.pick(keys);
          noteJob(await rec.call(`creator-${n}`, k.as, "job-operations", "createJob", k.data));
          continue;
        }
        const limits = random.chance(0.3) ? { max_memory: 64, max_cpu: 2 } : null;
        const max = random.chance(0.3) ? 1 : random.int(2, 6);
        const data: Record<string, unknown> = {
          product_id: runId,
          sending_group_id: `group-${random.int(1, 5)}`,
          priority: random.int(0, 100),
          max_parallel_tasks: max,
          retry_config: {
            max_attempts: random.int(1, 4),
            retry_interval: random.int(0, 150),
            retry_on_errors: ["TIMEOUT", "WORKER_LOST"],
            backoff: random.chance(0.5) ? "fixed" : "exponential",
            max_retry_interval: 300,
          },
          resource_limits: limits,
          tasks: taskList(limits, random.chance(0.1) ? 0 : random.int(1, sizes.maxTasksPerJob)),
          start: random.chance(0.85),
          metadata: { run: runId, by: `creator-${n}`, create_id: crypto.randomUUID() },
          ...(asService ? { user_id: owner } : {}),
        };
        if (random.chance(0.2)) {
          data.idempotency_key = `${runId}-${crypto.randomUUID()}`;
          keys.push({ owner, as, key: data.idempotency_key as string, data });
        }
        noteJob(await rec.call(`creator-${n}`, as, "job-operations", "createJob", data));
      } else {
        const job = busyJob();
        if (job) {
          await rec.call(`creator-${n}`, "service", "task-operations", "addTasks", {
            job_id: job.id,
            tasks: taskList(job.limits, random.int(1, 5)),
          });
        }
      }
      await sleep(random.int(Math.round(createEveryMs / 2), Math.round(createEveryMs * 1.5)));
    }
  }

  async function worker(n: number) {
    let incarnation = 0;
    let id = `${runId}-w${n}.${incarnation}`;
    const call = (action: string, data: Record<string, unknown>) =>
      rec.call(`worker-${n}`, "service", "task-operations", action, data);
    while (!finished) {
      const targeted = !draining && random.chance(0.3) ? liveJob() : undefined;
      const abandoning = !draining && random.chance(0.05);
      const claim = await call("claimTasks", {
        worker_id: id,
        limit: random.int(1, 4),
        lease_ms: abandoning ? 1000 : random.int(1500, 4000),
        ...(targeted ? { job_id: targeted.id } : {}),
      });
      const claimed = claim.status === 200 ? (claim.result as { tasks: Claimed[] }).tasks : [];
      if (claim.status === 404 && targeted) targeted.gone = true;
      for (const t of claimed) {
        const job = byId.get(t.job_id);
        if (job) job.lastClaim = wallNow();
      }
      if (claimed.length === 0) {
        await sleep(random.int(30, 80));
        continue;
      }
      if (abandoning) {
        // the worker dies holding its tasks: they come back when their leases expire
        id = `${runId}-w${n}.${++incarnation}`;
        continue;
      }
      await sleep(random.chance(0.2) ? random.int(20, 60) : random.int(0, 10));
      const batch: { task_id: number; result?: unknown }[] = [];
      await Promise.all(claimed.map(async (t) => {
        const roll = draining || !byId.has(t.job_id) ? 0 : random.next();
        const fail = (code: string) =>
          call("failTask", {
            worker_id: id,
            task_id: t.task_id,
            error: { code, message: `${code} in stress` },
          });
        if (roll < 0.5) {
          if (random.chance(0.5)) batch.push({ task_id: t.task_id, result: { ok: true } });
          else await call("completeTask", { worker_id: id, task_id: t.task_id });
        } else if (roll < 0.62) {
          const limits = byId.get(t.job_id)?.limits;
          const beat = await call("heartbeat", {
            worker_id: id,
            tasks: [{
              task_id: t.task_id,
              ...(limits && random.chance(0.5)
                ? {
                  usage: {
                    memory: random.int(0, Math.round(limits.max_memory * 1.3)),
                    cpu: random.int(0, 20) / 10,
                  },
                }
                : {}),
            }],
          });
          const answer = beat.status === 200
            ? (beat.result as { tasks: { action: string }[] }).tasks[0].action
            : "lost";
          await sleep(random.int(0, 10));
          if (answer === "continue") {
            await call("completeTask", { worker_id: id, task_id: t.task_id });
          } else if (answer === "stop") {
            if (random.chance(0.5)) await fail("TIMEOUT");
            else await call("completeTask", { worker_id: id, task_id: t.task_id });
          }
        } else if (roll < 0.74) {
          await fail("TIMEOUT");
        } else if (roll < 0.8) {
          await fail("INVALID_PAYLOAD");
        } else if (roll < 0.87) {
          // a replay: the same report twice
          await call("completeTask", { worker_id: id, task_id: t.task_id });
          await call("completeTask", { worker_id: id, task_id: t.task_id });
        } else if (roll < 0.92) {
          // another worker reports on a task it does not hold, then the holder does
          await call("completeTask", { worker_id: `${id}-intruder`, task_id: t.task_id });
          await call("failTask", {
            worker_id: `${id}-intruder`,
            task_id: t.task_id,
            error: { code: "TIMEOUT", message: "not mine" },
          });
          await call("completeTask", { worker_id: id, task_id: t.task_id });
        } else {
          batch.push({ task_id: t.task_id });
        }
      }));
      if (batch.length) await call("completeTasks", { worker_id: id, tasks: batch });
    }
  }

  // requests by weight: steering more often than stopping
  const REQUESTS = [
    ...Array(4).fill("queued"),
    ...Array(3).fill("running"),
    ...Array(4).fill("paused"),
    "cancelled",
    "cancelling",
    ...Array(2).fill("completed"),
    ...Array(4).fill("failed"),
  ] as string[];
  async function updater(n: number) {
    while (!chaosOver()) {
      const job = busyJob();
      if (!job) {
        await sleep(20);
        continue;
      }
      const who = random.next();
      const as = who < 0.7 ? job.owner : who < 0.9 ? "service" : random.pick(users);
      const data: Record<string, unknown> = { job_id: job.id };
      const kind = random.next();
      if (kind < 0.7) {
        data.status = random.pick(REQUESTS);
        if (data.status === "failed") {
          data.error_details = {
            code: random.chance(0.5) ? "TIMEOUT" : "INTERNAL",
            message: "failed by an updater",
          };
        }
      } else if (kind < 0.85) {
        data.detailed_status = {
          current_phase: `phase-${random.int(1, 9)}`,
          ...(!job.hasTasks ? { progress_percentage: random.int(0, 10000) / 100 } : {}),
        };
      } else {
        data.error_details = { code: "RATE_LIMITED", message: "noted by an updater" };
      }
      if (random.chance(0.1)) data.expected_status = random.pick(["queued", "running", "paused"]);
      const c = await rec.call(`updater-${n}`, as, "job-operations", "updateBatchJob", data);
      if (c.status === 404 && as !== "service" && as === job.owner) job.gone = true;
      await sleep(random.int(20, 60));
    }
  }

  async function pauser(n: number) {
    while (!chaosOver()) {
      const job = liveJob();
      if (job) {
        await rec.call(`pauser-${n}`, job.owner, "job-operations", "updateBatchJob", {
          job_id: job.id,
          status: "paused",
        });
        await sleep(random.int(50, 250));
        await rec.call(`pauser-${n}`, job.owner, "job-operations", "updateBatchJob", {
          job_id: job.id,
          status: "queued",
        });
      }
      await sleep(random.int(20, 80));
    }
  }

  async function canceller(n: number) {
    while (!chaosOver()) {
      await sleep(random.int(300, 700));
      const job = busyJob();
      if (!job) continue;
      await rec.call(`canceller-${n}`, job.owner, "job-operations", "updateBatchJob", {
        job_id: job.id,
        status: random.chance(0.5) ? "cancelled" : "cancelling",
      });
    }
  }

  async function deleter(n: number) {
    while (!chaosOver()) {
      await sleep(random.int(400, 900));
      const job = busyJob();
      if (!job) continue;
      const force = random.chance(0.3);
      const c = await rec.call(`deleter-${n}`, job.owner, "job-operations", "deleteJob", {
        job_id: job.id,
        force,
      });
      if (c.status === 200 || c.status === 404) job.gone = true;
      // deleting again while the deletion is pending answers 202 again
      if (c.status === 202 && random.chance(0.3)) {
        await rec.call(`deleter-${n}`, job.owner, "job-operations", "deleteJob", {
          job_id: job.id,
        });
      }
    }
  }

  async function reader(n: number) {
    while (!chaosOver()) {
      const job = liveJob();
      if (job && random.chance(0.6)) {
        await rec.call(`reader-${n}`, job.owner, "job-operations", "getJob", {
          job_id: job.id,
          ...(random.chance(0.2) ? { include: ["errors", "events"] } : {}),
        });
      } else {
        await rec.call(`reader-${n}`, random.pick(users), "job-operations", "listJobs", {
          product_id: runId,
          limit: random.int(5, 50),
        });
      }
      await sleep(random.int(10, 50));
    }
  }

  async function maintainer(n: number) {
    while (!chaosOver()) {
      await sleep(random.int(150, 400));
      const twice = random.chance(0.2);
      await Promise.all(
        Array.from(
          { length: twice ? 2 : 1 },
          () =>
            rec.call(
              `maintenance-${n}`,
              "service",
              "job-operations",
              "runMaintenance",
              {},
              {},
            ),
        ),
      );
    }
  }

  // ----- chaos phase -----
  log(`${runId}: seed ${seed}, sizes ${JSON.stringify(sizes)}`);
  const controller = new AbortController();
  const workers = Array.from({ length: sizes.workers }, (_, i) => worker(i));
  const chaosActors = [
    ...Array.from({ length: sizes.creators }, (_, i) => creator(i)),
    ...Array.from({ length: sizes.updaters }, (_, i) => updater(i)),
    ...Array.from({ length: sizes.pausers }, (_, i) => pauser(i)),
    ...Array.from({ length: sizes.cancellers }, (_, i) => canceller(i)),
    ...Array.from({ length: sizes.deleters }, (_, i) => deleter(i)),
    ...Array.from({ length: sizes.readers }, (_, i) => reader(i)),
    ...Array.from({ length: sizes.maintainers }, (_, i) => maintainer(i)),
  ];
  const injected = options.during?.(controller.signal) ?? Promise.resolve();
  const chaosTimer = setTimeout(() => (chaos = false), sizes.chaosMs);
  await Promise.all(chaosActors);
  clearTimeout(chaosTimer);
  chaos = false;
  controller.abort();
  await injected;
  const chaosEnded = wallNow();
  log(`${runId}: chaos phase over after ${rec.calls.length} calls, ${jobs.length} jobs`);

  // ----- drain phase: let every job finish -----
  draining = true;
  const drainDeadline = wallNow() + sizes.drainMs;
  let drained = false;
  let unfinished: string[] = [];
  while (wallNow() < drainDeadline) {
    const rows = await sql`
      select j.id, j.user_id, j.status, c.total, c.running
      from jobs j cross join lateral job_service.job_counts(j.id) c
      where j.product_id = ${runId}`;
    const open = rows.filter((r) => !(FINISHED.has(r.status) && r.running === 0));
    unfinished = open.map((r) => `${r.id} ${r.status} (${r.total} tasks, ${r.running} running)`);
    if (open.length === 0) {
      drained = true;
      break;
    }
    for (const r of open) {
      if (r.status === "pending" || r.status === "paused") {
        await rec.call("closer", r.user_id, "job-operations", "updateBatchJob", {
          job_id: r.id,
          status: "queued",
        });
      } else if (r.total === 0 && (r.status === "queued" || r.status === "running")) {
        await rec.call("closer", r.user_id, "job-operations", "updateBatchJob", {
          job_id: r.id,
          status: "cancelled",
        });
      }
    }
    await rec.call(
      "closer",
      "service",
      "job-operations",
      "runMaintenance",
      {},
      {},
    );
    await sleep(200);
  }
  finished = true;
  await Promise.all(workers);

  // quiet: every lease has expired and maintenance ran after, so nothing may be running
  const [{ last }] = await sql`
    select coalesce(max(extract(epoch from t.lease_expires_at) * 1000), 0)::float8 as last
    from tasks t join jobs j on j.id = t.job_id
    where j.product_id = ${runId} and t.status = 'running'`;
  if (last > 0) {
    await sleep(Math.max(0, last - Date.now() + 50));
    for (let i = 0; i < 50; i++) {
      const m = await rec.call(
        "closer",
        "service",
        "job-operations",
        "runMaintenance",
        {},
        {},
      );
      if ((m.result as { ran?: boolean })?.ran) break;
      await sleep(100);
    }
  }
  const drainEnded = wallNow();
  const final = await readFinalState(sql, runId);
  await sql.end({ timeout: 5 });

  const history: History = { calls: rec.calls, final };
  const check = checkHistory(history, { allowUnavailable: options.allowUnavailable });
  const answers: Record<string, Record<string, number>> = {};
  for (const c of rec.calls) {
    answers[c.action] ??= {};
    answers[c.action][c.status] = (answers[c.action][c.status] ?? 0) + 1;
  }
  const report: StressReport = {
    runId,
    sizes,
    seed,
    calls: rec.calls.length,
    answers,
    jobs: check.jobs,
    tasks: check.tasks,
    runs: check.runs,
    chaosMs: Math.round(chaosEnded - started),
    drainMs: Math.round(drainEnded - chaosEnded),
    totalMs: Math.round(wallNow() - started),
    drained,
    unfinished,
    check,
    history,
  };
  log(formatReport(report));
  return report;
}

/** The run's jobs as they are now, their tasks, errors and status events, and the SQL check. */
export async function readFinalState(sql: postgres.Sql, runId: string): Promise<FinalState> {
  const jobs = await sql`
    select job_service.job_json(j) as job, j.deletion_requested_at is not null as deletion_requested
    from jobs j where j.product_id = ${runId}`;
  const ids = `{${jobs.map((r) => r.job.id).join(",")}}`;
  const tasks = await sql`
    select id::float8 as id, job_id, status, attempt from tasks where job_id = any(${ids}::uuid[])`;
  const errors = await sql`
    select job_id, task_id::float8 as task_id, code, attempt
    from job_errors where job_id = any(${ids}::uuid[])`;
  const events = await sql`
    select job_id, type, from_status, to_status from job_events
    where job_id = any(${ids}::uuid[]) and type in ('created', 'status_changed') order by id`;
  const violations = jobs.length
    ? await sql`select job_id, invariant, detail from job_service_api.invariant_violations(${ids}::uuid[])`
    : [];
  return {
    quiescent: true,
    jobs: jobs.map((r) => ({ ...r.job, deletion_requested: r.deletion_requested })),
    tasks: tasks.map((t) => ({ ...t }) as FinalState["tasks"][number]),
    errors: errors.map((e) => ({ ...e }) as FinalState["errors"][number]),
    events: events.map((e) => ({ ...e }) as FinalState["events"][number]),
    dbViolations: violations.map((v) => ({ ...v }) as FinalState["dbViolations"][number]),
  };
}

/** A few lines for the log and the note: size, answers, and each invariant's checks. */
export function formatReport(r: StressReport): string {
  const checks = Object.values(r.check.checks).reduce((a, b) => a + b, 0);
  const answers = Object.entries(r.answers).map(([action, byStatus]) =>
    `${action} ${Object.entries(byStatus).map(([status, n]) => `${status}×${n}`).join(" ")}`
  ).join("; ");
  return [
    `${r.runId} (seed ${r.seed}): ${r.calls} calls, ${r.jobs} jobs, ${r.tasks} tasks claimed in ${r.runs} runs; chaos ${r.chaosMs} ms, drain ${r.drainMs} ms, total ${r.totalMs} ms; ${
      r.drained ? "drained" : `NOT drained: ${r.unfinished.slice(0, 5).join(", ")}`
    }`,
    `answers: ${answers}`,
    `${checks} checks, ${r.check.violations.length} violations:`,
    summarize(r.check),
    ...r.check.violations.slice(0, 20).map((v) =>
      `  ${v.invariant}: ${v.detail} (calls ${v.calls?.join(",") ?? "-"})`
    ),
  ].join("\n");
}
