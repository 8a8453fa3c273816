// Reading a request body within api.md's bounds, after the caller is authenticated: a declared
// Content-Length over 8 MiB answers 413 at once; otherwise the request reserves what the body may
// cost in the instance's body budget, reads it chunk by chunk with the size limit and the JSON guard
// checked on every chunk (413 before the rest is read), and only then decodes and parses it.
import { ApiError } from "./errors.ts";
import { type BodyLease, reserveBody } from "./body_budget.ts";
import { JsonGuard, MAX_BODY_VALUES } from "./json_guard.ts";

const MiB = 1024 * 1024;
export const MAX_BODY_BYTES = 8 * MiB;
/** The limit of every action but createJob and addTasks, checked once the action is known. */
export const MAX_ACTION_BYTES = 1 * MiB;

export function tooLarge(limit: number): ApiError {
  return new ApiError(413, "PAYLOAD_TOO_LARGE", `The request body is larger than ${limit} bytes.`, {
    limit_bytes: limit,
  });
}

/**
 * Memory a body may take while it is read, parsed and validated: four times its bytes (the decoded
 * chunks, their join, the strings JSON.parse copies out of it, and what validation copies), and
 * 128 bytes a value: JSON.parse's heap for `{}` is 56 bytes, ~70 a key in objects of distinct keys,
 * and the process's peak RSS grew by ~115 bytes a value over the parse of 400 000 of them.
 */
export function bodyCost(bytes: number, values: number): number {
  return 4 * bytes + 128 * values;
}

function declaredLength(req: Request): number | null {
  const header = req.headers.get("content-length");
  const declared = header === null ? NaN : Number(header);
  if (!Number.isSafeInteger(declared) || declared < 0) return null;
  if (declared > MAX_BODY_BYTES) throw tooLarge(MAX_BODY_BYTES);
  return declared;
}

/**
 * The body as text (null: not UTF-8), read chunk by chunk: each chunk is counted, guarded and
 * decoded as it arrives and then dropped, so that no copy of the raw bytes outlives its chunk (an
 * earlier version kept the chunks and joined them: raw bytes live outside the V8 heap, which its
 * collector reclaims late, and eight concurrent 8 MiB strings took the peak RSS from 115 to 175 MiB).
 * Bytes that are not UTF-8 are reported after the whole body passed the size checks (spec order).
 */
async function readBounded(
  req: Request,
  guard: JsonGuard,
): Promise<{ text: string | null; bytes: number }> {
  if (!req.body) return { text: "", bytes: 0 };
  const reader = req.body.getReader();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let parts: string[] | null = [];
  const decode = (chunk?: Uint8Array) => {
    try {
      parts?.push(decoder.decode(chunk, { stream: chunk !== undefined }));
    } catch {
      parts = null;
    }
  };
  let bytes = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      if (bytes > MAX_BODY_BYTES) throw tooLarge(MAX_BODY_BYTES);
      guard.feed(value);
      decode(value);
    }
    decode();
  } catch (error) {
    // stop receiving what will never be used
    await reader.cancel().catch(() => {});
    throw error;
  }
  return { text: parts === null ? null : (parts as string[]).join(""), bytes };
}

function invalidJson(): ApiError {
  return new ApiError(400, "INVALID_JSON", "The body is not valid JSON.");
}

function parse(text: string | null): unknown {
  if (text === null) throw invalidJson();
  try {
    return JSON.parse(text);
  } catch {
    throw invalidJson();
  }
}

/**
 * Reads and parses the body, then runs `use` with it and its size in bytes; what the body holds in
 * the budget is given back when `use` is done.
 */
export async function withJsonBody<T>(
  req: Request,
  use: (body: unknown, bytes: number) => Promise<T>,
): Promise<T> {
  const declared = declaredLength(req) ?? MAX_BODY_BYTES;
  const mostValues = Math.min(MAX_BODY_VALUES, Math.ceil((declared + 1) / 2));
  const lease = await reserveBody(
    bodyCost(declared, mostValues),
    declared <= MAX_ACTION_BYTES ? 1 : 0,
  );
  try {
    const { value, bytes } = await readJson(req, lease);
    return await use(value, bytes);
  } finally {
    lease.release();
  }
}

/** Its own frame, so that the text is garbage before the handler runs. */
async function readJson(
  req: Request,
  lease: BodyLease,
): Promise<{ value: unknown; bytes: number }> {
  const guard = new JsonGuard();
  const { text, bytes } = await readBounded(req, guard);
  lease.settle(bodyCost(bytes, guard.values));
  return { value: parse(text), bytes };
}
