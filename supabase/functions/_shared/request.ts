// Per-request plumbing shared by both functions: request ids, CORS headers, JSON responses and
// the one structured log line per request.
import { ApiError } from "./errors.ts";
import { env } from "./env.ts";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface RequestIds {
  /** The server's id of this request: the x-request-id answered, logged and audited. */
  id: string;
  /** The x-request-id the caller sent, when well formed; kept beside the server's, never instead. */
  client: string | null;
}

/**
 * A fresh id for every request, and the caller's x-request-id beside it when it is well formed
 * (1..128 of `[A-Za-z0-9._:-]`): a caller cannot choose the id the audit log attributes its writes
 * to (docs/decisions.md, "Audit and events").
 */
export function requestIdsOf(req: Request): RequestIds {
  const given = req.headers.get("x-request-id");
  return {
    id: crypto.randomUUID(),
    client: given !== null && REQUEST_ID.test(given) ? given : null,
  };
}

export const CORS_HEADERS: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers":
    "authorization, x-client-info, apikey, content-type, x-request-id, idempotency-key",
  "Access-Control-Allow-Methods": "POST, OPTIONS",
  "Access-Control-Expose-Headers": "x-request-id, retry-after",
  "Access-Control-Max-Age": "86400",
};

export function jsonResponse(
  status: number,
  body: unknown,
  requestId: string,
  extraHeaders: Record<string, string> = {},
): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: {
      ...CORS_HEADERS,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      "x-request-id": requestId,
      ...extraHeaders,
    },
  });
}

export function errorResponse(error: ApiError, requestId: string): Response {
  const body: Record<string, unknown> = {
    code: error.code,
    message: error.message,
    request_id: requestId,
  };
  if (error.details !== undefined) body.details = error.details;
  return jsonResponse(error.status, { error: body }, requestId, error.headers);
}

export interface RequestLog {
  function: string;
  request_id: string;
  client_request_id?: string | null;
  action?: string;
  role?: string;
  user_id?: string | null;
  status: number;
  duration_ms: number;
  error?: string;
}

const quiet = () => env("LOG_LEVEL") === "error" || env("LOG_LEVEL") === "silent";

/** One JSON line per request; errors (5xx) carry the full detail that the response never shows. */
export function logRequest(entry: RequestLog): void {
  if (env("LOG_LEVEL") === "silent") return;
  const level = entry.status >= 500 ? "error" : entry.status >= 400 ? "warn" : "info";
  if (level !== "error" && quiet()) return;
  console.log(JSON.stringify({ level, time: new Date().toISOString(), msg: "request", ...entry }));
}
