// Database access for both functions: one connection pool per isolate, SQL errors translated to
// API errors, and serialization failures and deadlocks retried here so they never reach a caller.
import postgres from "postgres";
import { ApiError, type ErrorCode, serviceUnavailable, validationError } from "./errors.ts";
import { databaseConfig, env, intEnv } from "./env.ts";

export type Sql = postgres.Sql;

/**
 * Connections handed out last-in, first-out: each is a postgres.js client of its own with one
 * connection. postgres.js's own pool takes the connection idle longest (first-in, first-out), so a
 * quiet function cycles through every connection a burst opened, and each request meets a
 * backend whose caches went cold meanwhile: createJob one at a time was 14 % slower on 8 open
 * connections than on one (docs/performance.md, finding 23). Last-in, first-out keeps a quiet
 * function on its warmest connection and lets the others close after `idle_timeout`, as
 * PgBouncer's default does. A request that finds every connection busy waits for the first one
 * freed, in arrival order.
 */
interface Pool {
  all: Sql[];
  idle: Sql[];
  waiting: ((sql: Sql) => void)[];
  max: number;
  connect(): Sql;
}

let pool: Pool | undefined;

function getPool(): Pool {
  if (!pool) {
    const { url, prepare } = databaseConfig();
    const options = {
      max: 1,
      prepare,
      idle_timeout: 30,
      connect_timeout: intEnv("DB_CONNECT_TIMEOUT_S", 5),
      fetch_types: false,
      onnotice: () => {},
      connection: { application_name: env("DB_APPLICATION_NAME") ?? "batch-job-service" },
    };
    pool = {
      all: [],
      idle: [],
      waiting: [],
      max: Math.max(1, intEnv("DB_POOL_MAX", 10)),
      connect: () => postgres(url, options),
    };
  }
  return pool;
}

function acquire(p: Pool): Sql | Promise<Sql> {
  const warmest = p.idle.pop();
  if (warmest) return warmest;
  if (p.all.length < p.max) {
    const sql = p.connect();
    p.all.push(sql);
    return sql;
  }
  return new Promise((resolve) => p.waiting.push(resolve));
}

/**
 * Gives a connection back. After a lost connection it is closed, with every idle one: postgres.js
 * keeps a killed connection's termination notice and fails the next query on that client with it
 * (last-in, first-out would hand it to the very next request); and connections are mostly lost
 * together (a restart or failover of the database), so that every idle one kept would cost a later
 * request a 503.
 */
function release(p: Pool, sql: Sql, failure: unknown): void {
  if (failure !== undefined && isLostConnection(failure)) {
    for (const lost of [sql, ...p.idle.splice(0)]) {
      p.all.splice(p.all.indexOf(lost), 1);
      lost.end({ timeout: 0 }).catch(() => {});
    }
    if (p.waiting.length === 0 || p !== pool) return;
    sql = p.connect();
    p.all.push(sql);
  }
  const next = p.waiting.shift();
  if (next) next(sql);
  else if (p === pool) p.idle.push(sql);
}

function isLostConnection(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined
    ? code.startsWith("08") || code.startsWith("57P")
    : isConnectionError(error);
}

export async function closeDb(): Promise<void> {
  const current = pool;
  pool = undefined;
  await Promise.all(current?.all.map((sql) => sql.end({ timeout: 5 })) ?? []);
}

/** A jsonb parameter (postgres.js serialises it; pass values, never pre-serialised strings). */
export function jsonb(sql: Sql | postgres.TransactionSql, value: unknown): postgres.Parameter {
  return sql.json(value as postgres.JSONValue);
}

const RETRYABLE = new Set(["40001", "40P01"]);
const MAX_ATTEMPTS = 6;

/**
 * Runs one database operation (a single transaction) and returns its result. Serialization
 * failures and deadlocks are retried with a short jittered backoff: the operation was rolled back,
 * so running it again is safe.
 */
export async function withDb<T>(operation: (sql: Sql) => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    const p = getPool();
    const sql = await acquire(p);
    let failure: unknown;
    try {
      return await operation(sql);
    } catch (error) {
      failure = error;
    } finally {
      release(p, sql, failure); // before any backoff: a retry waits without holding a connection
    }
    const code = sqlState(failure);
    if (code && RETRYABLE.has(code) && attempt < MAX_ATTEMPTS) {
      await delay((2 ** attempt) * (2 + Math.random() * 3));
      continue;
    }
    throw translateDbError(failure);
  }
}

/**
 * Runs a statement that returns exactly one row (every `select batch_api.…(…) as x`) and gives that
 * row. A connection that dies in the middle can leave postgres.js with an empty result: that is a
 * lost connection (503), never a reason to crash on a missing row.
 */
export async function queryOne<T extends Record<string, unknown>>(
  operation: (sql: Sql) => Promise<readonly T[]>,
  column?: keyof T & string,
): Promise<T> {
  const rows = await withDb(operation);
  const row = rows[0];
  if (row === undefined || row === null || (column !== undefined && !(column in row))) {
    throw serviceUnavailable(new Error("the database answered no row to a one-row statement"));
  }
  return row;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function sqlState(error: unknown): string | undefined {
  return error instanceof postgres.PostgresError ? error.code : undefined;
}

const DEFAULT_MESSAGES: Partial<Record<ErrorCode, string>> = {
  JOB_NOT_FOUND: "The job does not exist.",
  TASK_NOT_FOUND: "The task does not exist.",
  IDEMPOTENCY_CONFLICT:
    "This idempotency key was already used with a different request in the last 24 hours.",
};

/** Maps any error thrown while talking to PostgreSQL to what the API answers. */
export function translateDbError(error: unknown): unknown {
  if (error instanceof ApiError) return error;
  if (error instanceof postgres.PostgresError) {
    const code = error.code;
    if (/^JS[1-5]\d\d$/.test(code)) {
      const apiCode = error.message as ErrorCode;
      return new ApiError(
        Number(code.slice(2)),
        apiCode,
        error.hint || DEFAULT_MESSAGES[apiCode] || apiCode,
        parseDetail(error.detail),
      );
    }
    if (isUnavailableState(code)) return serviceUnavailable(error);
    // The API validates first; a value the database still refuses is bad input, never a 500.
    if (code.startsWith("22") || code === "23514" || code === "23502") {
      return validationError([{
        path: "data",
        message: error.constraint_name
          ? `rejected by the database rule ${error.constraint_name}`
          : "a value is out of range or malformed",
      }]);
    }
    return error;
  }
  if (isConnectionError(error)) return serviceUnavailable(error);
  return error;
}

function parseDetail(detail: string | undefined): unknown {
  if (!detail) return undefined;
  try {
    return JSON.parse(detail);
  } catch {
    return undefined;
  }
}

function isUnavailableState(code: string): boolean {
  return code.startsWith("08") || // connection exception
    code.startsWith("53") || // insufficient resources (too many connections, out of memory, disk)
    code.startsWith("57P") || // admin shutdown, crash shutdown, cannot connect now
    code === "57014" || // query canceled (statement timeout)
    code === "55P03" || // lock not available
    code === "40001" || code === "40P01"; // still failing after the retries
}

function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && /^(E[A-Z]+|CONNECT_TIMEOUT|CONNECTION_[A-Z_]+)$/.test(code)) {
    return true;
  }
  return error instanceof Deno.errors.ConnectionRefused ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.TimedOut;
}
