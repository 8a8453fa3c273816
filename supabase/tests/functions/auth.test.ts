// Authentication and isolation: missing, forged, expired and wrong-role tokens; users reach only
// their own jobs.
import assert from "node:assert/strict";
import {
  asService,
  asUser,
  clientWith,
  invoke,
  jobData,
  newUserId,
  rawFetch,
  test,
  token,
} from "../helpers/service.ts";
import type { BatchJob } from "../../functions/_shared/job_schemas.ts";

async function callWith(bearer: string, action = "listJobs", data: unknown = {}) {
  return await invoke(await clientWith(bearer), "job-operations", { action, data });
}

test("no token is 401 UNAUTHORIZED", async () => {
  const client = await clientWith("placeholder");
  const res = await invoke(client, "job-operations", { action: "listJobs", data: {} }, {
    Authorization: "",
  });
  assert.equal(res.status, 401);
  assert.equal(res.error?.code, "UNAUTHORIZED");
});

test("a malformed token is 401", async () => {
  const res = await callWith("not-a-jwt");
  assert.equal(res.status, 401);
  assert.equal(res.error?.code, "UNAUTHORIZED");
});

test("a token signed with another secret is 401", async () => {
  const forged = await token({
    role: "service_role",
    secret: "another-secret-that-is-at-least-32-characters-long",
  });
  const res = await callWith(forged);
  assert.equal(res.status, 401);
  assert.equal(res.error?.code, "UNAUTHORIZED");
});

test("a token with alg none is 401", async () => {
  const b64 = (o: unknown) =>
    btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  const unsigned = `${b64({ alg: "none", typ: "JWT" })}.${
    b64({ role: "service_role", exp: Math.floor(Date.now() / 1000) + 600 })
  }.`;
  const res = await callWith(unsigned);
  assert.equal(res.status, 401);
});

test("an expired token is 401 with a message saying so", async () => {
  const expired = await token({ role: "authenticated", sub: newUserId(), expiresIn: -120 });
  const res = await callWith(expired);
  assert.equal(res.status, 401);
  assert.match(res.error!.message, /expired/);
});

test("a user token without aud 'authenticated' or without a uuid sub is 401", async () => {
  const noAud = await token({ role: "authenticated", sub: newUserId(), aud: null });
  assert.equal((await callWith(noAud)).status, 401);
  const wrongAud = await token({ role: "authenticated", sub: newUserId(), aud: "other" });
  assert.equal((await callWith(wrongAud)).status, 401);
  const badSub = await token({ role: "authenticated", sub: "user-7" });
  assert.equal((await callWith(badSub)).status, 401);
});

test("anon and unknown roles are 403 FORBIDDEN", async () => {
  const anon = await callWith(await token({ role: "anon" }));
  assert.equal(anon.status, 403);
  assert.equal(anon.error?.code, "FORBIDDEN");
  const odd = await callWith(await token({ role: "supabase_admin" }));
  assert.equal(odd.status, 403);
});

test("task-operations is for the service only", async () => {
  const user = await asUser();
  const res = await user.task("claimTasks", { worker_id: "w", limit: 1 });
  assert.equal(res.status, 403);
  assert.equal(res.error?.code, "FORBIDDEN");
});

test("a user cannot create a job for another user (403), but may name itself", async () => {
  const user = await asUser();
  const other = await user.call("createJob", jobData({ user_id: newUserId() }));
  assert.equal(other.status, 403);
  assert.equal(other.error?.code, "FORBIDDEN");
  const self = await user.call<BatchJob>("createJob", jobData({ user_id: user.userId }));
  assert.equal(self.status, 201);
});

test("a user never sees another user's job: getJob is 404, listJobs leaves it out", async () => {
  const alice = await asUser();
  const bob = await asUser();
  const job = await alice.call<BatchJob>("createJob", jobData());
  const peek = await bob.call("getJob", { job_id: job.data.id });
  assert.equal(peek.status, 404);
  assert.equal(peek.error?.code, "JOB_NOT_FOUND");
  const absent = await bob.call("getJob", { job_id: crypto.randomUUID() });
  assert.equal(absent.status, 404);
  // the two 404s are indistinguishable
  assert.equal(peek.error?.message, absent.error?.message);

  const list = await bob.call<{ jobs: BatchJob[] }>("listJobs", {});
  assert.equal(list.status, 200);
  assert.ok(list.data.jobs.every((j) => j.user_id === bob.userId));
  assert.ok(!list.data.jobs.some((j) => j.id === job.data.id));

  const own = await alice.call<BatchJob>("getJob", { job_id: job.data.id });
  assert.equal(own.status, 200);
});

test("only the service may list by user_id; it sees any user's jobs", async () => {
  const alice = await asUser();
  const job = await alice.call<BatchJob>("createJob", jobData());
  const bob = await asUser();
  const denied = await bob.call("listJobs", { user_id: alice.userId });
  assert.equal(denied.status, 403);
  const ownFilter = await bob.call("listJobs", { user_id: bob.userId });
  assert.equal(ownFilter.status, 403);

  const service = await asService();
  const list = await service.call<{ jobs: BatchJob[] }>("listJobs", { user_id: alice.userId });
  assert.equal(list.status, 200);
  assert.deepEqual(list.data.jobs.map((j) => j.id), [job.data.id]);
  const got = await service.call<BatchJob>("getJob", { job_id: job.data.id });
  assert.equal(got.status, 200);
});

test("a project secret key (SUPABASE_SECRET_KEYS) acts as the service; an unknown one is 401", async () => {
  const secret = Deno.env.get("TEST_SECRET_KEY") ?? "sb_secret_local_test_key";
  const viaBearer = await callWith(secret, "listJobs", { limit: 1 });
  assert.equal(viaBearer.status, 200);

  const res = await rawFetch("job-operations", {
    method: "POST",
    headers: { apikey: secret, "Content-Type": "application/json" },
    body: JSON.stringify({ action: "createJob", data: jobData() }),
  });
  // the service must name the owner: proof the key was taken as service_role
  assert.equal(res.status, 400);
  assert.deepEqual((await res.json()).error.details, [
    { path: "data.user_id", message: "Required for service_role callers." },
  ]);

  const unknown = await callWith("sb_secret_unknown_key");
  assert.equal(unknown.status, 401);
});
