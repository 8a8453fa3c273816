// The request pipeline both functions share. It applies the spec's checks in the spec's order —
// method → content type → token → role for the function → size (and the JSON guard) → JSON →
// action known → size for the action → role for the action → validation — then hands the
// validated data to the action's handler. The token is checked from the headers before a byte of
// the body is read. Everything a handler throws becomes a documented error response.
import { z } from "zod";
import { authenticate, type Caller, type Role } from "./auth.ts";
import { ApiError, internalError, validationError } from "./errors.ts";
import { translateDbError } from "./db.ts";
import {
  CORS_HEADERS,
  errorResponse,
  jsonResponse,
  logRequest,
  type RequestIds,
  requestIdsOf,
} from "./request.ts";
import { MAX_ACTION_BYTES, tooLarge, withJsonBody } from "./request_body.ts";
import { isRecord, issuesToDetails } from "./validation.ts";

export interface Context {
  caller: Caller;
  /** The server's id of this request (answered as x-request-id, logged, audited). */
  requestId: string;
  /** The caller's own x-request-id when well formed, audited beside the server's. */
  clientRequestId: string | null;
  request: Request;
  /** `data` exactly as the caller sent it (before defaults and header merging). */
  rawData: unknown;
}

export interface ActionResult {
  status: number;
  body: unknown;
}

// deno-lint-ignore no-explicit-any
export interface Action<S extends z.ZodType = any> {
  /** Schema of `data`; unknown fields must be rejected (strict objects). */
  data: S;
  roles: readonly Role[];
  /** Largest body accepted for this action (default 1 MiB). */
  maxBytes?: number;
  /** Field-level permission checks that answer 403 before validation (spec order). */
  authorize?: (rawData: unknown, caller: Caller) => void;
  /** Folds request headers into `data` before validation (e.g. Idempotency-Key). */
  withHeaders?: (rawData: unknown, request: Request) => unknown;
  handle: (data: z.output<S>, ctx: Context) => Promise<ActionResult>;
  /** The action's contract as published (docs/openapi.json, docs/api.md): what it answers. */
  doc: {
    summary: string;
    /** each status it answers with success, and the zod schema of `data` (exported by a schema file) */
    responses: readonly { status: number; schema: z.ZodType; description: string }[];
  };
}

export interface FunctionSpec {
  name: string;
  roles: readonly Role[];
  actions: Record<string, Action>;
}

/** The discriminated union on `action` that a whole request body is validated with. */
export function requestSchema(actions: Record<string, Action>) {
  const options = Object.entries(actions).map(([name, action]) =>
    z.strictObject({ action: z.literal(name), data: action.data })
  );
  // deno-lint-ignore no-explicit-any
  return z.discriminatedUnion("action", options as any);
}

function isJsonContentType(value: string | null): boolean {
  if (value === null) return false;
  const media = value.split(";")[0].trim().toLowerCase();
  return media === "application/json";
}

export function createHandler(spec: FunctionSpec): (req: Request) => Promise<Response> {
  const schema = requestSchema(spec.actions);
  const actionNames = Object.keys(spec.actions);

  return async (req: Request): Promise<Response> => {
    const started = performance.now();
    const ids = requestIdsOf(req);
    const requestId = ids.id;
    const log: {
      action?: string;
      caller?: Caller;
    } = {};
    let response: Response;
    let failure: unknown;
    try {
      response = await dispatch(req, ids, log);
    } catch (error) {
      failure = error;
      const apiError = error instanceof ApiError ? error : translateDbError(error);
      response = errorResponse(
        apiError instanceof ApiError ? apiError : internalError(),
        requestId,
      );
    }
    logRequest({
      function: spec.name,
      request_id: requestId,
      ...(ids.client === null ? {} : { client_request_id: ids.client }),
      action: log.action,
      role: log.caller?.role,
      user_id: log.caller?.userId,
      status: response.status,
      duration_ms: Math.round((performance.now() - started) * 10) / 10,
      ...(response.status >= 500 && failure ? { error: describeFailure(failure) } : {}),
    });
    return response;
  };

  async function dispatch(
    req: Request,
    ids: RequestIds,
    log: { action?: string; caller?: Caller },
  ): Promise<Response> {
    if (req.method === "OPTIONS") {
      return new Response(null, {
        status: 204,
        headers: { ...CORS_HEADERS, "x-request-id": ids.id },
      });
    }
    if (req.method !== "POST") {
      throw new ApiError(405, "METHOD_NOT_ALLOWED", "Only POST (and OPTIONS) is allowed.");
    }
    if (!isJsonContentType(req.headers.get("content-type"))) {
      throw new ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "The body must be application/json.");
    }
    const caller = await authenticate(req);
    log.caller = caller;
    if (!spec.roles.includes(caller.role)) {
      throw new ApiError(403, "FORBIDDEN", `The role ${caller.role} may not call ${spec.name}.`);
    }
    return await withJsonBody(
      req,
      (body, bytes) => handle(req, ids, log, caller, body, bytes),
    );
  }

  async function handle(
    req: Request,
    ids: RequestIds,
    log: { action?: string },
    caller: Caller,
    body: unknown,
    bytes: number,
  ): Promise<Response> {
    const actionName = isRecord(body) && typeof body.action === "string" ? body.action : undefined;
    if (actionName === undefined || !Object.hasOwn(spec.actions, actionName)) {
      throw new ApiError(
        400,
        "UNKNOWN_ACTION",
        `Unknown or missing action. Valid actions: ${actionNames.join(", ")}.`,
        { valid_actions: actionNames },
      );
    }
    log.action = actionName;
    const action = spec.actions[actionName];

    const limit = action.maxBytes ?? MAX_ACTION_BYTES;
    if (bytes > limit) throw tooLarge(limit);

    if (!action.roles.includes(caller.role)) {
      throw new ApiError(403, "FORBIDDEN", `The role ${caller.role} may not call ${actionName}.`);
    }
    const record = body as Record<string, unknown>;
    action.authorize?.(record.data, caller);

    const candidate = action.withHeaders
      ? { ...record, data: action.withHeaders(record.data, req) }
      : record;
    const parsed = schema.safeParse(candidate);
    if (!parsed.success) throw validationError(issuesToDetails(parsed.error.issues));

    const result = await action.handle(
      (parsed.data as { data: unknown }).data,
      {
        caller,
        requestId: ids.id,
        clientRequestId: ids.client,
        request: req,
        rawData: record.data,
      },
    );
    return jsonResponse(result.status, result.body, ids.id);
  }
}

/** Full detail for the log (never the response): the error, its SQLSTATE and its cause chain. */
function describeFailure(failure: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = failure, depth = 0; e !== undefined && depth < 4; depth++) {
    if (e instanceof Error) {
      const code = (e as { code?: unknown }).code;
      parts.push(`${e.name}${code ? ` [${code}]` : ""}: ${e.message}`);
      e = e.cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return parts.join(" <- caused by ");
}
