// Database access for both functions: one connection pool per isolate, SQL errors translated to
// API errors, and serialization failures and deadlocks retried here so they never reach a caller.
import postgres from "postgres";
import { ApiError, type ErrorCode, serviceUnavailable, validationError } from "./errors.ts";
import type { SqlErrorCode } from "./sql_api.ts";
import { databaseConfig, env, intEnv, poolMax } from "./env.ts";
import { ConnectionPool, isConnectionError } from "./connection_pool.ts";

export type Sql = postgres.Sql;

let pool: ConnectionPool | undefined;

function getPool(): ConnectionPool {
  if (!pool) {
    const { url, prepare } = databaseConfig();
    const options = {
      max: 1, // one connection per client: the pool decides which one a request gets
      prepare,
      idle_timeout: 30,
      connect_timeout: intEnv("DB_CONNECT_TIMEOUT_S", 5),
      fetch_types: false,
      onnotice: () => {},
      connection: { application_name: env("DB_APPLICATION_NAME") ?? "batch-job-service" },
    };
    pool = new ConnectionPool(poolMax(), () => postgres(url, options));
  }
  return pool;
}

export async function closeDb(): Promise<void> {
  const current = pool;
  pool = undefined;
  await current?.end();
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
    try {
      // the connection goes back before any backoff: a retry waits without holding one
      return await getPool().use(operation);
    } catch (error) {
      const code = sqlState(error);
      if (code && RETRYABLE.has(code) && attempt < MAX_ATTEMPTS) {
        await delay((2 ** attempt) * (2 + Math.random() * 3));
        continue;
      }
      throw translateDbError(error);
    }
  }
}

/**
 * Runs a statement that returns exactly one row (every `select job_service_api.…(…) as x`) and gives that
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

const DEFAULT_MESSAGES: Partial<Record<ErrorCode | SqlErrorCode, string>> = {
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
      // the message of a JSnnn error is one of the codes sql_api.ts lists (read from the catalogue)
      const apiCode = error.message as SqlErrorCode;
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
