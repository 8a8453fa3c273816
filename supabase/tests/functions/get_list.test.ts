// getJob (with errors and events) and listJobs (filters, ordering, cursor pagination).
import assert from "node:assert/strict";
import { asService, asUser, jobData, test, testDb } from "../helpers/service.ts";
import { BatchJob, JobList, JobWithHistory } from "../../functions/_shared/job_schemas.ts";

test("getJob returns the job; include adds its errors and events, newest first", async () => {
  const user = await asUser();
  const created = await user.call<BatchJob>("createJob", jobData());
  const id = created.data.id;
  const plain = await user.call<BatchJob>("getJob", { job_id: id });
  assert.equal(plain.status, 200);
  assert.deepEqual(plain.data, created.data);
  assert.equal("errors" in (plain.data as object), false);

  // an error row as the engine writes them (updateBatchJob/failTask arrive in later issues)
  await testDb()`insert into job_errors (job_id, attempt, code, category, message, request_id)
                 values (${id}, 1, 'TIMEOUT', 'transient', 'took too long', 'req-e1'),
                        (${id}, 1, 'INVALID_RECIPIENT', 'validation', 'no such mailbox', 'req-e2')`;
  const full = await user.call<JobWithHistory>("getJob", {
    job_id: id,
    include: ["errors", "events"],
  });
  assert.equal(full.status, 200);
  const job = JobWithHistory.parse(full.data);
  assert.deepEqual(job.errors!.map((e) => e.code), ["INVALID_RECIPIENT", "TIMEOUT"]);
  assert.deepEqual(job.events!.map((e) => [e.type, e.to_status]), [["created", "queued"]]);
  assert.equal(job.events![0].actor.user_id, user.userId);
});

test("getJob validates job_id and include", async () => {
  const user = await asUser();
  const bad = await user.call("getJob", { job_id: "42", include: ["tasks"] });
  assert.equal(bad.status, 400);
  assert.deepEqual((bad.error?.details as { path: string }[]).map((d) => d.path).sort(), [
    "data.include.0",
    "data.job_id",
  ]);
});

test("listJobs pages newest first with a cursor, without gaps or repeats", async () => {
  const service = await asService();
  const owner = crypto.randomUUID();
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) {
    const res = await service.call<BatchJob>(
      "createJob",
      jobData({ user_id: owner, metadata: { i } }),
    );
    ids.push(res.data.id);
  }
  const seen: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const res = await service.call<JobList>("listJobs", {
      user_id: owner,
      limit: 3,
      ...(cursor ? { cursor } : {}),
    });
    assert.equal(res.status, 200);
    const page = JobList.parse(res.data);
    seen.push(...page.jobs.map((j) => j.id));
    cursor = page.next_cursor ?? undefined;
    pages++;
  } while (cursor);
  assert.equal(pages, 3);
  assert.deepEqual(seen, [...ids].reverse());
});

test("listJobs filters by status, product and sending group", async () => {
  const user = await asUser();
  const a = await user.call<BatchJob>(
    "createJob",
    jobData({ product_id: "alpha", sending_group_id: "g1" }),
  );
  const b = await user.call<BatchJob>(
    "createJob",
    jobData({ product_id: "beta", sending_group_id: "g1", start: false }),
  );
  await user.call<BatchJob>("createJob", jobData({ product_id: "beta", sending_group_id: "g2" }));

  const ids = async (data: Record<string, unknown>) =>
    (await user.call<JobList>("listJobs", data)).data.jobs.map((j) => j.id);
  assert.deepEqual(await ids({ product_id: "alpha" }), [a.data.id]);
  assert.deepEqual(await ids({ status: ["pending"] }), [b.data.id]);
  assert.deepEqual(await ids({ product_id: "beta", sending_group_id: "g1" }), [b.data.id]);
  assert.equal((await ids({ status: ["queued", "pending"] })).length, 3);
  assert.deepEqual(await ids({ status: ["completed"] }), []);
});

test("listJobs refuses forged, altered and malformed cursors with 400", async () => {
  const user = await asUser();
  for (let i = 0; i < 2; i++) await user.call("createJob", jobData());
  const first = await user.call<JobList>("listJobs", { limit: 1 });
  const cursor = first.data.next_cursor!;
  assert.ok(cursor);
  const [body, mac] = cursor.split(".");
  const forgedBody = btoa(JSON.stringify(["0", crypto.randomUUID()])).replace(/=+$/, "");
  // The first character carries six whole bits of the MAC, so changing it always alters the MAC
  // (a changed last character may be one whose only difference is padding bits).
  const alteredMac = `${mac[0] === "A" ? "B" : "A"}${mac.slice(1)}`;
  for (
    const bad of [`${forgedBody}.${mac}`, `${body}.${alteredMac}`, "garbage", `${body}.`]
  ) {
    const res = await user.call("listJobs", { cursor: bad });
    assert.equal(res.status, 400, bad);
    assert.deepEqual((res.error?.details as { path: string }[]).map((d) => d.path), [
      "data.cursor",
    ]);
  }
  const ok = await user.call<JobList>("listJobs", { limit: 1, cursor });
  assert.equal(ok.status, 200);
});

test("listJobs validates limit and status values", async () => {
  const user = await asUser();
  for (
    const data of [{ limit: 0 }, { limit: 101 }, { limit: 1.5 }, { status: ["done"] }, {
      status: [],
    }]
  ) {
    const res = await user.call("listJobs", data);
    assert.equal(res.status, 400, JSON.stringify(data));
  }
});
