// The history of a stress run: every HTTP call with its request, its answer and the wall-clock
// interval in which it happened (the call took effect somewhere inside [start, end]). The checker
// (checker.ts) judges a history; the recorder below produces one.
import { signToken } from "../../../scripts/lib/tokens.ts";

export type FunctionName = "job-operations" | "task-operations";

/** One call and its answer. Times are wall-clock milliseconds (fractional), like Date.now(). */
export interface Call {
  seq: number;
  actor: string;
  fn: FunctionName;
  action: string;
  /** `data` as sent */
  data: Record<string, unknown>;
  /** the caller: a user id, "service", or another label for hostile callers */
  as: string;
  start: number;
  end: number;
  /** HTTP status; 0 when no answer came (connection failure) */
  status: number;
  /** `data` of a success */
  result?: unknown;
  /** `error` of a failure */
  error?: { code: string; message: string; details?: unknown; request_id?: string };
  retryAfter?: string | null;
  requestId?: string | null;
}

/** The database as it was once the run was quiet, for the checks that need the end state. */
export interface FinalState {
  /** every task's lease has expired and maintenance ran since: nothing may still be running */
  quiescent: boolean;
  /** the jobs of the run that still exist, in the API's job shape */
  jobs: FinalJob[];
  tasks: FinalTask[];
  errors: { job_id: string; task_id: number | null; code: string; attempt: number }[];
  /** status events in id order */
  events: { job_id: string; type: string; from_status: string | null; to_status: string | null }[];
  /** rows of job_service_api.invariant_violations for the run's jobs */
  dbViolations: { job_id: string; invariant: string; detail: string }[];
}

export interface FinalJob {
  id: string;
  status: string;
  max_parallel_tasks: number;
  tasks: JobCounters;
  detailed_status: { active_tasks: number; error_count: number; progress_percentage: number };
  deletion_requested: boolean;
  /** the runner puts a `create_id` here, to match a job to a create whose answer was lost */
  metadata?: Record<string, unknown>;
}

export interface JobCounters {
  total: number;
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  cancelled: number;
}

export interface FinalTask {
  id: number;
  job_id: string;
  status: string;
  attempt: number;
}

export interface History {
  calls: Call[];
  final?: FinalState;
}

/** Wall-clock now in fractional milliseconds. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

export interface RecorderOptions {
  /** base URL of the served functions (without /functions/v1) */
  url: string;
  /** stop recording (and calling) after this many calls */
  maxCalls?: number;
  /** per-call time-out in ms (a call that times out is recorded with status 0) */
  timeoutMs?: number;
}

/** Makes calls over HTTP and records each one. */
export class Recorder {
  readonly calls: Call[] = [];
  private readonly tokens = new Map<string, Promise<string>>();
  private seq = 0;

  constructor(private readonly options: RecorderOptions) {}

  get full(): boolean {
    return this.options.maxCalls !== undefined && this.seq >= this.options.maxCalls;
  }

  /** "service" or a user id (uuid). */
  bearerFor(as: string): Promise<string> {
    let token = this.tokens.get(as);
    if (!token) {
      token = as === "service"
        ? signToken({ role: "service_role", expiresIn: 24 * 3600 })
        : signToken({ role: "authenticated", sub: as, expiresIn: 24 * 3600 });
      this.tokens.set(as, token);
    }
    return token;
  }

  async call(
    actor: string,
    as: string,
    fn: FunctionName,
    action: string,
    data: Record<string, unknown>,
    headers: Record<string, string> = {},
    /** another server of the same service (default: the recorder's) */
    url = this.options.url,
  ): Promise<Call> {
    const bearer = await this.bearerFor(as);
    const call: Call = {
      seq: this.seq++,
      actor,
      fn,
      action,
      data,
      as,
      start: wallNow(),
      end: 0,
      status: 0,
    };
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.options.timeoutMs ?? 30_000);
    try {
      const res = await fetch(`${url}/functions/v1/${fn}`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${bearer}`,
          "Content-Type": "application/json",
          ...headers,
        },
        body: JSON.stringify({ action, data }),
        signal: controller.signal,
      });
      const text = await res.text();
      call.end = wallNow();
      call.status = res.status;
      call.retryAfter = res.headers.get("retry-after");
      call.requestId = res.headers.get("x-request-id");
      let body: { data?: unknown; error?: Call["error"] } = {};
      try {
        body = text ? JSON.parse(text) : {};
      } catch {
        body = { error: { code: "UNPARSEABLE_BODY", message: text.slice(0, 200) } };
      }
      if (res.status < 300) call.result = body.data;
      else call.error = body.error;
    } catch (error) {
      call.end = wallNow();
      call.status = 0;
      call.error = { code: "NO_ANSWER", message: String(error).slice(0, 200) };
    } finally {
      clearTimeout(timer);
    }
    this.calls.push(call);
    return call;
  }
}
