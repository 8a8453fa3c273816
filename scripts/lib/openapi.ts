// The published API, derived from the code: an OpenAPI 3.1 document (docs/openapi.json) and its
// rendering with examples (docs/api.md), both written by `deno task gen`. Request schemas are the
// actions' own zod `data` schemas (what the dispatcher validates with); responses are the zod
// response schemas; the error shape and codes are those of the common rules (api.md). Pure
// functions: a test compares the committed files with what they return.
import { z } from "zod";
import { jobOperationsActions } from "../../supabase/functions/job-operations/handler.ts";
import { taskOperationsActions } from "../../supabase/functions/task-operations/handler.ts";
import type { Action } from "../../supabase/functions/_shared/dispatcher.ts";
import { MAX_ACTION_BYTES, MAX_BODY_BYTES } from "../../supabase/functions/_shared/request_body.ts";
import {
  MAX_BODY_DEPTH,
  MAX_BODY_VALUES,
  MAX_STRING_BYTES,
} from "../../supabase/functions/_shared/json_guard.ts";
import type { ErrorCode } from "../../supabase/functions/_shared/errors.ts";
import * as jobSchemas from "../../supabase/functions/_shared/job_schemas.ts";
import * as taskSchemas from "../../supabase/functions/_shared/task_schemas.ts";
import * as operationsSchemas from "../../supabase/functions/_shared/operations_schemas.ts";
import {
  type ActionExample,
  ERROR_EXAMPLE,
  EXAMPLES,
  NOTIFICATION_EXAMPLE,
} from "./api_examples.ts";

type Json = Record<string, unknown>;

export interface FunctionDoc {
  name: "job-operations" | "task-operations";
  summary: string;
  roles: string;
  actions: Record<string, Action>;
}

export const FUNCTIONS: FunctionDoc[] = [
  {
    name: "job-operations",
    summary: "Create, steer, read and delete jobs; operations (maintenance, statistics).",
    roles: "authenticated, service_role",
    actions: jobOperationsActions,
  },
  {
    name: "task-operations",
    summary: "Workers claim tasks and report on them.",
    roles: "service_role",
    actions: taskOperationsActions,
  },
];

/** Every zod schema a response may name, by its exported name. */
export function namedSchemas(): Record<string, z.ZodType> {
  const all: Record<string, z.ZodType> = {};
  for (const module of [jobSchemas, taskSchemas, operationsSchemas]) {
    for (const [name, value] of Object.entries(module)) {
      if (value instanceof z.ZodType) all[name] = value;
    }
  }
  return all;
}

/** The exported name of a response schema (the component it is published as). */
export function nameOf(named: Record<string, z.ZodType>, schema: z.ZodType): string | undefined {
  return Object.entries(named).find(([, s]) => s === schema)?.[0];
}

// ----- errors (api.md, common rules) -----

/** Every API error code with its HTTP status (a Record over ErrorCode: a new code must be added). */
export const ERROR_STATUS: Record<ErrorCode, number> = {
  INVALID_JSON: 400,
  UNKNOWN_ACTION: 400,
  VALIDATION_ERROR: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  JOB_NOT_FOUND: 404,
  TASK_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  INVALID_TRANSITION: 409,
  INVALID_PROGRESS: 409,
  LEASE_LOST: 409,
  PRECONDITION_FAILED: 409,
  IDEMPOTENCY_CONFLICT: 409,
  JOB_CLOSED: 409,
  QUOTA_EXCEEDED: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
  AUTH_NOT_CONFIGURED: 503,
};

export const ERROR_MEANING: Record<number, string> = {
  400: "Body not JSON, action missing or unknown, or data invalid (details: every failing field).",
  401: "No, bad or expired token or API key.",
  403: "Role not allowed for this function, action or field.",
  404: "Job or task absent, or another user's (never revealed); NOT_FOUND: no such function path.",
  405: "Any method but POST and OPTIONS.",
  409: "The state of the job or task does not allow the request, or a user's quota is exceeded.",
  413:
    "Body over 8 MiB (a larger Content-Length is answered before the body is read), over 1 MiB " +
    "for any action but createJob and addTasks, or JSON that no valid request matches in size: " +
    `more than ${
      MAX_BODY_VALUES.toLocaleString("en-US")
    } values (each object key counts as one), ` +
    `nesting deeper than ${MAX_BODY_DEPTH} levels, or a string over ` +
    `${MAX_STRING_BYTES / 1024 / 1024} MiB (refused while it is read, before it is parsed).`,
  415: "Content type not application/json.",
  500: "Anything else (no SQL or stack trace in the body; detail in the log).",
  503:
    "Database or Supabase Auth unreachable or overloaded, or too many large bodies in progress on " +
    "the instance: retry after Retry-After seconds; AUTH_NOT_CONFIGURED: nothing configured can " +
    "verify the credential (the log names what is missing).",
};

const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];

export function codesFor(status: number): ErrorCode[] {
  return ERROR_CODES.filter((code) => ERROR_STATUS[code] === status);
}

const ERROR_STATUSES = [...new Set(Object.values(ERROR_STATUS))].sort((a, b) => a - b);

const ErrorBody = z.object({
  error: z.object({
    code: z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    details: z.unknown().optional().describe(
      "VALIDATION_ERROR: [{ path, message }] for every failing field; other codes: an object",
    ),
    request_id: z.string().describe("the server's id of the request, as in x-request-id"),
  }),
});

// ----- JSON Schema from zod -----

/**
 * The free JSON values of the contract (zod checks them in a refinement JSON Schema cannot show):
 * what they are, for the published schema.
 */
const JSON_VALUES = new Map<unknown, Json>([
  [jobSchemas.Metadata, {
    type: "object",
    description: "any JSON object, at most 16 KiB as compact JSON",
  }],
  [jobSchemas.TaskInput.shape.payload, {
    description: "any JSON value, at most 64 KiB as compact JSON",
  }],
  [taskSchemas.CompleteTaskData.shape.result.unwrap(), {
    description: "any JSON value, at most 64 KiB as compact JSON",
  }],
]);

/** A zod schema as JSON Schema 2020-12 (OpenAPI 3.1), without zod's safe-integer noise. */
export function jsonSchema(schema: z.ZodType, io: "input" | "output"): Json {
  const converted = z.toJSONSchema(schema, {
    io,
    target: "draft-2020-12",
    unrepresentable: "any",
    override(ctx) {
      const known = JSON_VALUES.get(ctx.zodSchema);
      if (known) Object.assign(ctx.jsonSchema, known);
    },
  }) as Json;
  delete converted.$schema;
  return tidy(converted) as Json;
}

function tidy(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(tidy);
  if (node === null || typeof node !== "object") return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node as Json)) {
    if (key === "minimum" && value === Number.MIN_SAFE_INTEGER) continue;
    if (key === "maximum" && value === Number.MAX_SAFE_INTEGER) continue;
    // the uuid format says it all; zod's pattern for it only adds noise
    if (key === "pattern" && (node as Json).format === "uuid") continue;
    out[key] = tidy(value);
  }
  return out;
}

const capitalised = (s: string) => s[0].toUpperCase() + s.slice(1);
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

function examplesOf(action: string): ActionExample[] {
  return EXAMPLES[action] ?? [];
}

// ----- the OpenAPI document -----

export function openApiDocument(): Json {
  const named = namedSchemas();
  const schemas: Json = {};
  const paths: Json = {};

  schemas.Error = jsonSchema(ErrorBody, "output");

  for (const fn of FUNCTIONS) {
    const requestRefs: Json[] = [];
    const mapping: Record<string, string> = {};
    const requestExamples: Json = {};
    const byStatus = new Map<number, { schemas: Set<string>; lines: string[]; examples: Json }>();

    for (const [name, action] of Object.entries(fn.actions)) {
      const doc = action.doc;
      const requestName = `${capitalised(name)}Request`;
      const limit = action.maxBytes ?? MAX_ACTION_BYTES;
      schemas[requestName] = {
        type: "object",
        description: [
          doc.summary,
          `Roles: ${action.roles.join(", ")}. Largest body: ${limit / 1024 / 1024} MiB.`,
        ].join(" "),
        properties: {
          action: { type: "string", const: name },
          data: jsonSchema(action.data, "input"),
        },
        required: ["action", "data"],
        additionalProperties: false,
      };
      requestRefs.push(ref(requestName));
      mapping[name] = `#/components/schemas/${requestName}`;
      examplesOf(name).forEach((example, i) => {
        const key = i === 0 ? name : `${name}${i + 1}`;
        requestExamples[key] = {
          summary: example.title ?? name,
          value: { action: name, data: example.data },
        };
      });

      for (const documented of doc.responses) {
        const schemaName = nameOf(named, documented.schema);
        if (!schemaName) {
          throw new Error(`${name}: its response schema is not exported by a schema file`);
        }
        const response = { ...documented, schema: schemaName };
        if (!schemas[response.schema]) {
          schemas[response.schema] = jsonSchema(named[response.schema], "output");
        }
        const entry = byStatus.get(response.status) ??
          { schemas: new Set<string>(), lines: [], examples: {} };
        entry.schemas.add(response.schema);
        entry.lines.push(`${name}: ${response.description}`);
        examplesOf(name).forEach((example, i) => {
          if (example.status !== response.status) return;
          const key = i === 0 ? name : `${name}${i + 1}`;
          (entry.examples as Json)[key] = {
            summary: example.title ?? name,
            value: { data: example.response },
          };
        });
        byStatus.set(response.status, entry);
      }
    }

    const responses: Json = {};
    for (const [status, entry] of [...byStatus].sort(([a], [b]) => a - b)) {
      const dataSchemas = [...entry.schemas].map((s) => (s ? ref(s) : {}));
      responses[String(status)] = {
        description: entry.lines.join(" "),
        headers: { "x-request-id": { $ref: "#/components/headers/RequestId" } },
        content: {
          "application/json": {
            schema: {
              type: "object",
              properties: {
                data: dataSchemas.length === 1 ? dataSchemas[0] : { anyOf: dataSchemas },
              },
              required: ["data"],
            },
            ...(Object.keys(entry.examples).length > 0 ? { examples: entry.examples } : {}),
          },
        },
      };
    }
    for (const status of ERROR_STATUSES) {
      responses[String(status)] = { $ref: `#/components/responses/Error${status}` };
    }

    const parameters: Json[] = [{ $ref: "#/components/parameters/RequestId" }];
    if (fn.name === "job-operations") {
      parameters.push({ $ref: "#/components/parameters/IdempotencyKey" });
    }
    paths[`/functions/v1/${fn.name}`] = {
      post: {
        operationId: fn.name.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()),
        tags: [fn.name],
        summary: fn.summary,
        description: `Roles: ${fn.roles}. Actions: ${Object.keys(fn.actions).join(", ")}.` +
          " Every response carries x-request-id and CORS headers.",
        parameters,
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: { oneOf: requestRefs, discriminator: { propertyName: "action", mapping } },
              examples: requestExamples,
            },
          },
        },
        responses,
      },
    };
  }

  const errorResponses: Json = {};
  for (const status of ERROR_STATUSES) {
    const codes = codesFor(status);
    errorResponses[`Error${status}`] = {
      description: `${ERROR_MEANING[status]} Codes: ${codes.join(", ")}.`,
      headers: {
        "x-request-id": { $ref: "#/components/headers/RequestId" },
        ...(status === 503
          ? { "Retry-After": { schema: { type: "integer" }, description: "Seconds to wait." } }
          : {}),
      },
      content: {
        "application/json": {
          schema: {
            allOf: [ref("Error")],
            properties: { error: { properties: { code: { enum: codes } } } },
          },
          ...(status === 400 ? { examples: { validation: { value: ERROR_EXAMPLE } } } : {}),
        },
      },
    };
  }

  schemas.Notification = jsonSchema(operationsSchemas.NotificationBody, "output");

  return {
    openapi: "3.1.0",
    info: {
      title: "Batch job service",
      version: "1.0.0",
      description: "Two Supabase Edge Functions over PostgreSQL. Every call is a POST of " +
        "{ action, data }; success is { data }, failure { error: { code, message, details?, " +
        "request_id } }. Generated from the zod schemas by `deno task gen`; see docs/api.md.",
    },
    servers: [
      { url: "http://127.0.0.1:54321", description: "local (deno task dev)" },
      {
        url: "https://{project_ref}.supabase.co",
        description: "a Supabase project",
        variables: { project_ref: { default: "your-project-ref" } },
      },
    ],
    security: [{ bearerAuth: [] }, { secretKey: [] }],
    tags: FUNCTIONS.map((fn) => ({ name: fn.name, description: fn.summary })),
    paths,
    webhooks: {
      notification: {
        post: {
          summary: "A notification from the outbox, sent by runMaintenance to NOTIFY_WEBHOOK_URL.",
          description: "Signed as Standard Webhooks says: verify it (e.g. with the npm library " +
            "standardwebhooks, which also refuses timestamps older than five minutes) before " +
            "trusting the body. Retried with backoff on a non-2xx answer or a time-out; the same " +
            "id on every try (de-duplicate on it).",
          parameters: [
            {
              name: "webhook-id",
              in: "header",
              required: true,
              schema: { type: "string", format: "uuid" },
              description: "The notification's id, the same on every try.",
            },
            {
              name: "webhook-timestamp",
              in: "header",
              required: true,
              schema: { type: "string", pattern: "^[0-9]+$" },
              description: "When this try was signed, in seconds since the Unix epoch.",
            },
            {
              name: "webhook-signature",
              in: "header",
              required: true,
              schema: { type: "string", pattern: "^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$" },
              description: 'v1,<base64 HMAC-SHA256 of "webhook-id.webhook-timestamp.body"> ' +
                "with the key of NOTIFY_WEBHOOK_SECRET (whsec_<base64 key>); one per secret, " +
                "separated by spaces, while secrets are rotated.",
            },
            {
              name: "x-notification-id",
              in: "header",
              required: true,
              schema: { type: "string", format: "uuid" },
              description: "An alias of webhook-id.",
            },
            {
              name: "x-notification-attempt",
              in: "header",
              required: true,
              schema: { type: "integer", minimum: 1 },
              description: "Which try this is (1 for the first).",
            },
            {
              name: "x-notification-type",
              in: "header",
              required: true,
              schema: { type: "string", enum: [...operationsSchemas.NOTIFICATION_TYPES] },
              description: "The body's type, for routing without parsing.",
            },
          ],
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: ref("Notification"),
                examples: { "job.failed": { value: NOTIFICATION_EXAMPLE } },
              },
            },
          },
          responses: {
            "2XX": { description: "Received; the notification is delivered and never sent again." },
            default: { description: "Any other answer (or none in time) is retried later." },
          },
        },
      },
    },
    components: {
      securitySchemes: {
        bearerAuth: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description:
            "A Supabase Auth token (role authenticated or service_role), or a secret key.",
        },
        secretKey: {
          type: "apiKey",
          in: "header",
          name: "apikey",
          description: "A project secret key (sb_secret_...): acts as service_role.",
        },
      },
      parameters: {
        RequestId: {
          name: "x-request-id",
          in: "header",
          required: false,
          schema: { type: "string", pattern: "^[A-Za-z0-9._:-]{1,128}$" },
          description:
            "The caller's own id: when well formed it is logged and kept in audit rows as " +
            "client_request_id, beside the server's id (never instead of it).",
        },
        IdempotencyKey: {
          name: "Idempotency-Key",
          in: "header",
          required: false,
          schema: { type: "string", minLength: 1, maxLength: 128 },
          description:
            "createJob only: same as data.idempotency_key (both given: they must match).",
        },
      },
      headers: {
        RequestId: {
          schema: { type: "string" },
          description: "The server's id of the request (logged, and request_id in audit rows).",
        },
      },
      responses: errorResponses,
      schemas,
    },
  };
}

export function openApiJson(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}

// ----- docs/api.md -----

const MAX_LINE = 100;

/** Greedy wrap at the formatter's line width (deno fmt wraps prose the same way). */
function wrap(text: string): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > MAX_LINE) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.join("\n");
}

function table(header: string[], rows: string[][]): string {
  const cell = (s: string) => s.replaceAll("|", "\\|");
  const all = [header, ...rows].map((r) => r.map(cell));
  const widths = header.map((_, i) => Math.max(3, ...all.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [
    line(all[0]),
    `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`,
    ...all.slice(1).map(line),
  ].join("\n");
}

const code = (s: string) => `\`${s}\``;

function objectOf(schema: Json): Json | undefined {
  if (schema.type === "object" && schema.properties) return schema;
  const options = (schema.anyOf ?? schema.oneOf) as Json[] | undefined;
  return options?.find((o) => o.type === "object" && o.properties);
}

function typeOf(schema: Json): string {
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  const options = (schema.anyOf ?? schema.oneOf) as Json[] | undefined;
  if (options) {
    const types = options.map(typeOf);
    return [...new Set(types)].join(" or ");
  }
  if (schema.type === "array") {
    const items = schema.items as Json | undefined;
    return items ? `array of ${typeOf(items)}` : "array";
  }
  if (schema.enum) return "string";
  if (schema.type === undefined) return "any JSON";
  if (schema.format === "uuid") return "uuid";
  return String(schema.type);
}

function range(min: unknown, max: unknown, unit = ""): string | undefined {
  const u = unit ? ` ${unit}` : "";
  if (min !== undefined && max !== undefined) return `${min}..${max}${u}`;
  if (min !== undefined) return `>= ${min}${u}`;
  if (max !== undefined) return `<= ${max}${u}`;
  return undefined;
}

function rulesOf(schema: Json): string {
  const rules: string[] = [];
  const options = (schema.anyOf ?? schema.oneOf) as Json[] | undefined;
  const main = options?.find((o) => o.type !== "null") ?? schema;
  const target = main;
  if (target.enum) {
    rules.push(`one of ${(target.enum as unknown[]).map((v) => code(String(v))).join(", ")}`);
  }
  const numeric = range(target.minimum, target.maximum);
  if (numeric) rules.push(numeric);
  const length = range(target.minLength, target.maxLength, "chars");
  if (length) rules.push(length);
  const items = range(target.minItems, target.maxItems, "items");
  if (items) rules.push(items);
  if (target.pattern) rules.push(`matches ${code(String(target.pattern))}`);
  if (target.type === "array") {
    const inner = target.items as Json | undefined;
    if (inner?.enum) {
      rules.push(`each one of ${(inner.enum as unknown[]).map((v) => code(String(v))).join(", ")}`);
    }
    if (inner?.pattern) rules.push(`each matches ${code(String(inner.pattern))}`);
    const innerRange = inner && range(inner.minimum, inner.maximum);
    if (innerRange) rules.push(`each ${innerRange}`);
  }
  if (schema.default !== undefined) rules.push(`default ${code(JSON.stringify(schema.default))}`);
  if (schema.description) rules.push(String(schema.description));
  return rules.join("; ");
}

function fieldRows(schema: Json, prefix = ""): string[][] {
  const rows: string[][] = [];
  const properties = (schema.properties ?? {}) as Record<string, Json>;
  const required = new Set((schema.required ?? []) as string[]);
  for (const [name, prop] of Object.entries(properties)) {
    const path = `${prefix}${name}`;
    rows.push([code(path), typeOf(prop), required.has(name) ? "yes" : "", rulesOf(prop)]);
    const nested = objectOf(prop);
    if (nested) rows.push(...fieldRows(nested, `${path}.`));
    const items = prop.type === "array" ? objectOf((prop.items ?? {}) as Json) : undefined;
    if (items) rows.push(...fieldRows(items, `${path}[].`));
  }
  return rows;
}

function jsonBlock(value: unknown): string {
  return ["```json", JSON.stringify(value, null, 2), "```"].join("\n");
}

function actionSection(fnName: string, name: string, action: Action): string {
  const doc = action.doc;
  const named = namedSchemas();
  const data = jsonSchema(action.data, "input");
  const answers = doc.responses.map((r) => `${r.status} ${code(nameOf(named, r.schema) ?? "?")}`)
    .join(", ");
  const limit = action.maxBytes ?? MAX_ACTION_BYTES;
  const parts = [
    `### ${name}`,
    wrap(doc.summary),
    table(["who", "answers", "largest body"], [[
      action.roles.join(", "),
      answers || "see openapi.json",
      limit === MAX_BODY_BYTES ? "8 MiB" : `${limit / 1024 / 1024} MiB`,
    ]]),
  ];
  const rows = fieldRows(data);
  parts.push(
    rows.length > 0
      ? table(["`data` field", "type", "required", "rules"], rows)
      : "`data` is an empty object `{}`.",
  );
  for (const example of examplesOf(name)) {
    parts.push(
      `Example${example.title ? `: ${example.title}` : ""}. Request to \`${fnName}\`:`,
      jsonBlock({ action: name, data: example.data }),
      `Answer ${example.status}:`,
      jsonBlock({ data: example.response }),
    );
  }
  return parts.join("\n\n");
}

export function apiMarkdown(): string {
  const parts: string[] = [
    "# API reference",
    "<!-- GENERATED by `deno task gen` from the zod schemas (scripts/lib/openapi.ts, " +
    "scripts/lib/api_examples.ts). Do not edit. -->",
    wrap(
      "Two functions, both `POST` with a JSON body of two fields, `action` (a string) and `data` " +
        "(an object), and a bearer token issued by Supabase Auth (or a project secret key in " +
        "`apikey` for the service). Success is an object with `data`; failure is an object with " +
        "`error`: `code`, `message`, `details` (optional) and `request_id`. The machine-readable " +
        "form of this page is " +
        "[openapi.json](openapi.json) (OpenAPI 3.1); every example here is checked against the " +
        "schemas by the tests.",
    ),
    "```sh\n" + [
      "TOKEN=$(deno task -q token --role service_role)",
      "curl -s http://127.0.0.1:54321/functions/v1/job-operations \\",
      '  -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\',
      `  -d '{"action":"getStats","data":{}}'`,
    ].join("\n") + "\n```",
    "## Errors",
    wrap(
      "Every error has the same shape; `request_id` is also in the `x-request-id` header and in " +
        "the log line of the request. The checks run in the order of the common rules (method, " +
        "content type, token, role for the function, size, JSON, action, size for the action, " +
        "role for the action, validation, existence, state): a request without a valid token is " +
        "answered before its body is read.",
    ),
    table(
      ["status", "codes", "when"],
      ERROR_STATUSES.map((s) => [String(s), codesFor(s).map(code).join(", "), ERROR_MEANING[s]]),
    ),
    "Example (400):",
    jsonBlock(ERROR_EXAMPLE),
  ];
  for (const fn of FUNCTIONS) {
    parts.push(
      `## ${fn.name}`,
      wrap(`POST \`/functions/v1/${fn.name}\`: ${fn.summary} Roles: ${fn.roles}.`),
    );
    for (const [name, action] of Object.entries(fn.actions)) {
      parts.push(actionSection(fn.name, name, action));
    }
  }
  parts.push(
    "## Webhook notifications",
    wrap(
      "With `NOTIFY_WEBHOOK_URL` set, `runMaintenance` sends each notification of the outbox as a " +
        "`POST` with this body, signed as Standard Webhooks says: `webhook-id` (the notification's " +
        "id, the same on every try: de-duplicate on it; `x-notification-id` is an alias), " +
        "`webhook-timestamp` (seconds) and `webhook-signature` (`v1,<base64>`, the HMAC-SHA256 of " +
        '`"id.timestamp.body"` with the key of `NOTIFY_WEBHOOK_SECRET`, `whsec_<base64>`), and ' +
        "`x-notification-attempt`. Verify it with the npm library `standardwebhooks`, which " +
        "refuses a timestamp older than five minutes, so a captured delivery cannot be replayed. " +
        "Any 2xx answer delivers it; anything else, or no answer within the time-out, is retried " +
        "with backoff (docs/operations.md).",
    ),
    table(
      ["field", "type", "required", "rules"],
      fieldRows(jsonSchema(operationsSchemas.NotificationBody, "output")),
    ),
    jsonBlock(NOTIFICATION_EXAMPLE),
  );
  return `${parts.join("\n\n")}\n`;
}
