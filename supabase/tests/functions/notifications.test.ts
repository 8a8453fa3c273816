// Notification delivery against a real HTTP receiver: bodies signed as Standard Webhooks says (and
// verified here with the `standardwebhooks` library, a replay refused), one delivery per
// notification even with maintenance runs (and bare delivery runners) racing, retries with backoff,
// time-outs, giving up, no webhook configured or a secret of the old form, pg_notify, retention.
import assert from "node:assert/strict";
import postgres from "postgres";
import { asService, asUser, type Caller, serviceToken, test, testDb } from "../helpers/service.ts";
import { claim, createJob, runMaintenance, sleep, tasks, update } from "../helpers/jobs.ts";
import { spawnServer } from "../../../scripts/lib/server_process.ts";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import {
  deliverNotifications,
  NotificationSigner,
  type WebhookConfig,
  webhookSecretProblem,
} from "../../functions/job-operations/notifications.ts";
import { type Notification, notificationReceiver } from "../../../examples/webhook_receiver.ts";
import { NotificationBody } from "../../functions/_shared/operations_schemas.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";

/** A Standard Webhooks secret: whsec_ and the base64 of 32 random bytes. */
function newSecret(): string {
  return `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
}
const SECRET = newSecret();

/** The delivery settings of these tests: the receiver's URL, the test secret, quick retries. */
function webhookConfig(url: string, overrides: Partial<WebhookConfig> = {}): WebhookConfig {
  return {
    url,
    secret: SECRET,
    timeoutMs: 5000,
    maxAttempts: 3,
    retryBaseMs: 100,
    retryMaxMs: 1000,
    concurrency: 10,
    ...overrides,
  };
}
const DB_URL = Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL;

interface Received {
  headers: Headers;
  raw: string;
  body: Record<string, unknown>;
  answered: number | "hang";
  at: number;
}

type Answer = number | "hang";

/** A webhook receiver on a free port; `answer` decides each request's fate from its try count. */
function receiver(
  answer: (body: Record<string, unknown>, tryNumber: number) => Answer = () => 200,
) {
  const received: Received[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const raw = await req.text();
    const body = JSON.parse(raw);
    const tries = received.filter((r) => r.body.id === body.id).length + 1;
    const decision = answer(body, tries);
    received.push({ headers: req.headers, raw, body, answered: decision, at: Date.now() });
    if (decision === "hang") {
      await sleep(1500);
      return new Response("too late", { status: 200 });
    }
    return new Response(decision < 300 ? "ok" : "receiver says no", { status: decision });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hooks/batch-jobs`,
    received,
    forJob: (jobId: string) => received.filter((r) => r.body.job_id === jobId),
    close: () => server.shutdown(),
  };
}

/**
 * An independent Standard Webhooks signature (WebCrypto, not the library): base64 HMAC-SHA256 of
 * "id.timestamp.body" with the secret's decoded bytes.
 */
async function standardSignature(secret: string, id: string, timestamp: string, raw: string) {
  const bytes = Uint8Array.from(atob(secret.slice("whsec_".length)), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey(
    "raw",
    bytes,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const content = new TextEncoder().encode(`${id}.${timestamp}.${raw}`);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, content));
  return `v1,${btoa(String.fromCharCode(...mac))}`;
}

/** What a receiver does with the library: the parsed body, or the library's refusal. */
function verify(secret: string, raw: string, headers: Headers | Record<string, string>) {
  const plain = headers instanceof Headers ? Object.fromEntries(headers) : headers;
  try {
    return { ok: true as const, body: new Webhook(secret).verify(raw, plain) };
  } catch (error) {
    assert.ok(error instanceof WebhookVerificationError, String(error));
    return { ok: false as const, refusal: error.message };
  }
}

/** Runs `f` with the clock `ms` ahead (Date.now, which the library reads), then puts it back. */
async function later<T>(ms: number, f: () => T | Promise<T>): Promise<T> {
  const now = Date.now;
  Date.now = () => now() + ms;
  try {
    return await f();
  } finally {
    Date.now = now;
  }
}

/** A job failed for good (a code its retry policy does not retry): one job.failed notification. */
async function failJob(user: Caller) {
  const job = await createJob(user);
  assert.equal((await update(user, { job_id: job.id, status: "running" })).status, 200);
  const res = await update(user, {
    job_id: job.id,
    status: "failed",
    error_details: { code: "INVALID_PAYLOAD", message: "cannot parse the template" },
  });
  assert.equal(res.data.status, "failed");
  const rows = await testDb()`select id from notifications where job_id = ${job.id}`;
  assert.equal(rows.length, 1);
  return { job, notificationId: rows[0].id as string };
}

async function notification(id: string) {
  const [row] = await testDb()`
    select status, attempts, last_error, delivered_at, claimed_by, next_attempt_at
    from notifications where id = ${id}`;
  return row;
}

test("a job failing for good: exactly one signed delivery, with two maintenance runs at once and the receiver failing once", async () => {
  const hook = receiver((_body, tries) => (tries === 1 ? 500 : 200));
  const server = await spawnServer({
    SUPABASE_DB_URL: DB_URL,
    LOG_LEVEL: "silent",
    NOTIFY_WEBHOOK_URL: hook.url,
    NOTIFY_WEBHOOK_SECRET: SECRET,
    NOTIFY_RETRY_BASE_MS: "300",
  });
  try {
    const user = await asUser();
    const { job, notificationId } = await failJob(user);
    const token = await serviceToken();
    const maintain = async () => {
      const res = await fetch(`${server.url}/functions/v1/job-operations`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ action: "runMaintenance", data: {} }),
      });
      assert.equal(res.status, 200);
      return (await res.json()).data as Record<string, number | boolean>;
    };

    const answers: Record<string, number | boolean>[] = [];
    const deadline = Date.now() + 20_000;
    while ((await notification(notificationId)).status === "pending") {
      assert.ok(Date.now() < deadline, "the notification was not delivered in time");
      answers.push(...await Promise.all([maintain(), maintain()]));
      await sleep(100);
    }
    // more runs, two at a time: nothing is sent again
    for (let i = 0; i < 3; i++) answers.push(...await Promise.all([maintain(), maintain()]));

    const tries = hook.forJob(job.id);
    assert.deepEqual(tries.map((t) => t.answered), [500, 200], "one failed try, one delivery");
    for (const [i, t] of tries.entries()) {
      assert.equal(t.headers.get("webhook-id"), notificationId, "same id on every try");
      assert.equal(t.headers.get("x-notification-id"), notificationId, "the alias of webhook-id");
      assert.equal(t.headers.get("x-notification-attempt"), String(i + 1));
      assert.equal(t.headers.get("content-type"), "application/json");
      assert.equal(t.headers.get("x-signature"), null, "the former scheme is gone");
      const timestamp = t.headers.get("webhook-timestamp")!;
      assert.match(timestamp, /^\d{10}$/);
      assert.ok(Math.abs(Number(timestamp) * 1000 - t.at) < 2000, "signed when sent");
      assert.equal(
        t.headers.get("webhook-signature"),
        await standardSignature(SECRET, notificationId, timestamp, t.raw),
      );
      assert.deepEqual(verify(SECRET, t.raw, t.headers), { ok: true, body: t.body });
      assert.deepEqual(Object.keys(t.body), [
        "id",
        "type",
        "job_id",
        "user_id",
        "created_at",
        "payload",
      ]);
      const body = NotificationBody.parse(t.body);
      assert.equal(body.id, notificationId);
      assert.equal(body.type, "job.failed");
      assert.equal(body.user_id, user.userId);
      assert.equal(
        (body.payload.last_error as { code: string }).code,
        "INVALID_PAYLOAD",
      );
    }
    assert.equal(tries[0].raw, tries[1].raw, "the same bytes on every try");

    const row = await notification(notificationId);
    assert.equal(row.status, "delivered");
    assert.equal(row.attempts, 2);
    assert.match(row.last_error, /^HTTP 500/, "the failed try is recorded");
    assert.ok(row.delivered_at);
    assert.equal(row.claimed_by, null);
    assert.ok(answers.some((a) => a.ran === true && (a.notifications_retrying as number) >= 1));
    assert.ok(answers.some((a) => a.ran === true && (a.notifications_delivered as number) >= 1));
  } finally {
    await server.stop();
    await hook.close();
  }
});

test("delivery is safe without the maintenance lease: racing runners never send one twice", async () => {
  const hook = receiver();
  const config = webhookConfig(hook.url, { concurrency: 2 });
  try {
    const user = await asUser();
    const failed = [];
    for (let i = 0; i < 8; i++) failed.push(await failJob(user));
    const deadline = Date.now() + 15_000;
    const runs = await Promise.all(
      [1, 2, 3].map(() => deliverNotifications(config, { deadline })),
    );
    for (const { job, notificationId } of failed) {
      assert.equal(hook.forJob(job.id).length, 1, `job ${job.id} was sent once`);
      const row = await notification(notificationId);
      assert.equal(row.status, "delivered");
      assert.equal(row.attempts, 1);
    }
    const delivered = runs.reduce((n, r) => n + r.delivered, 0);
    assert.equal(delivered, new Set(hook.received.map((r) => r.body.id)).size);
    assert.equal(delivered, hook.received.length, "no notification was received twice");
  } finally {
    await hook.close();
  }
});

test("a receiver that keeps failing: retried with backoff, a time-out is a failure, then failed for good", async () => {
  const watched = new Set<string>();
  const hook = receiver((body, tries) =>
    watched.has(body.job_id as string) ? (tries === 2 ? "hang" : 503) : 200
  );
  const config = webhookConfig(hook.url, { timeoutMs: 300, retryMaxMs: 150 });
  try {
    const user = await asUser();
    const { job, notificationId } = await failJob(user);
    watched.add(job.id);
    const errors = new Set<string>();
    const deadline = Date.now() + 15_000;
    for (;;) {
      await deliverNotifications(config, { deadline: Date.now() + 5000 });
      const row = await notification(notificationId);
      if (row.last_error) errors.add(row.last_error);
      if (row.status !== "pending") break;
      assert.ok(Date.now() < deadline, "never given up");
      await sleep(30);
    }
    const tries = hook.forJob(job.id);
    assert.deepEqual(tries.map((t) => t.answered), [503, "hang", 503]);
    assert.deepEqual(tries.map((t) => t.headers.get("x-notification-attempt")), ["1", "2", "3"]);
    assert.ok(tries.every((t) => t.headers.get("x-notification-id") === notificationId));
    assert.ok(tries[1].at - tries[0].at >= 100, "waits retry_base before the second try");
    assert.ok(tries[2].at - tries[1].at >= 300 + 150, "time-out, then the capped backoff");
    assert.ok([...errors].some((e) => e === "timed out after 300 ms"), [...errors].join(" | "));
    const row = await notification(notificationId);
    assert.equal(row.status, "failed");
    assert.equal(row.attempts, 3);
    assert.match(row.last_error, /^HTTP 503: receiver says no$/);
    assert.equal(row.delivered_at, null);
    // given up: never sent again
    await deliverNotifications(config, { deadline: Date.now() + 2000 });
    assert.equal(hook.forJob(job.id).length, 3);
  } finally {
    await hook.close();
  }
});

test("a try whose runner died is tried again after its lease; with no try left it is failed", async () => {
  const hook = receiver();
  const config = webhookConfig(hook.url, { timeoutMs: 2000, maxAttempts: 2, retryMaxMs: 100 });
  try {
    const user = await asUser();
    const { job, notificationId } = await failJob(user);
    const sql = testDb();
    // a runner claimed it twice and vanished both times (its lease has run out)
    await sql`update notifications set attempts = 2, claimed_by = ${crypto.randomUUID()},
                next_attempt_at = now() - interval '1 second' where id = ${notificationId}`;
    await deliverNotifications(config, { deadline: Date.now() + 3000 });
    const row = await notification(notificationId);
    assert.equal(row.status, "failed");
    assert.match(row.last_error, /did not report back/);
    assert.equal(hook.forJob(job.id).length, 0);

    const second = await failJob(user);
    await sql`update notifications set attempts = 1, claimed_by = ${crypto.randomUUID()},
                next_attempt_at = now() - interval '1 second' where id = ${second.notificationId}`;
    await deliverNotifications(config, { deadline: Date.now() + 3000 });
    assert.equal((await notification(second.notificationId)).status, "delivered");
    assert.equal(hook.forJob(second.job.id).length, 1);
  } finally {
    await hook.close();
  }
});

test("without NOTIFY_WEBHOOK_URL notifications stay pending", async () => {
  const user = await asUser();
  const { notificationId } = await failJob(user);
  const ran = await runMaintenance();
  assert.equal(ran.notifications_delivered, 0);
  assert.equal(ran.notifications_retrying, 0);
  const row = await notification(notificationId);
  assert.equal(row.status, "pending");
  assert.equal(row.attempts, 0);
});

/** Listens on batch_job_notifications; `of(jobId, n)` waits (up to 1 s) for n messages about a job. */
async function announcements() {
  const listener = postgres(DB_URL, { max: 1, onnotice: () => {} });
  const messages: Record<string, unknown>[] = [];
  await listener.listen("batch_job_notifications", (payload) => {
    messages.push(JSON.parse(payload));
  });
  const mine = (jobId: string) => messages.filter((m) => m.job_id === jobId);
  return {
    async of(jobId: string, n: number) {
      for (let i = 0; i < 50 && mine(jobId).length < n; i++) await sleep(20);
      return mine(jobId).sort((a, b) => String(a.type).localeCompare(String(b.type)));
    },
    end: () => listener.end({ timeout: 5 }),
  };
}

test("failing a job announces the notification on channel batch_job_notifications", async () => {
  const channel = await announcements();
  try {
    const user = await asUser();
    const { job, notificationId } = await failJob(user);
    assert.deepEqual(await channel.of(job.id, 1), [{
      id: notificationId,
      type: "job.failed",
      job_id: job.id,
    }]);
  } finally {
    await channel.end();
  }
});

test("every announcement on batch_job_notifications carries its outbox id: resource limit, lost worker", async () => {
  const channel = await announcements();
  try {
    const service = await asService();
    const job = await createJob(service, {
      tasks: tasks(2),
      resource_limits: { max_memory: 100, max_cpu: 4 },
      retry_config: { max_attempts: 2, retry_interval: 0, retry_on_errors: ["WORKER_LOST"] },
    });
    const [t] = await claim("w-announced", 1, { job_id: job.id, lease_ms: 1_000 });
    await service.task("heartbeat", {
      worker_id: "w-announced",
      tasks: [{ task_id: t.task_id, usage: { memory: 150, cpu: 1 } }],
    });
    await sleep(1_100);
    await runMaintenance(); // the lease expired: task.worker_lost
    const rows = await testDb()`select id, type from notifications where job_id = ${job.id}`;
    const expected = rows.map((r) => ({ id: r.id, type: r.type, job_id: job.id }))
      .sort((a, b) => a.type.localeCompare(b.type));
    assert.deepEqual(expected.map((e) => e.type), [
      "job.resource_limit_exceeded",
      "task.worker_lost",
    ]);
    assert.deepEqual(await channel.of(job.id, 2), expected);
  } finally {
    await channel.end();
  }
});

test("retention purges delivered and failed notifications, never pending ones", async () => {
  const sql = testDb();
  const jobId = crypto.randomUUID();
  const userId = crypto.randomUUID();
  const rows = await sql`
    insert into notifications (type, job_id, user_id, status, created_at, delivered_at)
    values ('job.failed', ${jobId}, ${userId}, 'delivered', now() - interval '40 days', now()),
           ('job.failed', ${jobId}, ${userId}, 'failed', now() - interval '40 days', null),
           ('job.failed', ${jobId}, ${userId}, 'pending', now() - interval '40 days', null),
           ('job.failed', ${jobId}, ${userId}, 'delivered', now() - interval '20 days', now())
    returning id, status`;
  const ran = await runMaintenance({ retention_days: 30 });
  assert.ok((ran.notifications_purged as number) >= 2);
  const left = await sql`select status, created_at < now() - interval '30 days' as old
                         from notifications where job_id = ${jobId} order by status`;
  assert.deepEqual(left.map((r) => [r.status, r.old]), [["delivered", false], ["pending", true]]);
  assert.equal(rows.length, 4);
  await sql`delete from notifications where job_id = ${jobId}`;
});

test("Standard Webhooks: the library verifies a delivery and refuses a replay past its tolerance", async () => {
  const hook = receiver();
  const config = webhookConfig(hook.url);
  try {
    const { job, notificationId } = await failJob(await asUser());
    // room for a call of timeoutMs (5 s) after the clock has moved on: with a deadline of exactly
    // 5 s the run sent nothing whenever a millisecond passed before its first check
    await deliverNotifications(config, { deadline: Date.now() + 15_000 });
    const [captured] = hook.forJob(job.id);
    assert.equal(captured.headers.get("webhook-id"), notificationId);
    const headers = Object.fromEntries(captured.headers);

    // what the example receiver (docs/operations.md) answers to the delivery and to replays of it
    const handled: Notification[] = [];
    const receive = notificationReceiver(SECRET, (n) => handled.push(n));
    const send = (h: Record<string, string>, raw = captured.raw) =>
      receive(new Request(hook.url, { method: "POST", headers: h, body: raw }));
    assert.equal((await send(headers)).status, 204);
    assert.equal((await send(headers)).status, 204, "a resend within the tolerance is accepted");
    assert.deepEqual(handled.map((n) => n.id), [notificationId], "and handled once (webhook-id)");

    // a captured delivery replayed more than five minutes later: refused by the library
    assert.equal(await later(4 * 60_000, () => verify(SECRET, captured.raw, headers).ok), true);
    assert.deepEqual(await later(5 * 60_000 + 2000, () => verify(SECRET, captured.raw, headers)), {
      ok: false,
      refusal: "Message timestamp too old",
    });
    const replayed = await later(10 * 60_000, () => send(headers));
    assert.equal(replayed.status, 401);
    assert.equal(await replayed.text(), "Message timestamp too old");
    // ... and with its timestamp moved to now, the signature no longer matches
    const fresh = { ...headers, "webhook-timestamp": String(Math.floor(Date.now() / 1000) + 1) };
    assert.deepEqual(verify(SECRET, captured.raw, fresh), {
      ok: false,
      refusal: "No matching signature found",
    });
    assert.equal((await send(fresh)).status, 401);
    // a changed body, another secret, a missing header
    assert.equal(
      verify(SECRET, captured.raw.replace("job.failed", "job.failex"), headers).ok,
      false,
    );
    assert.equal(verify(newSecret(), captured.raw, headers).ok, false);
    const { "webhook-signature": _signature, ...unsigned } = headers;
    assert.deepEqual(verify(SECRET, captured.raw, unsigned), {
      ok: false,
      refusal: "Missing required headers",
    });
    assert.equal(handled.length, 1);
  } finally {
    await hook.close();
  }
});

Deno.test("signing with two secrets while rotating: a receiver that knows either one verifies", () => {
  const [before, after] = [newSecret(), newSecret()];
  const body = '{"id":"n1","type":"job.failed"}';
  const headers = new NotificationSigner(`${before} ${after}`).headers("n1", body);
  assert.equal(headers["webhook-signature"].split(" ").length, 2);
  assert.ok(headers["webhook-signature"].split(" ").every((s) => s.startsWith("v1,")));
  assert.equal(verify(before, body, headers).ok, true);
  assert.equal(verify(after, body, headers).ok, true);
  assert.equal(verify(newSecret(), body, headers).ok, false);
  // a try signed six minutes ago is old for both
  const old = new NotificationSigner(after).headers("n1", body, new Date(Date.now() - 6 * 60_000));
  assert.deepEqual(verify(after, body, old), { ok: false, refusal: "Message timestamp too old" });
});

Deno.test("NOTIFY_WEBHOOK_SECRET must be whsec_<base64 of 24..64 bytes>: a secret of the old form is refused", () => {
  assert.equal(webhookSecretProblem(SECRET), null);
  assert.equal(webhookSecretProblem(`${SECRET}  ${newSecret()}`), null);
  assert.match(webhookSecretProblem("my-old-hmac-secret")!, /is not a Standard Webhooks secret/);
  assert.match(webhookSecretProblem(SECRET.slice("whsec_".length))!, /is not/);
  assert.match(webhookSecretProblem(`whsec_${btoa("short key")}`)!, /holds 9 bytes/);
  assert.match(webhookSecretProblem(`whsec_${btoa("x".repeat(65))}`)!, /holds 65 bytes/);
  assert.match(webhookSecretProblem("whsec_not base64!")!, /is not/);
  assert.match(webhookSecretProblem(`${SECRET} old-secret`)!, /\(secret 2\) is not/);
  assert.match(webhookSecretProblem(" ")!, /is empty/);
});

test("with a secret of the old form nothing is sent: notifications wait, no try is spent", async () => {
  const hook = receiver();
  const server = await spawnServer({
    SUPABASE_DB_URL: DB_URL,
    LOG_LEVEL: "silent",
    NOTIFY_WEBHOOK_URL: hook.url,
    NOTIFY_WEBHOOK_SECRET: "the-former-x-signature-secret",
  });
  try {
    const { job, notificationId } = await failJob(await asUser());
    const res = await fetch(`${server.url}/functions/v1/job-operations`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${await serviceToken()}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ action: "runMaintenance", data: {} }),
    });
    assert.equal(res.status, 200);
    const ran = (await res.json()).data;
    assert.equal(ran.notifications_delivered, 0);
    assert.equal(hook.forJob(job.id).length, 0);
    const row = await notification(notificationId);
    assert.equal(row.status, "pending");
    assert.equal(row.attempts, 0);
  } finally {
    await server.stop();
    await hook.close();
  }
});
