// A receiver for the service's notifications (job failed, resource limit exceeded, worker lost), to
// copy. Deliveries are signed as Standard Webhooks says; the `standardwebhooks` library checks the
// signature over "webhook-id.webhook-timestamp.body" and refuses a timestamp more than five minutes
// old (or ahead), so a captured delivery cannot be replayed later. De-duplicate on `webhook-id`:
// a notification whose runner died mid-try is sent again, with the same id.
//
//   NOTIFY_WEBHOOK_SECRET=whsec_... deno run --allow-net --allow-env examples/webhook_receiver.ts
import { Webhook, WebhookVerificationError } from "standardwebhooks";

export interface Notification {
  id: string;
  type: "job.failed" | "job.resource_limit_exceeded" | "task.worker_lost";
  job_id: string;
  user_id: string;
  created_at: string;
  payload: Record<string, unknown>;
}

/** A request handler: 401 for anything not signed with `secret` just now, 204 otherwise. */
export function notificationReceiver(
  secret: string,
  handle: (notification: Notification) => void,
  seen: Set<string> = new Set(), // use your database in production
): (req: Request) => Promise<Response> {
  const webhook = new Webhook(secret);
  return async (req) => {
    const raw = await req.text(); // verify the raw bytes, before parsing
    let notification: Notification;
    try {
      notification = webhook.verify(raw, Object.fromEntries(req.headers)) as Notification;
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error;
      return new Response(error.message, { status: 401 });
    }
    if (!seen.has(notification.id)) {
      seen.add(notification.id);
      handle(notification); // answer quickly: do slow work after the answer
    }
    return new Response(null, { status: 204 });
  };
}

if (import.meta.main) {
  const secret = Deno.env.get("NOTIFY_WEBHOOK_SECRET");
  if (!secret) throw new Error("set NOTIFY_WEBHOOK_SECRET (the service's whsec_... secret)");
  Deno.serve(
    { port: Number(Deno.env.get("PORT") ?? 8787) },
    notificationReceiver(secret, (n) => console.log(JSON.stringify(n))),
  );
}
