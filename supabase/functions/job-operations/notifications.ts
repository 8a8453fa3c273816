// Delivery of the notification outbox (job_service.notifications) to the webhook configured with
// NOTIFY_WEBHOOK_URL, run by runMaintenance. Each try is claimed in the database before the HTTP
// call (SKIP LOCKED, with a lease longer than the call can take) and its outcome recorded after it,
// so two runners never send the same notification at once. A body is
// `{ id, type, job_id, user_id, created_at, payload }`, signed as Standard Webhooks says (npm
// `standardwebhooks`, the scheme of Supabase's auth hooks): `webhook-id` (the notification id, the
// same on every try), `webhook-timestamp` (seconds, the time of this try) and `webhook-signature`
// (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with each `whsec_` secret of
// NOTIFY_WEBHOOK_SECRET), so a receiver refuses a captured delivery replayed later.
// `x-notification-id` stays as an alias of `webhook-id`. A non-2xx answer, a redirect, a network
// error or a time-out is a failed try, retried with exponential backoff until NOTIFY_MAX_ATTEMPTS
// tries have failed.
import { Webhook } from "standardwebhooks";
import * as db from "../_shared/sql_api.ts";
import { env, intEnv } from "../_shared/env.ts";
import type { NotificationBody } from "../_shared/operations_schemas.ts";
import type { ClaimedNotification, DeliveryCounts } from "../_shared/sql_answers.ts";

export interface WebhookConfig {
  url: string;
  /** One `whsec_<base64>` secret, or several separated by spaces while rotating. */
  secret: string;
  /** A try that takes longer fails (ms). */
  timeoutMs: number;
  /** Tries in total before a notification is marked failed. */
  maxAttempts: number;
  /** Wait after the first failed try (ms); doubles with each further failure. */
  retryBaseMs: number;
  /** Cap of the wait between tries (ms). */
  retryMaxMs: number;
  /** Notifications sent at once (and claimed per batch). */
  concurrency: number;
}

export const WEBHOOK_DEFAULTS = {
  timeoutMs: 10_000,
  maxAttempts: 8,
  retryBaseMs: 30_000,
  retryMaxMs: 3_600_000,
  concurrency: 10,
} as const;

interface Outcome {
  id: string;
  ok: boolean;
  error?: string;
}

export type { DeliveryCounts };

export type ConfigProblem = { problem: string };

/**
 * The webhook configuration from the environment: null when NOTIFY_WEBHOOK_URL is not set
 * (notifications stay pending), a problem when it is set but unusable (no secret, not http(s)).
 */
export function webhookConfigFromEnv(): WebhookConfig | null | ConfigProblem {
  const url = env("NOTIFY_WEBHOOK_URL");
  if (url === undefined) return null;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { problem: "NOTIFY_WEBHOOK_URL is not a URL" };
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    return { problem: "NOTIFY_WEBHOOK_URL must be an http(s) URL" };
  }
  const secret = env("NOTIFY_WEBHOOK_SECRET");
  if (secret === undefined) {
    return { problem: "NOTIFY_WEBHOOK_SECRET is not set (deliveries would be unsigned)" };
  }
  const problem = webhookSecretProblem(secret);
  if (problem !== null) return { problem };
  const positive = (name: string, fallback: number) => Math.max(1, intEnv(name, fallback));
  return {
    url,
    secret,
    timeoutMs: positive("NOTIFY_TIMEOUT_MS", WEBHOOK_DEFAULTS.timeoutMs),
    maxAttempts: positive("NOTIFY_MAX_ATTEMPTS", WEBHOOK_DEFAULTS.maxAttempts),
    retryBaseMs: intEnv("NOTIFY_RETRY_BASE_MS", WEBHOOK_DEFAULTS.retryBaseMs),
    retryMaxMs: intEnv("NOTIFY_RETRY_MAX_MS", WEBHOOK_DEFAULTS.retryMaxMs),
    concurrency: Math.min(100, positive("NOTIFY_CONCURRENCY", WEBHOOK_DEFAULTS.concurrency)),
  };
}

/** Standard Webhooks' advice for a signing key: 24 to 64 random bytes. */
const MIN_SECRET_BYTES = 24;
const MAX_SECRET_BYTES = 64;
const SECRET_FORM = /^whsec_[A-Za-z0-9+/]+={0,2}$/;
const SECRET_ADVICE = "a Standard Webhooks secret whsec_<base64 of 24 to 64 random bytes>, " +
  "e.g. whsec_$(openssl rand -base64 32); several separated by spaces while rotating";

/** Why NOTIFY_WEBHOOK_SECRET cannot sign (null when every secret in it can). */
export function webhookSecretProblem(value: string): string | null {
  const secrets = value.trim().split(/\s+/).filter((s) => s !== "");
  if (secrets.length === 0) return `NOTIFY_WEBHOOK_SECRET is empty: set ${SECRET_ADVICE}`;
  for (const [i, secret] of secrets.entries()) {
    const which = secrets.length > 1 ? ` (secret ${i + 1})` : "";
    if (!SECRET_FORM.test(secret) || secret.length % 4 !== 2) {
      // a secret of the former x-signature scheme (any string) lands here: docs/operations.md
      return `NOTIFY_WEBHOOK_SECRET${which} is not ${SECRET_ADVICE}`;
    }
    const bytes = atob(secret.slice("whsec_".length)).length;
    if (bytes < MIN_SECRET_BYTES || bytes > MAX_SECRET_BYTES) {
      return `NOTIFY_WEBHOOK_SECRET${which} holds ${bytes} bytes: set ${SECRET_ADVICE}`;
    }
  }
  return null;
}

/**
 * Signs notification bodies as Standard Webhooks says, with every secret of a configuration
 * (one `v1,` signature each, separated by spaces: a receiver that knows any of them verifies).
 */
export class NotificationSigner {
  readonly #webhooks: Webhook[];

  constructor(secrets: string) {
    this.#webhooks = secrets.trim().split(/\s+/).map((s) => new Webhook(s));
  }

  /** The three Standard Webhooks headers of one try of `body`, signed at `at`. */
  headers(id: string, body: string, at: Date = new Date()): Record<string, string> {
    // whole seconds: the timestamp header and the signed content must say the same second
    const when = new Date(Math.floor(at.getTime() / 1000) * 1000);
    return {
      "webhook-id": id,
      "webhook-timestamp": String(when.getTime() / 1000),
      "webhook-signature": this.#webhooks.map((w) => w.sign(id, when, body)).join(" "),
    };
  }
}

/** The raw body of a notification: its fields in the documented order, compact JSON. */
export function notificationBody(n: NotificationBody): string {
  return JSON.stringify({
    id: n.id,
    type: n.type,
    job_id: n.job_id,
    user_id: n.user_id,
    created_at: n.created_at,
    payload: n.payload,
  });
}

async function readSome(res: Response, maxBytes: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < maxBytes) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  return new TextDecoder().decode(all.subarray(0, maxBytes)).replace(/\s+/g, " ").trim();
}

/** One try: POST the signed body; ok only for a 2xx answer within the time-out. */
export async function sendNotification(
  config: WebhookConfig,
  n: ClaimedNotification,
  signer: NotificationSigner = new NotificationSigner(config.secret),
): Promise<Outcome> {
  const body = notificationBody(n);
  try {
    const res = await fetch(config.url, {
      method: "POST",
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(config.timeoutMs),
      headers: {
        "content-type": "application/json",
        "user-agent": "batch-job-service-notifications/1",
        // signed when the try starts: a retry carries a fresh timestamp and signature, the same id
        ...signer.headers(n.id, body),
        "x-notification-id": n.id,
        "x-notification-type": n.type,
        "x-notification-attempt": String(n.attempt),
      },
    });
    if (res.status >= 200 && res.status < 300) {
      await res.body?.cancel().catch(() => {});
      return { id: n.id, ok: true };
    }
    const text = await readSome(res, 200).catch(() => "");
    return { id: n.id, ok: false, error: `HTTP ${res.status}${text ? `: ${text}` : ""}` };
  } catch (error) {
    const name = error instanceof Error ? error.name : "";
    if (name === "TimeoutError" || name === "AbortError") {
      return { id: n.id, ok: false, error: `timed out after ${config.timeoutMs} ms` };
    }
    const message = error instanceof Error ? error.message : String(error);
    return { id: n.id, ok: false, error: `network error: ${message}`.slice(0, 500) };
  }
}

function logDelivery(entry: Record<string, unknown>): void {
  if (env("LOG_LEVEL") === "silent") return;
  console.log(JSON.stringify({ time: new Date().toISOString(), msg: "notification", ...entry }));
}

/**
 * Sends due notifications until none is due or the deadline would be passed by another try.
 * Safe to run concurrently with itself: each runner sends only what it claimed.
 */
export async function deliverNotifications(
  config: WebhookConfig,
  options: { deadline: number; run?: string },
): Promise<DeliveryCounts> {
  const run = options.run ?? crypto.randomUUID();
  const signer = new NotificationSigner(config.secret);
  const counts: DeliveryCounts = { delivered: 0, retrying: 0, failed: 0 };
  // the claim outlives the slowest call of the batch by a wide margin
  const leaseMs = 2 * config.timeoutMs + 30_000;
  const policy = {
    max_attempts: config.maxAttempts,
    retry_base_ms: config.retryBaseMs,
    retry_max_ms: config.retryMaxMs,
  };
  while (Date.now() + config.timeoutMs <= options.deadline) {
    const claimed = await db.claimNotifications({
      run,
      limit: config.concurrency,
      lease_ms: leaseMs,
      max_attempts: config.maxAttempts,
    });
    if (claimed.length === 0) break;
    const outcomes = await Promise.all(claimed.map((n) => sendNotification(config, n, signer)));
    const recorded = await db.finishNotifications({ run, outcomes, policy });
    counts.delivered += recorded.delivered;
    counts.retrying += recorded.retrying;
    counts.failed += recorded.failed;
    for (const o of outcomes) {
      if (o.ok) continue;
      const n = claimed.find((c) => c.id === o.id)!;
      logDelivery({
        level: n.attempt >= config.maxAttempts ? "error" : "warn",
        notification_id: n.id,
        type: n.type,
        job_id: n.job_id,
        attempt: n.attempt,
        max_attempts: config.maxAttempts,
        error: o.error,
      });
    }
    if (claimed.length < config.concurrency) break;
  }
  return counts;
}

export interface NotificationStepResult extends DeliveryCounts {
  purged: number;
}

/**
 * runMaintenance's notification step: delivery (when a webhook is configured; without one the
 * notifications stay pending), then the purge of delivered and failed ones past the retention.
 */
export async function runNotificationStep(
  options: { deadline: number; retentionDays: number; run?: string },
): Promise<NotificationStepResult> {
  const config = webhookConfigFromEnv();
  let counts: DeliveryCounts = { delivered: 0, retrying: 0, failed: 0 };
  if (config !== null && "problem" in config) {
    logDelivery({ level: "error", error: `notifications not sent: ${config.problem}` });
  } else if (config !== null) {
    counts = await deliverNotifications(config, options);
  }
  let purged = 0;
  for (;;) {
    const n = await db.purgeNotifications({ retention_days: options.retentionDays, limit: 500 });
    purged += n;
    if (n < 500 || Date.now() > options.deadline) break;
  }
  return { ...counts, purged };
}
