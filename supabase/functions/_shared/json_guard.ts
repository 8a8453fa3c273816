// Counts the values and the nesting of a JSON text while its bytes arrive, building nothing, so that
// a body whose parse would cost more heap than any valid request's is refused before JSON.parse
// turns it into objects (an 8 MiB `[{},{},…]` is 2.8 million objects, ~185 MB of heap). It only
// tokenizes what it must to tell strings from structure: JSON.parse still validates the text.
import { ApiError } from "./errors.ts";
import { MAX_JSON_DEPTH } from "./validation.ts";

/**
 * The deepest nesting a valid request has: the body, `data`, `tasks` (or `createJob`'s and
 * `completeTasks`' item lists) and one item, holding a payload or result nested up to
 * MAX_JSON_DEPTH levels (metadata, at `data.metadata`, stays one level above that).
 */
export const MAX_BODY_DEPTH = 4 + MAX_JSON_DEPTH;

/**
 * Most values (each object key counted as one more) a body may hold: a contract limit of its own,
 * because payloads may be any JSON. A task takes 2 (`{"payload": …}`) plus its payload's values and
 * keys, 5 more with `resources`; so 10 000 tasks fit with payloads of up to 18 values and keys each
 * (13 with resources; H2's `{"to": …, "n": …}` has 5), and larger jobs are sent in parts with
 * addTasks. The bound keeps a parse to ~15 MB of heap: at 400 000 values, eight such bodies took the
 * server's peak RSS to 165 MiB; at 200 000, 110–130 MiB.
 */
export const MAX_BODY_VALUES = 200_000;

/**
 * The longest string (in bytes of the body, quotes and escapes included) a valid request has: the
 * actions limited to 1 MiB cannot hold a longer one, and the strings of createJob and addTasks are
 * at most 64 KiB of JSON (384 KiB if every character were sent as a `\uXXXX` escape).
 */
export const MAX_STRING_BYTES = 1024 * 1024;

const OUTSIDE = 0, STRING = 1, ESCAPE = 2, SCALAR = 3;

function tooComplex(message: string, details: Record<string, number>): ApiError {
  return new ApiError(413, "PAYLOAD_TOO_LARGE", message, details);
}

/** Feed it the body's bytes in order; it throws 413 as soon as a bound is passed. */
export class JsonGuard {
  /** values and keys seen so far: an upper bound on what JSON.parse will allocate */
  values = 0;
  #depth = 0;
  #state = OUTSIDE;
  /** bytes fed before the current chunk */
  #offset = 0;
  /** where the string being read began (offset of its opening quote) */
  #stringStart = 0;

  constructor(
    readonly maxValues = MAX_BODY_VALUES,
    readonly maxDepth = MAX_BODY_DEPTH,
    readonly maxStringBytes = MAX_STRING_BYTES,
  ) {}

  #checkString(end: number): void {
    if (end - this.#stringStart > this.maxStringBytes) {
      throw tooComplex(`The JSON body has a string longer than ${this.maxStringBytes} bytes.`, {
        limit_string_bytes: this.maxStringBytes,
      });
    }
  }

  feed(bytes: Uint8Array): void {
    let state = this.#state, values = this.values, depth = this.#depth;
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i];
      if (state === STRING) {
        if (c === 0x5c) state = ESCAPE; // backslash
        else if (c === 0x22) { // closing quote
          state = OUTSIDE;
          this.#checkString(this.#offset + i + 1);
        }
        continue;
      }
      if (state === ESCAPE) {
        state = STRING;
        continue;
      }
      if (state === SCALAR) {
        // a number or literal goes on while letters, digits, '+', '-' or '.' follow
        if (
          (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) ||
          c === 0x2d || c === 0x2b || c === 0x2e
        ) continue;
        state = OUTSIDE;
      }
      switch (c) {
        case 0x20: // whitespace, ',' and ':' separate; they allocate nothing
        case 0x09:
        case 0x0a:
        case 0x0d:
        case 0x2c:
        case 0x3a:
          continue;
        case 0x5d: // ']' and '}'
        case 0x7d:
          depth--;
          continue;
        case 0x5b: // '[' and '{'
        case 0x7b:
          if (++depth > this.maxDepth) {
            throw tooComplex(`The JSON body is nested deeper than ${this.maxDepth} levels.`, {
              limit_depth: this.maxDepth,
            });
          }
          break;
        case 0x22:
          state = STRING;
          this.#stringStart = this.#offset + i;
          break;
        default: // anything else starts a number or literal (or is junk JSON.parse will refuse)
          state = SCALAR;
      }
      if (++values > this.maxValues) {
        throw tooComplex(`The JSON body holds more than ${this.maxValues} values.`, {
          limit_values: this.maxValues,
        });
      }
    }
    this.#state = state;
    this.values = values;
    this.#depth = depth;
    this.#offset += bytes.length;
    if (state === STRING || state === ESCAPE) this.#checkString(this.#offset);
  }
}
