// Unit tests of the deployment defaults (platform.md): the pool size, the overdue timers' switch.
import assert from "node:assert/strict";
import { dueTimersEnabled, runDueTimers } from "../../functions/task-operations/due_timers.ts";
import type { Context } from "../../functions/_shared/dispatcher.ts";
import { isLoopbackUrl, poolMax } from "../../functions/_shared/env.ts";

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  const set = (k: string, v: string | undefined) =>
    v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  for (const [k, v] of Object.entries(vars)) set(k, v);
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) set(k, v);
  }
}

Deno.test("DUE_TIMERS=off: claims never run the overdue timers (no database call)", async () => {
  assert.equal(withEnv({ DUE_TIMERS: undefined }, dueTimersEnabled), true, "on by default");
  assert.equal(withEnv({ DUE_TIMERS: "OFF" }, dueTimersEnabled), false);
  const ctx = {
    caller: { role: "service_role", userId: null },
    requestId: "r",
  } as unknown as Context;
  // with DUE_TIMERS=off nothing is asked of the database (there is none to ask here)
  const result = await withEnv({ DUE_TIMERS: "off" }, () => runDueTimers(ctx));
  assert.equal(result, null);
});

Deno.test("DB_POOL_MAX: 3 by default on a project (SUPABASE_URL not this machine), 10 locally", () => {
  const pool = (SUPABASE_URL?: string, DB_POOL_MAX?: string) =>
    withEnv({ SUPABASE_URL, DB_POOL_MAX }, poolMax);
  assert.equal(pool("https://abcdefghijklmnopqrst.supabase.co"), 3);
  assert.equal(pool("http://kong:8000"), 3, "the CLI's local stack: a container network");
  assert.equal(pool(undefined), 10);
  assert.equal(pool("http://127.0.0.1:54321"), 10);
  assert.equal(pool("http://localhost:54321"), 10);
  assert.equal(pool("http://[::1]:54321"), 10);
  assert.equal(pool("https://abcdefghijklmnopqrst.supabase.co", "8"), 8, "DB_POOL_MAX wins");
  assert.equal(pool("https://abcdefghijklmnopqrst.supabase.co", "0"), 3, "never 0");
  assert.equal(isLoopbackUrl("not a url"), false);
});
