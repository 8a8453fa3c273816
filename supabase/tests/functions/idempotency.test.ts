// createJob idempotency: same owner + key → the same job; other data → 409; header and body keys.
import assert from "node:assert/strict";
import { asService, asUser, jobData, test, testDb } from "../helpers/service.ts";
import type { BatchJob } from "../../functions/_shared/job_schemas.ts";

test("the same key and data return the first job (200), not a second one", async () => {
  const user = await asUser();
  const data = jobData({ idempotency_key: "same-1", tasks: [{ payload: { n: 1 } }] });
  const first = await user.call<BatchJob>("createJob", data);
  assert.equal(first.status, 201);
  const again = await user.call<BatchJob>("createJob", data);
  assert.equal(again.status, 200);
  assert.equal(again.data.id, first.data.id);
  const [{ count }] =
    await testDb()`select count(*)::int as count from jobs where user_id = ${user.userId}`;
  assert.equal(count, 1);
});

test("the same key with key order changed in data is the same request", async () => {
  const user = await asUser();
  const first = await user.call<BatchJob>("createJob", {
    idempotency_key: "order-1",
    product_id: "p",
    sending_group_id: "g",
    metadata: { a: 1, b: 2 },
  });
  const again = await user.call<BatchJob>("createJob", {
    metadata: { b: 2, a: 1 },
    sending_group_id: "g",
    product_id: "p",
    idempotency_key: "order-1",
  });
  assert.equal(again.status, 200);
  assert.equal(again.data.id, first.data.id);
});

test("the same key with different data is 409 IDEMPOTENCY_CONFLICT and writes nothing", async () => {
  const user = await asUser();
  await user.call("createJob", jobData({ idempotency_key: "conflict-1" }));
  const res = await user.call(
    "createJob",
    jobData({ idempotency_key: "conflict-1", priority: 70 }),
  );
  assert.equal(res.status, 409);
  assert.equal(res.error?.code, "IDEMPOTENCY_CONFLICT");
  const [{ count }] =
    await testDb()`select count(*)::int as count from jobs where user_id = ${user.userId}`;
  assert.equal(count, 1);
});

test("keys are scoped to the owner", async () => {
  const a = await asUser();
  const b = await asUser();
  const ja = await a.call<BatchJob>("createJob", jobData({ idempotency_key: "shared-key" }));
  const jb = await b.call<BatchJob>("createJob", jobData({ idempotency_key: "shared-key" }));
  assert.equal(ja.status, 201);
  assert.equal(jb.status, 201);
  assert.notEqual(ja.data.id, jb.data.id);
});

test("the Idempotency-Key header works like the body field; a different body key is 400", async () => {
  const user = await asUser();
  const viaHeader = await user.call<BatchJob>("createJob", jobData(), {
    "Idempotency-Key": "hdr-1",
  });
  assert.equal(viaHeader.status, 201);
  const viaBody = await user.call<BatchJob>("createJob", jobData({ idempotency_key: "hdr-1" }));
  assert.equal(viaBody.status, 200);
  assert.equal(viaBody.data.id, viaHeader.data.id);
  const same = await user.call<BatchJob>("createJob", jobData({ idempotency_key: "hdr-1" }), {
    "Idempotency-Key": "hdr-1",
  });
  assert.equal(same.status, 200);

  const differ = await user.call("createJob", jobData({ idempotency_key: "hdr-2" }), {
    "Idempotency-Key": "hdr-3",
  });
  assert.equal(differ.status, 400);
  assert.equal(differ.error?.code, "VALIDATION_ERROR");
  assert.deepEqual((differ.error?.details as { path: string }[]).map((d) => d.path), [
    "data.idempotency_key",
  ]);

  const tooLong = await user.call("createJob", jobData(), { "Idempotency-Key": "k".repeat(129) });
  assert.equal(tooLong.status, 400);
  assert.deepEqual((tooLong.error?.details as { path: string }[]).map((d) => d.path), [
    "data.idempotency_key",
  ]);
});

test("20 concurrent creates with one key make exactly one job", async () => {
  const user = await asUser();
  const data = jobData({ idempotency_key: "race-1", tasks: [{ payload: 1 }, { payload: 2 }] });
  const answers = await Promise.all(
    Array.from({ length: 20 }, () => user.call<BatchJob>("createJob", data)),
  );
  const statuses = answers.map((a) => a.status).sort();
  assert.deepEqual(statuses, [200, ...Array(18).fill(200), 201].sort());
  assert.equal(new Set(answers.map((a) => a.data.id)).size, 1);
  const [{ jobs, tasks }] = await testDb()`
    select count(distinct j.id)::int as jobs, count(t.id)::int as tasks
    from jobs j left join tasks t on t.job_id = j.id where j.user_id = ${user.userId}`;
  assert.deepEqual({ jobs, tasks }, { jobs: 1, tasks: 2 });
});

test("a key older than 24 hours can be used again for a new job", async () => {
  const service = await asService();
  const owner = crypto.randomUUID();
  const first = await service.call<BatchJob>(
    "createJob",
    jobData({ user_id: owner, idempotency_key: "old" }),
  );
  await testDb()`update idempotency_keys set created_at = now() - interval '25 hours'
                 where user_id = ${owner} and key = 'old'`;
  const second = await service.call<BatchJob>(
    "createJob",
    jobData({ user_id: owner, idempotency_key: "old", priority: 1 }),
  );
  assert.equal(second.status, 201);
  assert.notEqual(second.data.id, first.data.id);
});
