// Building blocks of the zod schemas: text that PostgreSQL can store, JSON values with size and
// depth limits, and the translation of zod issues into the API's `details` list.
import { z } from "zod";
import type { FieldIssue } from "./errors.ts";

export const MAX_JSON_DEPTH = 64;
export const ERROR_CODE_PATTERN = /^[A-Z][A-Z0-9_]{1,63}$/;

/** UTF-8 length of a string without allocating. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Text PostgreSQL stores unchanged: no NUL character, no unpaired surrogate. */
function storable(text: string): boolean {
  return !text.includes("\u0000") && text.isWellFormed();
}

export function text(min: number, max: number) {
  return z.string().min(min).max(max).refine(storable, {
    message: "Must not contain NUL characters or unpaired surrogates.",
  });
}

/** Walks a parsed JSON value iteratively (no recursion limit) and reports the first problem. */
function jsonProblem(value: unknown): string | null {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (typeof current === "string") {
      if (!storable(current)) {
        return "Strings must not contain NUL characters or unpaired surrogates.";
      }
    } else if (current !== null && typeof current === "object") {
      if (depth > MAX_JSON_DEPTH) {
        return `JSON may be nested at most ${MAX_JSON_DEPTH} levels deep.`;
      }
      if (Array.isArray(current)) {
        for (const item of current) stack.push([item, depth + 1]);
      } else {
        for (const key of Object.keys(current)) {
          if (!storable(key)) return "Keys must not contain NUL characters or unpaired surrogates.";
          stack.push([(current as Record<string, unknown>)[key], depth + 1]);
        }
      }
    } else if (typeof current === "number" && !Number.isFinite(current)) {
      return "Numbers must be finite.";
    }
  }
  return null;
}

/** UTF-8 length of a string as JSON.stringify writes it (quotes and escapes included). */
function jsonStringBytes(text: string): number {
  let bytes = 2 + utf8Length(text);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 || c === 0x5c || c === 0x08 || c === 0x0c || c === 0x0a || c === 0x0d) bytes++;
    else if (c === 0x09) bytes++;
    else if (c < 0x20) bytes += 5; // \u00XX
  }
  return bytes;
}

/**
 * Is the compact UTF-8 JSON of `value` (a value jsonProblem passed) longer than `maxBytes`? The
 * same answer as measuring JSON.stringify's output, without building it: a payload of a few MiB
 * costs no copy to refuse, and the walk stops as soon as the limit is passed.
 */
export function jsonBytesOver(value: unknown, maxBytes: number): boolean {
  let bytes = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const current = stack.pop();
    if (typeof current === "string") bytes += jsonStringBytes(current);
    else if (typeof current === "number") bytes += String(current).length;
    else if (typeof current === "boolean") bytes += current ? 4 : 5;
    else if (current === null) bytes += 4;
    else if (Array.isArray(current)) {
      bytes += 1 + Math.max(1, current.length); // brackets and commas
      for (const item of current) stack.push(item);
    } else {
      const keys = Object.keys(current as object);
      bytes += 1 + Math.max(1, keys.length) + keys.length; // braces, commas and colons
      for (const key of keys) {
        bytes += jsonStringBytes(key);
        stack.push((current as Record<string, unknown>)[key]);
      }
    }
    if (bytes > maxBytes) return true;
  }
  return false;
}

/**
 * Any JSON value up to `maxBytes` of compact UTF-8 JSON. The value is passed through untouched
 * (zod would rebuild objects and drop `__proto__` keys), so what is stored is what was sent.
 */
export function jsonValue(maxBytes: number, options: { object?: boolean } = {}) {
  return z.unknown().superRefine((value, ctx) => {
    if (value === undefined) {
      ctx.addIssue({ code: "custom", message: "Required." });
      return;
    }
    if (options.object && (value === null || typeof value !== "object" || Array.isArray(value))) {
      ctx.addIssue({ code: "custom", message: "Must be a JSON object." });
      return;
    }
    const problem = jsonProblem(value);
    if (problem) {
      ctx.addIssue({ code: "custom", message: problem });
      return;
    }
    if (jsonBytesOver(value, maxBytes)) {
      ctx.addIssue({ code: "custom", message: `Must be at most ${maxBytes} bytes of JSON.` });
    }
  });
}

function pathToString(path: readonly PropertyKey[]): string {
  return path.map((part) => String(part)).join(".");
}

/** Every failing field as `{ path, message }`; each unknown field is listed on its own. */
export function issuesToDetails(issues: readonly z.core.$ZodIssue[]): FieldIssue[] {
  const details: FieldIssue[] = [];
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        details.push({ path: pathToString([...issue.path, key]), message: "Unknown field." });
      }
    } else {
      details.push({ path: pathToString(issue.path), message: issue.message });
    }
  }
  return details;
}

/** Cuts text to at most `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (utf8Length(text) <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const ch of text) {
    const size = utf8Length(ch);
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += ch.length;
  }
  return text.slice(0, end);
}

/** A JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
