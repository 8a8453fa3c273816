// The JSON guard counts exactly what JSON.parse would build (every value, every object key) and
// the deepest nesting, whatever the whitespace and however the bytes are cut into chunks; it
// refuses at the first byte past a bound, and junk never makes it throw anything but its 413.
import assert from "node:assert/strict";
import fc from "fast-check";
import { JsonGuard } from "../../functions/_shared/json_guard.ts";
import { ApiError } from "../../functions/_shared/errors.ts";

function valuesIn(value: unknown): number {
  if (Array.isArray(value)) return value.reduce((n: number, item) => n + valuesIn(item), 1);
  if (value !== null && typeof value === "object") {
    return Object.values(value).reduce((n: number, item) => n + 1 + valuesIn(item), 1);
  }
  return 1;
}

function nesting(value: unknown): number {
  if (value === null || typeof value !== "object") return 0;
  return 1 + Math.max(0, ...Object.values(value).map(nesting));
}

function longestString(value: unknown): number {
  if (typeof value === "string") return new TextEncoder().encode(JSON.stringify(value)).length;
  if (value === null || typeof value !== "object") return 0;
  const keys = Array.isArray(value) ? [] : Object.keys(value);
  return Math.max(0, ...[...keys, ...Object.values(value)].map(longestString));
}

/** Feeds `bytes` cut at `cuts`; returns the guard, or the 413 it threw. */
function scan(bytes: Uint8Array, cuts: number[], bounds: [number, number, number]) {
  const guard = new JsonGuard(...bounds);
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  try {
    let start = 0;
    for (const end of [...points, bytes.length]) {
      guard.feed(bytes.subarray(start, end));
      start = end;
    }
    return guard;
  } catch (error) {
    assert.ok(error instanceof ApiError && error.status === 413, String(error));
    return error.details as Record<string, number>;
  }
}

const json = fc.tuple(
  fc.jsonValue({ maxDepth: 6, stringUnit: "binary" }),
  fc.constantFrom(undefined, 0, 1, 2, "\t", " \n "),
  fc.array(fc.nat(), { maxLength: 6 }),
);
const encode = (value: unknown, indent: string | number | undefined) =>
  new TextEncoder().encode(JSON.stringify(value, null, indent));
const roomy: [number, number, number] = [1e9, 1e9, 1e9];

Deno.test("the guard counts every value and key, whatever the whitespace and chunks", () => {
  fc.assert(
    fc.property(json, ([value, indent, cuts]) => {
      const guard = scan(encode(value, indent), cuts, roomy);
      assert.ok(guard instanceof JsonGuard);
      assert.equal(guard.values, valuesIn(value));
    }),
    { numRuns: 500 },
  );
});

Deno.test("the guard refuses one value, one level or one string byte past its bounds, and not before", () => {
  fc.assert(
    fc.property(json, ([value, indent, cuts]) => {
      const bytes = encode(value, indent);
      const [values, depth, string] = [valuesIn(value), nesting(value), longestString(value)];
      assert.ok(scan(bytes, cuts, [values, depth, Math.max(string, 1)]) instanceof JsonGuard);
      assert.deepEqual(scan(bytes, cuts, [values - 1, 1e9, 1e9]), { limit_values: values - 1 });
      if (depth > 0) {
        assert.deepEqual(scan(bytes, cuts, [1e9, depth - 1, 1e9]), { limit_depth: depth - 1 });
      }
      if (string > 0) {
        assert.deepEqual(scan(bytes, cuts, [1e9, 1e9, string - 1]), {
          limit_string_bytes: string - 1,
        });
      }
    }),
    { numRuns: 500 },
  );
});

Deno.test("the guard takes any bytes: it passes them or throws its 413, never anything else", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat()), (bytes, cuts) => {
      scan(bytes, cuts, [20, 3, 16]);
    }),
    { numRuns: 1000 },
  );
});

Deno.test("a string that never closes is refused once it passes the bound, across chunks", () => {
  const guard = new JsonGuard(10, 10, 1000);
  guard.feed(new TextEncoder().encode(`["${"x".repeat(500)}`));
  assert.throws(() => guard.feed(new TextEncoder().encode("y".repeat(600))), ApiError);
});
