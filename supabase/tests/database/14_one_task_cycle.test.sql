-- complete_and_claim's one-task cycle (one task reported, one claimed across jobs: every
-- one-at-a-time worker's call), which runs its own statements inline: the answer it writes is the
-- one claim_tasks writes, and whatever it does not handle itself (a report the worker cannot make,
-- a budgeted job at the head of the walk, nothing left) goes the general way with the same result.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = job_service, extensions, public;
select plan(33);

create function pg_temp.ctx() returns jsonb
language sql as $$
  select jsonb_build_object('role', 'service_role', 'user_id', null, 'request_id', 'eng14')
$$;

create function pg_temp.new_job(p_priority integer, p_tasks jsonb, p_limits jsonb) returns uuid
language plpgsql as $$
begin
  return (job_service_api.create_job(
    pg_temp.ctx(),
    jsonb_build_object('user_id', '00000000-0000-4000-8000-000000000014', 'product_id', 'eng14',
      'sending_group_id', 'g14', 'priority', p_priority, 'max_parallel_tasks', 2, 'start', true,
      'metadata', '{}'::jsonb, 'resource_limits', p_limits,
      'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000,
        'backoff', 'fixed', 'max_retry_interval', 3600000)),
    p_tasks, null, null) #>> '{job,id}')::uuid;
end
$$;

/** The job's n-th task id. */
create function pg_temp.task(p_job text, p_n integer) returns bigint
language sql as $$
  select id from job_service.tasks where job_id = current_setting(p_job)::uuid order by id
  offset p_n - 1 limit 1
$$;

/** complete_and_claim of one task with a claim of one across jobs: its answer. */
create function pg_temp.cycle(p_worker text, p_task bigint) returns json
language sql as $$
  select job_service_api.complete_and_claim(pg_temp.ctx(), p_worker,
    jsonb_build_array(jsonb_build_object('task_id', p_task, 'result', jsonb_build_object('ok', p_task))),
    1, null, 60000)
$$;

/** A claimed task as claim_tasks writes it (task_json), from its row. */
create function pg_temp.as_claimed(p_task bigint) returns jsonb
language sql as $$
  select job_service.task_json(id, job_id, payload, attempt, job_service.iso(lease_expires_at),
    reserved_memory, reserved_cpu, memory, cpu)::jsonb
  from job_service.tasks where id = p_task
$$;

/** The first part of a function's source that matches p_pattern, spaces made one. */
create function pg_temp.source_part(p_fn regprocedure, p_pattern text) returns text
language sql as $$
  select regexp_replace(substring(prosrc from p_pattern), '\s+', ' ', 'g')
  from pg_proc where oid = p_fn
$$;

/**
 * A function's one-task report: the job row it locks and the task row it holds (complete_and_claim
 * ends the task in its hand-over's statement, with the end row).
 */
create function pg_temp.report_statements(p_fn regprocedure) returns text
language sql as $$
  select pg_temp.source_part(p_fn,
      'where id = \(select job_id from job_service\.tasks where id = v_id\)\s+?for key share;')
    || ' ' || pg_temp.source_part(p_fn, 'with held as \(.*?for update\s*\)')
$$;

-- the report is written twice, inline in complete_and_claim and in complete_tasks: the same locks
select is(pg_temp.report_statements(
    'job_service_api.complete_and_claim(jsonb, text, jsonb, integer, uuid, integer)'),
  coalesce(pg_temp.report_statements('job_service_api.complete_tasks(jsonb, text, jsonb)'), 'missing'),
  'complete_and_claim''s one-task report locks as complete_tasks'' one-task report does');

-- a plain job of three tasks, the second with resources of its own
select set_config('test.a', pg_temp.new_job(50, '[{"payload": {"n": 1}},
  {"payload": {"n": 2, "text": "a \"quoted\" ünïcode"}, "resources": {"memory": 10, "cpu": 0.5}},
  {"payload": {"n": 3}}]', null)::text, true);
select is((job_service_api.claim_tasks(pg_temp.ctx(), 'w1', 1, null, 60000) -> 'tasks' -> 0 ->> 'task_id')::bigint,
  pg_temp.task('test.a', 1), 'w1 claims the first task');

select set_config('test.r1', pg_temp.cycle('w1', pg_temp.task('test.a', 1))::text, true);
select is((current_setting('test.r1')::json -> 'tasks')::jsonb,
  jsonb_build_array(jsonb_build_object('task_id', pg_temp.task('test.a', 1), 'status', 'succeeded')),
  'the report is answered as complete_tasks answers it');
select is((current_setting('test.r1')::json -> 'claimed')::jsonb,
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.a', 2))),
  'the next task is claimed and written as claim_tasks writes it (payload, lease, its own resources)');
select is((select (result, worker_id, finished_at is not null)::text from tasks
           where id = pg_temp.task('test.a', 1)), ('{"ok": ' || pg_temp.task('test.a', 1) || '}', null, true)::text,
  'the reported task ended with its result');
-- the claim took the reported run's slot in its shard (the job's one): a hand-over, counted on the
-- end row the report changed (one end and one requeue fewer), the claim row left as it was
select is((select (s.started, s.pending, e.ended, e.succeeded, e.requeued)::text
           from job_shards s join job_shard_ends e using (job_id, shard)
           where job_id = current_setting('test.a')::uuid),
  (1, -1, 0, 1, -1)::text, 'the next task took the reported run''s slot: counted on the end row');
select is(job_service.job_counts(current_setting('test.a')::uuid)::text,
  (3, 1, 1, 1, 0, 0, 0)::text, 'and the job counts 1 pending, 1 running, 1 succeeded of 3');

-- a report the worker cannot make (w2 does not hold the task): lost, and its claim still runs
select set_config('test.r2', pg_temp.cycle('w2', pg_temp.task('test.a', 2))::text, true);
select is(current_setting('test.r2')::json -> 'tasks' -> 0 ->> 'status', 'lost',
  'a task the worker does not hold is lost, as complete_tasks says');
select is((current_setting('test.r2')::json -> 'claimed')::jsonb,
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.a', 3))),
  'and the claim of that call gets the job''s last task for w2');

-- a budgeted job of higher priority at the head of the walk: claimed as the general claim does,
-- its fair share reserved
select set_config('test.b', pg_temp.new_job(90, '[{"payload": {"n": 1}}, {"payload": {"n": 2}}]',
  '{"max_memory": 100, "max_cpu": 1}')::text, true);
select set_config('test.r3', pg_temp.cycle('w1', pg_temp.task('test.a', 2))::text, true);
select is((current_setting('test.r3')::json -> 'claimed')::jsonb,
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.b', 1))),
  'the budgeted job of higher priority gives the next task');
select is((current_setting('test.r3')::json -> 'claimed' -> 0 -> 'resources')::jsonb,
  '{"memory": 50, "cpu": 0.5}'::jsonb, 'with its fair share of the budget reserved');

-- the ends: the plain job's last report completes it; then nothing is left but the budgeted job's
-- second task, and after it nothing at all
select is(json_array_length(pg_temp.cycle('w2', pg_temp.task('test.a', 3)) -> 'claimed'), 1,
  'the plain job''s last report claims the budgeted job''s second task');
select is((select status::text from jobs where id = current_setting('test.a')::uuid), 'completed',
  'the plain job completed with its last report');
select is(json_array_length(pg_temp.cycle('w1', pg_temp.task('test.b', 1)) -> 'claimed')
          + json_array_length(pg_temp.cycle('w2', pg_temp.task('test.b', 2)) -> 'claimed'), 0,
  'nothing left to claim at the end');
select is_empty($$ select * from job_service_api.invariant_violations(
    array[current_setting('test.a')::uuid, current_setting('test.b')::uuid])
  union all select null, 'not completed', status::text from job_service.jobs
  where id in (current_setting('test.a')::uuid, current_setting('test.b')::uuid) and status <> 'completed' $$,
  'the counters equal the rows and both jobs completed');

-- the walk's order without a walk: a plain job hands its slot over when no job before it has room
-- and a due task; a job before it that is full does not stop that, one with room does
select set_config('test.c', pg_temp.new_job(70, '[{"payload": {"n": 1}}, {"payload": {"n": 2}},
  {"payload": {"n": 3}}]', null)::text, true);
select set_config('test.d', pg_temp.new_job(60, '[{"payload": {"n": 1}}, {"payload": {"n": 2}}]', null)::text, true);
select is(array[(job_service_api.claim_tasks(pg_temp.ctx(), 'w1', 1, null, 60000) -> 'tasks' -> 0 ->> 'task_id')::bigint,
                (job_service_api.claim_tasks(pg_temp.ctx(), 'w2', 1, null, 60000) -> 'tasks' -> 0 ->> 'task_id')::bigint,
                (job_service_api.claim_tasks(pg_temp.ctx(), 'w3', 1, null, 60000) -> 'tasks' -> 0 ->> 'task_id')::bigint],
  array[pg_temp.task('test.c', 1), pg_temp.task('test.c', 2), pg_temp.task('test.d', 1)],
  'the job of priority 70 runs two tasks, its limit, and the next claim takes the job of 60''s first');
select is((pg_temp.cycle('w3', pg_temp.task('test.d', 1)) -> 'claimed')::jsonb,
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.d', 2))),
  'behind a job that is full, the job of 60 hands its slot over to its next task');
select is((select (s.started, e.ended, e.requeued)::text
           from job_shards s join job_shard_ends e using (job_id, shard)
           where job_id = current_setting('test.d')::uuid),
  (1, 0, -1)::text, 'counted on its end row, its claim row as the first claim left it');
select set_config('test.e', pg_temp.new_job(80, '[{"payload": {"n": 1}}]', null)::text, true);
select is((pg_temp.cycle('w1', pg_temp.task('test.c', 1)) -> 'claimed')::jsonb,
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.e', 1))),
  'a job before it with room and a due task gets the next claim, not the reported task''s job');
select is((select (e.ended, e.requeued)::text from job_shard_ends e
           where job_id = current_setting('test.c')::uuid),
  (1, 0)::text, 'and the report''s end is counted as an end');
select is((pg_temp.cycle('w2', pg_temp.task('test.c', 2)) -> 'claimed')::jsonb,
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.c', 3))),
  'with nothing due before it, the job of 70 hands its slot over again');
select is(json_array_length(pg_temp.cycle('w3', pg_temp.task('test.d', 2)) -> 'claimed')
          + json_array_length(pg_temp.cycle('w1', pg_temp.task('test.e', 1)) -> 'claimed')
          + json_array_length(pg_temp.cycle('w2', pg_temp.task('test.c', 3)) -> 'claimed'), 0,
  'the last reports find nothing left');
select is_empty($$ select * from job_service_api.invariant_violations(
    array[current_setting('test.c')::uuid, current_setting('test.d')::uuid, current_setting('test.e')::uuid])
  union all select null, 'not completed', status::text from job_service.jobs
  where id in (current_setting('test.c')::uuid, current_setting('test.d')::uuid,
               current_setting('test.e')::uuid) and status <> 'completed' $$,
  'the counters equal the rows and the three jobs completed');

-- A batch report that carries a claim: the same hand-over for a batch of one plain job
/** A function's batch report, up to the end rows. */
create function pg_temp.batch_report(p_fn regprocedure) returns text
language sql as $$
  select pg_temp.source_part(p_fn, 'with items as \(.*?returning held\.\*\s*\)')
$$;
select is(pg_temp.batch_report(
    'job_service_api.complete_and_claim(jsonb, text, jsonb, integer, uuid, integer)'),
  coalesce(pg_temp.batch_report('job_service_api.complete_tasks(jsonb, text, jsonb)'), 'missing'),
  'complete_and_claim''s batch report is complete_tasks'' batch report, up to the end rows');

/** complete_and_claim of the given tasks with a claim of p_limit across jobs: its answer. */
create function pg_temp.batch(p_worker text, p_tasks bigint[], p_limit integer) returns jsonb
language sql as $$
  select job_service_api.complete_and_claim(pg_temp.ctx(), p_worker,
    (select jsonb_agg(jsonb_build_object('task_id', t, 'result', jsonb_build_object('ok', t)) order by n)
     from unnest(p_tasks) with ordinality as u (t, n)),
    p_limit, null, 60000)::jsonb
$$;

select set_config('test.f', pg_temp.new_job(40, '[{"payload": {"n": 1}}, {"payload": {"n": 2}},
  {"payload": {"n": 3}}, {"payload": {"n": 4}}, {"payload": {"n": 5}}]', null)::text, true);
select is(json_array_length(job_service_api.claim_tasks(pg_temp.ctx(), 'w5', 2, null, 60000) -> 'tasks'), 2,
  'a job of five tasks runs two, its limit');
select set_config('test.r5', pg_temp.batch('w5', array[pg_temp.task('test.f', 2), pg_temp.task('test.f', 1)], 5)::text, true);
select is(current_setting('test.r5')::jsonb -> 'tasks',
  jsonb_build_array(jsonb_build_object('task_id', pg_temp.task('test.f', 2), 'status', 'succeeded'),
                    jsonb_build_object('task_id', pg_temp.task('test.f', 1), 'status', 'succeeded')),
  'the batch is answered as complete_tasks answers it, in the items'' order');
select is(current_setting('test.r5')::jsonb -> 'claimed',
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.f', 3)), pg_temp.as_claimed(pg_temp.task('test.f', 4))),
  'the two runs'' slots go to the job''s next two tasks; the job is full, so the rest of the claim gets nothing');
select is((select (s.started, e.ended, e.succeeded, e.requeued)::text
           from job_shards s join job_shard_ends e using (job_id, shard)
           where job_id = current_setting('test.f')::uuid),
  (2, 0, 2, -2)::text, 'both starts counted on the end row with the ends, the claim row as the first claim left it');
select is(pg_temp.batch('w5', array[pg_temp.task('test.f', 3), pg_temp.task('test.f', 1), 999999999], 1),
  jsonb_build_object('tasks', jsonb_build_array(
      jsonb_build_object('task_id', pg_temp.task('test.f', 3), 'status', 'succeeded'),
      jsonb_build_object('task_id', pg_temp.task('test.f', 1), 'status', 'succeeded'),
      jsonb_build_object('task_id', 999999999, 'status', 'not_found')),
    'claimed', jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.f', 5)))),
  'a replay and an unknown task are answered as complete_tasks answers them; one slot, one task handed over');
select set_config('test.g', pg_temp.new_job(30, '[{"payload": {"n": 1}}, {"payload": {"n": 2}}]', null)::text, true);
select set_config('test.h', pg_temp.new_job(30, '[{"payload": {"n": 1}}]', null)::text, true);
select is(pg_temp.batch('w5', array[pg_temp.task('test.f', 4), pg_temp.task('test.f', 5)], 3) -> 'claimed',
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.g', 1)), pg_temp.as_claimed(pg_temp.task('test.g', 2)),
                    pg_temp.as_claimed(pg_temp.task('test.h', 1))),
  'with nothing left in its job, the claim goes the general way: the next jobs'' tasks');
select is((select status::text from jobs where id = current_setting('test.f')::uuid), 'completed',
  'and the job completed with that batch');
select is(pg_temp.batch('w5', array[pg_temp.task('test.h', 1), pg_temp.task('test.g', 1), pg_temp.task('test.g', 2)], 2),
  jsonb_build_object('tasks', jsonb_build_array(
      jsonb_build_object('task_id', pg_temp.task('test.h', 1), 'status', 'succeeded'),
      jsonb_build_object('task_id', pg_temp.task('test.g', 1), 'status', 'succeeded'),
      jsonb_build_object('task_id', pg_temp.task('test.g', 2), 'status', 'succeeded')),
    'claimed', '[]'::jsonb),
  'a batch of two jobs with nothing left to hand over or claim: nothing claimed');
select is_empty($$ select * from job_service_api.invariant_violations(
    array[current_setting('test.f')::uuid, current_setting('test.g')::uuid, current_setting('test.h')::uuid])
  union all select null, 'not completed', status::text from job_service.jobs
  where id in (current_setting('test.f')::uuid, current_setting('test.g')::uuid,
               current_setting('test.h')::uuid) and status <> 'completed' $$,
  'the counters equal the rows and the batch''s jobs completed');

select * from finish();
rollback;
