// What hostile-input and security tests check on every error answer: its texts carry no SQL, no
// database internals, no stack trace, no file paths, no connection strings, and no value the test
// marks as secret (another user's data).
import assert from "node:assert/strict";

/** Patterns that must never appear in an error's code, message or detail messages. */
export const LEAK_PATTERNS: RegExp[] = [
  /\b(select|insert|update|delete)\b[\s\S]{0,80}\b(from|into|set|where)\b/i,
  /syntax error|relation "|column "|PL\/pgSQL|SQLSTATE|PostgresError|duplicate key|violates/i,
  /postgres(ql)?:\/\/|\bpg_[a-z_]+\b|\bjob_service(_api)?\.[a-z_]+|\bprivate\.[a-z_]+/i,
  /\n\s+at |\bat [\w.<>]+ \(|\.(ts|js|mjs):\d+|file:\/\/|node_modules|\/root\/|\/work\//,
  /TypeError|ReferenceError|RangeError|Cannot read propert/,
];

/**
 * The texts of an error answer that the service wrote (not the caller's own input echoed back in
 * `details[].path`, which names the caller's keys).
 */
function serviceTexts(body: unknown): string[] {
  const error = (body as { error?: Record<string, unknown> })?.error;
  if (!error) return [];
  const texts = [String(error.code ?? ""), String(error.message ?? "")];
  const details = error.details;
  if (Array.isArray(details)) {
    for (const d of details) {
      if (d && typeof d === "object" && "message" in d) texts.push(String(d.message));
      else texts.push(JSON.stringify(d));
    }
  } else if (details !== undefined) {
    texts.push(JSON.stringify(details));
  }
  return texts;
}

/** Fails when an error answer leaks SQL, internals or a stack trace, or contains a secret. */
export function assertNoLeak(body: unknown, context = "", secrets: string[] = []): void {
  for (const text of serviceTexts(body)) {
    for (const pattern of LEAK_PATTERNS) {
      assert.doesNotMatch(text, pattern, `${context}: the answer leaks ${JSON.stringify(text)}`);
    }
  }
  const whole = JSON.stringify(body);
  for (const secret of secrets) {
    assert.ok(!whole.includes(secret), `${context}: the answer reveals ${secret}`);
  }
}
