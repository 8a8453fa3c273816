// The database going away: a killed connection is 503 with Retry-After, nothing is half written,
// and the service recovers without a restart; an unreachable database is 503 as well. Each test
// runs its own server process so that the connections it kills belong to no other test.
import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import { invoke, jobData, test, testDb, userToken } from "../helpers/service.ts";
import { spawnServer } from "../../../scripts/lib/server_process.ts";
import type { BatchJob } from "../../functions/_shared/job_schemas.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";

const DB_URL = Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL;

/** A server whose connections carry a name of their own, so that a test can find (and kill) them. */
async function serverOfItsOwn() {
  const appName = `failure-test-${crypto.randomUUID().slice(0, 8)}`;
  const server = await spawnServer({
    SUPABASE_DB_URL: DB_URL,
    LOG_LEVEL: "silent",
    DB_APPLICATION_NAME: appName,
  });
  return { server, appName };
}

async function userOf(url: string) {
  const userId = crypto.randomUUID();
  const client = createClient(url, await userToken(userId), {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  return {
    userId,
    call: <T>(action: string, data: unknown) =>
      invoke<T>(client, "job-operations", { action, data }),
  };
}

test("a connection killed mid-createJob answers 503 + Retry-After, writes nothing, and the next call works", async () => {
  const { server, appName } = await serverOfItsOwn();
  const db = testDb();
  try {
    const user = await userOf(server.url);
    const key = `blocked-${crypto.randomUUID()}`;
    // Hold the idempotency key in an open transaction so the request blocks inside its own.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let holding!: () => void;
    const held = new Promise<void>((resolve) => (holding = resolve));
    const holder = db.begin(async (tx) => {
      await tx`insert into idempotency_keys (user_id, key, request_hash, job_id)
               values (${user.userId}, ${key}, ${"0".repeat(64)}, gen_random_uuid())`;
      holding();
      await released;
      throw new Error("rollback");
    }).catch(() => {});
    try {
      await held;
      const pending = user.call(
        "createJob",
        jobData({ idempotency_key: key, tasks: [{ payload: 1 }] }),
      );
      let victims: { pid: number }[] = [];
      for (let i = 0; i < 100 && victims.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        victims = await db`select pid from pg_stat_activity
                           where application_name = ${appName} and wait_event_type = 'Lock'`;
      }
      assert.equal(victims.length, 1, "the request should be waiting on the held key");
      await db`select pg_terminate_backend(${victims[0].pid})`;

      const res = await pending;
      assert.equal(res.status, 503);
      assert.equal(res.error?.code, "SERVICE_UNAVAILABLE");
      assert.equal(res.headers.get("retry-after"), "1");
      assert.doesNotMatch(JSON.stringify(res.error), /terminat|SQL|postgres/i);
    } finally {
      release();
      await holder;
    }
    const [{ count }] =
      await db`select count(*)::int as count from jobs where user_id = ${user.userId}`;
    assert.equal(count, 0, "nothing half written");

    const again = await user.call<BatchJob>("createJob", jobData({ idempotency_key: key }));
    assert.equal(again.status, 201, "recovered without a restart");
  } finally {
    await server.stop();
  }
});

test("after every pooled connection is killed, one request at most gets 503 and the service recovers by itself", async () => {
  const { server, appName } = await serverOfItsOwn();
  try {
    const user = await userOf(server.url);
    await Promise.all(Array.from({ length: 8 }, () => user.call("listJobs", {})));
    const killed = await testDb()`select pg_terminate_backend(pid) from pg_stat_activity
                                  where application_name = ${appName}`;
    assert.ok(killed.length >= 1);
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await user.call("listJobs", { limit: 1 })).status);
    assert.ok(statuses.every((s) => s === 200 || s === 503), JSON.stringify(statuses));
    // the first lost connection closes the idle ones with it: they died with it
    assert.ok(statuses.filter((s) => s === 503).length <= 1, JSON.stringify(statuses));
    assert.deepEqual(statuses.slice(-5), [200, 200, 200, 200, 200], JSON.stringify(statuses));
  } finally {
    await server.stop();
  }
});

test("a quiet server keeps to its most recently used connection, whatever a burst opened", async () => {
  const { server, appName } = await serverOfItsOwn();
  const db = testDb();
  const lastUse = async () =>
    new Map(
      (await db`select pid, state_change from pg_stat_activity
                where application_name = ${appName}`).map((r) => [r.pid, +r.state_change]),
    );
  try {
    const user = await userOf(server.url);
    await Promise.all(Array.from({ length: 8 }, () => user.call("listJobs", {})));
    const before = await lastUse();
    assert.ok(before.size >= 2, `the burst should open several connections, opened ${before.size}`);
    for (let i = 0; i < 6; i++) assert.equal((await user.call("listJobs", {})).status, 200);
    const after = await lastUse();
    const used = [...after].filter(([pid, at]) => before.get(pid) !== at);
    // first-in, first-out would have used six different connections
    assert.equal(used.length, 1, JSON.stringify(used));
  } finally {
    await server.stop();
  }
});

test("an unreachable database is 503 SERVICE_UNAVAILABLE, not 500", async () => {
  const unreachable = new URL(DB_URL);
  unreachable.port = "1"; // nothing listens there
  const server = await spawnServer({
    SUPABASE_DB_URL: unreachable.toString(),
    LOG_LEVEL: "silent",
  });
  try {
    const user = await userOf(server.url);
    const res = await user.call("createJob", jobData());
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "1");
    assert.equal(res.error?.code, "SERVICE_UNAVAILABLE");
  } finally {
    await server.stop();
  }
});
