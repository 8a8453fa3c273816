// API errors and how every failure becomes one: the status, the documented code, a message that
// never carries SQL or stack traces, and optional details.
import type { SqlErrorCode } from "./sql_api.ts";

/** Every code an answer may carry: the request path's own, and every code the SQL raises. */
export type ErrorCode =
  | "METHOD_NOT_ALLOWED"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "PAYLOAD_TOO_LARGE"
  | "INVALID_JSON"
  | "UNKNOWN_ACTION"
  | "VALIDATION_ERROR"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "SERVICE_UNAVAILABLE"
  | "AUTH_NOT_CONFIGURED"
  | "INTERNAL_ERROR"
  | "JOB_NOT_FOUND"
  | "TASK_NOT_FOUND"
  | "INVALID_TRANSITION"
  | "INVALID_PROGRESS"
  | "LEASE_LOST"
  | "PRECONDITION_FAILED"
  | "IDEMPOTENCY_CONFLICT"
  | "JOB_CLOSED"
  | "QUOTA_EXCEEDED";

/**
 * Codes the SQL raises that no answer carries: STALE_DECISION makes updateBatchJob decide again;
 * AUDIT_LOG_APPEND_ONLY refuses a change of the audit log that no entry point makes.
 */
export type InternalSqlCode = "STALE_DECISION" | "AUDIT_LOG_APPEND_ONLY";

type Assert<T extends true> = T;
/** Fails `deno check` when the SQL raises a code that is neither an answer's code nor internal. */
export type SqlCodesCovered = Assert<
  [Exclude<SqlErrorCode, ErrorCode | InternalSqlCode>] extends [never] ? true : false
>;

export interface FieldIssue {
  path: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | InternalSqlCode,
    message: string,
    readonly details?: unknown,
    readonly headers: Record<string, string> = {},
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "ApiError";
  }
}

export const RETRY_AFTER_SECONDS = 1;

export function validationError(details: FieldIssue[]): ApiError {
  return new ApiError(400, "VALIDATION_ERROR", "The request data is invalid.", details);
}

export function serviceUnavailable(cause?: unknown): ApiError {
  return new ApiError(
    503,
    "SERVICE_UNAVAILABLE",
    "The database is unavailable or overloaded; retry shortly.",
    undefined,
    { "Retry-After": String(RETRY_AFTER_SECONDS) },
    cause,
  );
}

export function internalError(): ApiError {
  return new ApiError(500, "INTERNAL_ERROR", "An unexpected error occurred.");
}
