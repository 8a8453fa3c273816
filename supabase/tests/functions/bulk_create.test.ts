// A 10 000-task createJob is one transaction, keeps task order, and is all or nothing.
import assert from "node:assert/strict";
import { asUser, jobData, test, testDb } from "../helpers/service.ts";
import type { BatchJob } from "../../functions/_shared/job_schemas.ts";

const tasks = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ payload: { recipient: `user-${i}@example.com`, n: i } }));

test("createJob with 10 000 tasks writes them all in one transaction, in order", async () => {
  const user = await asUser();
  const res = await user.call<BatchJob>("createJob", jobData({ tasks: tasks(10_000) }));
  assert.equal(res.status, 201);
  assert.deepEqual(res.data.tasks, {
    total: 10_000,
    pending: 10_000,
    running: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
  });
  // Every row carries the id of the transaction that wrote it: one job, one transaction.
  const [row] = await testDb()`
    select count(*)::int as n,
           count(distinct t.xmin::text)::int as transactions,
           bool_and(t.xmin = j.xmin) as same_as_job,
           bool_and((t.payload ->> 'n')::int = t.rn - 1) as in_order
    from (select *, xmin, row_number() over (order by id) as rn from tasks where job_id = ${res.data.id}) t
    join jobs j on j.id = t.job_id`;
  assert.deepEqual({ ...row }, { n: 10_000, transactions: 1, same_as_job: true, in_order: true });
});

test("createJob with 10 001 tasks is refused", async () => {
  const user = await asUser();
  const res = await user.call("createJob", jobData({ tasks: tasks(10_001) }));
  assert.equal(res.status, 400);
  assert.deepEqual((res.error?.details as { path: string }[]).map((d) => d.path), ["data.tasks"]);
});

test("one bad task among 10 000 fails the whole createJob and writes nothing", async () => {
  const user = await asUser();
  const list: unknown[] = tasks(10_000);
  list[9_999] = { payload: { bad: "\u0000" } };
  const res = await user.call("createJob", jobData({ tasks: list }));
  assert.equal(res.status, 400);
  assert.deepEqual((res.error?.details as { path: string }[]).map((d) => d.path), [
    "data.tasks.9999.payload",
  ]);
  const [{ count }] =
    await testDb()`select count(*)::int as count from jobs where user_id = ${user.userId}`;
  assert.equal(count, 0);
});

test("a database failure at task 5 000 of 10 000 rolls back the job and every task", async () => {
  const db = testDb();
  // A real failure inside the real transaction, raised by the database at one row.
  await db.unsafe(`
    create or replace function job_service.test_refuse_marked_task() returns trigger language plpgsql as $$
    begin
      if new.payload ? 'refuse_me' then
        raise exception using errcode = '23514', message = 'refused by test trigger',
          constraint = 'test_refuse_marked_task';
      end if;
      return new;
    end $$;
    create trigger test_refuse_marked_task before insert on job_service.tasks
      for each row execute function job_service.test_refuse_marked_task();`);
  try {
    const user = await asUser();
    const list: unknown[] = tasks(10_000);
    list[5_000] = { payload: { refuse_me: true } };
    const res = await user.call("createJob", jobData({ tasks: list }));
    assert.equal(res.status, 400);
    assert.equal(res.error?.code, "VALIDATION_ERROR");
    const [{ jobs }] =
      await db`select count(*)::int as jobs from jobs where user_id = ${user.userId}`;
    const [{ audit }] =
      await db`select count(*)::int as audit from audit_log where owner_id = ${user.userId}`;
    assert.deepEqual({ jobs, audit }, { jobs: 0, audit: 0 });
  } finally {
    await db.unsafe(`drop trigger test_refuse_marked_task on job_service.tasks;
                     drop function job_service.test_refuse_marked_task();`);
  }
});
