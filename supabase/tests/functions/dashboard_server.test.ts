// The local server's dashboard routes: the page, its bundle and config under /dashboard/, and the
// development sign-in, which mints working tokens only while the server runs with the Supabase
// CLI's local secret (and exists in no other configuration).
import assert from "node:assert/strict";
import { JobServiceClient } from "../../../client/job_service.ts";
import { spawnServer } from "../../../scripts/lib/server_process.ts";
import { clientWith, newUserId, serviceUrl, test } from "../helpers/service.ts";
import { DB_URL } from "../helpers/faults.ts";

async function get(path: string, base?: string): Promise<Response> {
  return await fetch(`${base ?? await serviceUrl()}${path}`, { redirect: "manual" });
}

async function devToken(body: unknown, base?: string): Promise<Response> {
  return await fetch(`${base ?? await serviceUrl()}/dashboard/dev-token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

test("the local server serves the dashboard at /dashboard/ with a strict content policy", async () => {
  const bare = await get("/dashboard");
  await bare.body?.cancel();
  assert.equal(bare.status, 308);
  assert.equal(bare.headers.get("location"), "/dashboard/");

  const page = await get("/dashboard/");
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  assert.match(await page.text(), /<script type="module" src="app.js">/);

  const app = await get("/dashboard/app.js");
  assert.equal(app.status, 200);
  assert.match(app.headers.get("content-type") ?? "", /^text\/javascript/);
  const code = await app.text();
  assert.ok(code.length > 10_000, "the bundle holds the page and supabase-js");
  assert.doesNotMatch(
    code,
    /https?:\/\/(esm\.sh|cdn\.|unpkg|jsr\.io|deno\.land)/,
    "nothing from a CDN",
  );

  const config = await get("/dashboard/config.json");
  assert.deepEqual(await config.json(), {
    supabase_url: null,
    publishable_key: null,
    dev_sign_in: true,
    realtime: null,
  });
  const missing = await get("/dashboard/nothing.js");
  await missing.body?.cancel();
  assert.equal(missing.status, 404);
});

test("the development sign-in mints a user's and the service's token, and refuses anything else", async () => {
  const userId = newUserId();
  const minted = await devToken({ role: "authenticated", sub: userId.toUpperCase() });
  assert.equal(minted.status, 200);
  const { token } = await minted.json();
  const user = new JobServiceClient(await clientWith(token));
  const job = await user.createJob({ product_id: "dev", sending_group_id: "g", start: false });
  assert.equal(job.user_id, userId, "the token acts as the user it was asked for");

  const service = await devToken({ role: "service_role" });
  const stats = await new JobServiceClient(await clientWith((await service.json()).token))
    .getStats();
  assert.ok(stats.jobs.by_status.pending >= 1);

  for (
    const [body, status] of [
      [{ role: "anon" }, 400],
      [{ role: "authenticated" }, 400],
      [{ role: "authenticated", sub: "not-a-uuid" }, 400],
      ["not an object", 400],
    ] as const
  ) {
    const refused = await devToken(body);
    await refused.body?.cancel();
    assert.equal(refused.status, status, JSON.stringify(body));
  }
  const wrongMethod = await get("/dashboard/dev-token");
  await wrongMethod.body?.cancel();
  assert.equal(wrongMethod.status, 405);
});

test("a server with a secret of its own offers no development sign-in", async () => {
  const server = await spawnServer({
    SUPABASE_DB_URL: DB_URL,
    LOG_LEVEL: "error",
    SUPABASE_JWT_SECRET: "a-project-secret-that-is-not-the-local-one-0123456789",
  });
  try {
    const config = await get("/dashboard/config.json", server.url);
    assert.equal((await config.json()).dev_sign_in, false);
    const minted = await devToken({ role: "service_role" }, server.url);
    await minted.body?.cancel();
    assert.equal(minted.status, 404);
  } finally {
    await server.stop();
  }
});
