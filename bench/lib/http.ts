// H1–H3 and M1: the functions over HTTP through the local function server (a child process, as a
// deployed function is). Both sides of H1 send their load from bench/h1_side.ts.
import { type ServerProcess, spawnServer } from "../../scripts/lib/server_process.ts";
export { type ServerProcess, spawnServer };
import { signToken } from "../../scripts/lib/tokens.ts";
import { localAuthEnv } from "../../scripts/lib/local_auth.ts";
import { BENCH_DB_URL, connect, median, percentile } from "./common.ts";
import { OWNER } from "./ours.ts";
import type { ClaimedTask, Outcome, Transport } from "./workers.ts";

type Fn = "job-operations" | "task-operations";

/** Sends one action and returns status and parsed body; HTTP or in-process, the same Request. */
export type Caller = (fn: Fn, token: string, action: string, data: unknown) => Promise<{
  status: number;
  body: { data?: unknown; error?: { code: string; message: string } };
}>;

/**
 * What the server and the in-process handlers run with: the bench database, the shipped pool size
 * (DB_POOL_MAX default 10, as a deployed function has) and LOG_LEVEL error, because in-process
 * handlers would otherwise print a line per request into the table; the server gets the same so
 * that H1 compares like with like; and the local secret where the local commands use it.
 */
export function functionEnv(): Record<string, string> {
  return { SUPABASE_DB_URL: BENCH_DB_URL, LOG_LEVEL: "error", ...localAuthEnv() };
}

export function request(
  base: string,
  fn: Fn,
  token: string,
  action: string,
  data: unknown,
): Request {
  return new Request(`${base}/functions/v1/${fn}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ action, data }),
  });
}

export function httpCaller(url: string): Caller {
  return async (fn, token, action, data) => {
    const res = await fetch(request(url, fn, token, action, data));
    return { status: res.status, body: await res.json() };
  };
}

export const userToken = () => signToken({ role: "authenticated", sub: OWNER, expiresIn: 7_200 });
export const serviceToken = () => signToken({ role: "service_role", expiresIn: 7_200 });

/** A small job as a web app creates it: ten recipients. */
export function smallJob(i: number) {
  return {
    product_id: "bench",
    sending_group_id: `group-${i % 10}`,
    priority: 50,
    max_parallel_tasks: 10,
    tasks: Array.from(
      { length: 10 },
      (_, k) => ({ payload: { to: `user-${i}-${k}@example.com` } }),
    ),
  };
}

export interface Latency {
  requests: number;
  concurrency: number;
  p50Ms: number;
  p99Ms: number;
  requestsPerSecond: number;
}

/** The raw figures of one slice of H1 load. */
export interface LoadSample {
  latencies: number[];
  seconds: number;
}

/** H1: `requests` createJob calls, `concurrency` at a time; every answer must be 201. */
export async function createJobLoad(
  call: Caller,
  requests: number,
  concurrency: number,
): Promise<LoadSample> {
  const token = await userToken();
  const latencies: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < requests) {
      const i = next++;
      const t = performance.now();
      const res = await call("job-operations", token, "createJob", smallJob(i));
      latencies.push(performance.now() - t);
      if (res.status !== 201) {
        throw new Error(`createJob answered ${res.status}: ${JSON.stringify(res.body)}`);
      }
    }
  }));
  return { latencies, seconds: (performance.now() - start) / 1000 };
}

/** Slices of one side put together: percentiles over all requests, rate over the summed time. */
export function summarize(samples: LoadSample[], concurrency: number): Latency {
  const latencies = samples.flatMap((s) => s.latencies);
  const seconds = samples.reduce((sum, s) => sum + s.seconds, 0);
  return {
    requests: latencies.length,
    concurrency,
    p50Ms: median(latencies),
    p99Ms: percentile(latencies, 99),
    requestsPerSecond: latencies.length / seconds,
  };
}

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`; 100 on Linux). */
let clockTicks: number | undefined;
async function ticksPerSecond(): Promise<number> {
  if (clockTicks === undefined) {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).output()
      .catch(() => null);
    const value = out?.success ? Number(new TextDecoder().decode(out.stdout).trim()) : NaN;
    clockTicks = Number.isInteger(value) && value > 0 ? value : 100;
  }
  return clockTicks;
}

/**
 * CPU time a process has used so far (user + system, every thread: the isolate, the garbage
 * collector, the sockets), in ms, from /proc/<pid>/stat (utime and stime, fields 14 and 15).
 * Its resolution is one clock tick (10 ms).
 */
export async function processCpuMs(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // the command name (field 2) is in parentheses and may hold spaces: count from after it
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  if (!Number.isFinite(ticks)) throw new Error(`no CPU times for process ${pid}`);
  return ticks * 1000 / await ticksPerSecond();
}

/**
 * H2: one createJob with `tasks` tasks over HTTP: the wall time from sending to the parsed answer,
 * and the CPU time the function's process spent meanwhile (the Edge Runtime gives a request about
 * 2 s of CPU; platform.md wants < 1 s). The server is otherwise idle then.
 */
export async function bulkCreate(
  server: ServerProcess,
  tasks: number,
): Promise<{ ms: number; cpuMs: number }> {
  const token = await userToken();
  const data = {
    ...smallJob(0),
    tasks: Array.from(
      { length: tasks },
      (_, n) => ({ payload: { to: `user-${n}@example.com`, n } }),
    ),
  };
  const body = JSON.stringify({ action: "createJob", data }); // serialised before the clock starts
  const cpuBefore = await processCpuMs(server.pid);
  const start = performance.now();
  const res = await fetch(`${server.url}/functions/v1/job-operations`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body,
  });
  const answer = await res.json();
  const ms = performance.now() - start;
  const cpuMs = await processCpuMs(server.pid) - cpuBefore;
  if (res.status !== 201 || answer.data?.tasks?.total !== tasks) {
    throw new Error(
      `bulk createJob answered ${res.status}: ${JSON.stringify(answer).slice(0, 300)}`,
    );
  }
  return { ms, cpuMs };
}

/** H3: workers calling task-operations claimTasks / completeTasks over HTTP. */
export async function httpTransport(call: Caller): Promise<Transport & { close(): Promise<void> }> {
  const token = await serviceToken();
  const sql = connect(1);
  const ok = <T>(res: Awaited<ReturnType<Caller>>, action: string): T => {
    if (res.status !== 200) {
      throw new Error(`${action} answered ${res.status}: ${JSON.stringify(res.body)}`);
    }
    return res.body.data as T;
  };
  return {
    async claim(worker, limit) {
      const res = await call("task-operations", token, "claimTasks", {
        worker_id: worker,
        limit,
        lease_ms: 300_000,
      });
      return ok<{ tasks: ClaimedTask[] }>(res, "claimTasks").tasks;
    },
    async complete(worker, taskIds) {
      const res = await call("task-operations", token, "completeTasks", {
        worker_id: worker,
        tasks: taskIds.map((id) => ({ task_id: id })),
      });
      return ok<{ tasks: Outcome[] }>(res, "completeTasks").tasks;
    },
    async completeAndClaim(worker, taskIds, limit) {
      const res = await call("task-operations", token, "completeTasks", {
        worker_id: worker,
        tasks: taskIds.map((id) => ({ task_id: id })),
        claim: { limit, lease_ms: 300_000 },
      });
      const answer = ok<{ tasks: Outcome[]; claimed: ClaimedTask[] }>(res, "completeTasks");
      return { outcomes: answer.tasks, claimed: answer.claimed };
    },
    async countSucceeded(jobIds) {
      const [{ n }] = await sql`select count(*)::integer as n from job_service.tasks
        where job_id = any (string_to_array(${jobIds.join(",")}, ',')::uuid[])
          and status = 'succeeded'`;
      return n;
    },
    retries: () => 0, // the function retries serialization failures itself
    close: () => sql.end(),
  };
}

/** M1: peak resident memory of a process so far (VmHWM), in MiB. */
export async function peakRssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]);
  if (!Number.isFinite(kb)) throw new Error(`no VmHWM for process ${pid}`);
  return kb / 1024;
}

/** Marks a load side's answers on its stdout. */
export const RESULT = "RESULT ";

/**
 * One side of H1: a child process (bench/h1_side.ts) that sends createJob load in-process, or over
 * HTTP to `httpUrl`. It stays up for the whole H1 of a round, so that the slices of the two sides
 * can alternate.
 */
export class LoadSide {
  #child: Deno.ChildProcess;
  #lines: ReadableStreamDefaultReader<string>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;

  constructor(httpUrl?: string) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../h1_side.ts", import.meta.url).pathname,
        ...(httpUrl ? [`--http=${httpUrl}`] : []),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = this.#child.stdout
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(lineSplitter())
      .getReader();
  }

  async run(requests: number, concurrency: number): Promise<LoadSample> {
    await this.#writer.write(new TextEncoder().encode(`${requests} ${concurrency}\n`));
    let line: string;
    do {
      const { value, done } = await this.#lines.read();
      if (done) throw new Error("an H1 load side exited");
      line = value;
    } while (!line.startsWith(RESULT)); // the handler's own log lines share stdout
    const answer = JSON.parse(line.slice(RESULT.length));
    if (answer.error) throw new Error(`H1 load side: ${answer.error}`);
    return answer;
  }

  async close(): Promise<void> {
    await this.#writer.close();
    await this.#child.status;
  }
}

function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const line of lines) if (line.trim()) controller.enqueue(line);
    },
  });
}
