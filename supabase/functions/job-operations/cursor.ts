// Opaque, signed listJobs cursors: the client cannot forge or alter one (that is a 400), and the
// position it carries is exact to the microsecond. The key is the function secret CURSOR_SECRET
// where an operator set one, else the database's own (job_service.signing_keys, made by a
// migration): never a public default. Read once per instance.
import { ApiError } from "../_shared/errors.ts";
import { env } from "../_shared/env.ts";
import * as db from "../_shared/sql_api.ts";
import type { CursorPosition } from "../_shared/sql_answers.ts";

export type { CursorPosition };

let key: Promise<CryptoKey> | undefined;

function signingKey(): Promise<CryptoKey> {
  // a failed read (the database unreachable) is tried again by the next request
  key ??= loadKey().catch((error) => {
    key = undefined;
    throw error;
  });
  return key;
}

async function loadKey(): Promise<CryptoKey> {
  const configured = env("CURSOR_SECRET");
  const raw = configured !== undefined
    ? new TextEncoder().encode(`list-cursor:${configured}`)
    : await db.signingKey({ name: "list_cursor" });
  if (raw === null) {
    const cause = new Error("no list_cursor key in job_service.signing_keys (a migration missing)");
    throw new ApiError(
      500,
      "INTERNAL_ERROR",
      "An unexpected error occurred.",
      undefined,
      {},
      cause,
    );
  }
  return await crypto.subtle.importKey(
    "raw",
    raw as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

function toBase64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - b64.length % 4) % 4)), (c) => c.charCodeAt(0));
}

export async function encodeCursor(position: CursorPosition): Promise<string> {
  const body = new TextEncoder().encode(JSON.stringify([position.t, position.i]));
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await signingKey(), body));
  return `${toBase64Url(body)}.${toBase64Url(mac)}`;
}

function invalidCursor(): ApiError {
  return new ApiError(400, "VALIDATION_ERROR", "The request data is invalid.", [
    { path: "data.cursor", message: "Invalid cursor: use next_cursor from a previous listJobs." },
  ]);
}

export async function decodeCursor(cursor: string): Promise<CursorPosition> {
  const match = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(cursor);
  if (!match) throw invalidCursor();
  let body: Uint8Array<ArrayBuffer>, mac: Uint8Array<ArrayBuffer>;
  try {
    body = fromBase64Url(match[1]);
    mac = fromBase64Url(match[2]);
  } catch {
    throw invalidCursor();
  }
  const valid = await crypto.subtle.verify("HMAC", await signingKey(), mac, body);
  if (!valid) throw invalidCursor();
  const parsed: unknown = JSON.parse(new TextDecoder().decode(body));
  if (
    !Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[0] !== "string" ||
    !/^-?\d{1,19}$/.test(parsed[0]) || typeof parsed[1] !== "string"
  ) {
    throw invalidCursor();
  }
  return { t: parsed[0], i: parsed[1] };
}
