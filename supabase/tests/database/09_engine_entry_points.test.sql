-- The engine's entry points called directly, as the functions call them: claim_tasks honours the
-- job's parallelism and answers the claimed rows; complete_tasks judges each task alone (succeeded,
-- a replay by the lease holder, not_found, lost); fail_task follows the retry policy by error code.
-- Then parity: one job run one task per claim and per report, and an identical job run in one
-- batch claim and one batch report, end with identical rows (tasks, counters, job, events, audit).
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = job_service, extensions, public;
select plan(17);

create function pg_temp.ctx() returns jsonb
language sql as $$
  select jsonb_build_object('role', 'service_role', 'user_id', null, 'request_id', 'eng09')
$$;

create function pg_temp.new_job(p_tasks integer, p_parallel integer) returns uuid
language plpgsql as $$
begin
  return (job_service_api.create_job(
    pg_temp.ctx(),
    jsonb_build_object('user_id', '00000000-0000-4000-8000-000000000009', 'product_id', 'eng09',
      'sending_group_id', 'g09', 'priority', 50, 'max_parallel_tasks', p_parallel, 'start', true,
      'metadata', '{}'::jsonb,
      'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000,
        'backoff', 'fixed', 'max_retry_interval', 3600000,
        'retry_on_errors', jsonb_build_array('TIMEOUT'))),
    (select jsonb_agg(jsonb_build_object('payload', jsonb_build_object('n', i))) from generate_series(1, p_tasks) i),
    null, null) #>> '{job,id}')::uuid;
end
$$;

/** Claims up to p_limit tasks of one job: their ids, in order. */
create function pg_temp.claim(p_worker text, p_limit integer, p_job uuid) returns bigint[]
language sql as $$
  select coalesce(array_agg((t ->> 'task_id')::bigint order by (t ->> 'task_id')::bigint), '{}')
  from json_array_elements(
    job_service_api.claim_tasks(pg_temp.ctx(), p_worker, p_limit, p_job, 60000) -> 'tasks') t
$$;

/** Completes the tasks with a result of their own payload; the answers' statuses, in order. */
create function pg_temp.complete(p_worker text, p_ids bigint[]) returns text[]
language sql as $$
  select array_agg(o ->> 'status' order by (o ->> 'task_id')::bigint)
  from json_array_elements(job_service_api.complete_tasks(pg_temp.ctx(), p_worker,
    (select jsonb_agg(jsonb_build_object('task_id', id, 'result', jsonb_build_object('done', id - p_ids[1])))
     from unnest(p_ids) id))) o
$$;

-- claim: parallelism 2 of a job of 4 tasks, older tasks first
select set_config('test.a', pg_temp.new_job(4, 2)::text, true);
select set_config('test.claimed', pg_temp.claim('w1', 10, current_setting('test.a')::uuid)::text, true);
select is(cardinality(current_setting('test.claimed')::bigint[]), 2,
  'claim_tasks gives no more than max_parallel_tasks');
select is(current_setting('test.claimed')::bigint[],
  (select array_agg(id order by id) from (select id from tasks where job_id = current_setting('test.a')::uuid order by id limit 2) x),
  'the oldest tasks are claimed first');
select is(cardinality(pg_temp.claim('w2', 10, current_setting('test.a')::uuid)), 0,
  'a full job gives nothing more');
select is((select count(*)::integer from tasks where job_id = current_setting('test.a')::uuid
           and status = 'running' and worker_id = 'w1'), 2, 'the claimed rows are running, leased to the claimer');

-- complete: each task judged alone
select is(pg_temp.complete('w1', array[(current_setting('test.claimed')::bigint[])[1]]), array['succeeded'],
  'the lease holder completes its task');
select is(pg_temp.complete('w1', array[(current_setting('test.claimed')::bigint[])[1]]), array['succeeded'],
  'a repeat by the same worker replays the answer');
select is(pg_temp.complete('w2', array[(current_setting('test.claimed')::bigint[])[2]]), array['lost'],
  'another worker does not hold the lease');
select is(pg_temp.complete('w1', array[-1::bigint]), array['not_found'], 'an unknown task is not_found');
select is((job_service.job_counts(current_setting('test.a')::uuid)).succeeded, 1,
  'the counters count one success, once');

-- fail: by the job's retry_on_errors
select is(job_service_api.fail_task(pg_temp.ctx(), 'w1', (current_setting('test.claimed')::bigint[])[2],
  '{"code": "TIMEOUT", "message": "slow"}') ->> 'status', 'pending', 'a retryable code puts the task back');
select set_config('test.again', pg_temp.claim('w1', 10, current_setting('test.a')::uuid)::text, true);
select is(job_service_api.fail_task(pg_temp.ctx(), 'w1', (current_setting('test.again')::bigint[])[1],
  '{"code": "INVALID_PAYLOAD", "message": "bad"}') ->> 'status', 'failed', 'a code not in retry_on_errors fails for good');
select is_empty($$ select * from job_service_api.invariant_violations(array[current_setting('test.a')::uuid]) $$,
  'no invariant is broken');

-- parity: the one-at-a-time path and the batch path leave identical rows
select set_config('test.p', pg_temp.new_job(6, 10)::text, true);
select set_config('test.q', pg_temp.new_job(6, 10)::text, true);
do $$
declare
  v_ids bigint[];
  v_first bigint := (select min(id) from job_service.tasks where job_id = current_setting('test.p')::uuid);
begin
  for i in 1..6 loop
    v_ids := pg_temp.claim('wp', 1, current_setting('test.p')::uuid);
    -- the same result as the batch path gives: the task's position in its job
    perform job_service_api.complete_tasks(pg_temp.ctx(), 'wp',
      jsonb_build_array(jsonb_build_object('task_id', v_ids[1], 'result', jsonb_build_object('done', v_ids[1] - v_first))));
  end loop;
end
$$;
select is(pg_temp.complete('wq', pg_temp.claim('wq', 6, current_setting('test.q')::uuid)),
  array_fill('succeeded'::text, array[6]), 'one batch claim and one batch report end all six');

create function pg_temp.task_rows(p_job uuid) returns table (pos bigint, status text, attempt integer, result jsonb, ended_by text, has_times boolean)
language sql as $$
  -- the worker's name aside (wp or wq)
  select row_number() over (order by id), status::text, attempt, result,
         case when ended_by in ('wp', 'wq') then 'the worker' else ended_by end,
         started_at is not null and finished_at is not null
  from job_service.tasks where job_id = p_job
$$;
select results_eq(
  $$ select * from pg_temp.task_rows(current_setting('test.p')::uuid) order by pos $$,
  $$ select * from pg_temp.task_rows(current_setting('test.q')::uuid) order by pos $$,
  'the task rows are identical');
select is((job_service.job_counts(current_setting('test.p')::uuid))::text,
  (job_service.job_counts(current_setting('test.q')::uuid))::text, 'the counters are identical');
select results_eq(
  $$ select status::text, progress_percentage, attempt, started_at is not null, finished_at is not null
     from jobs where id = current_setting('test.p')::uuid $$,
  $$ select status::text, progress_percentage, attempt, started_at is not null, finished_at is not null
     from jobs where id = current_setting('test.q')::uuid $$,
  'the jobs end the same (status, progress, times)');
select results_eq(
  $$ select type, from_status::text, to_status::text from job_events where job_id = current_setting('test.p')::uuid order by id $$,
  $$ select type, from_status::text, to_status::text from job_events where job_id = current_setting('test.q')::uuid order by id $$,
  'the same events, in the same order');

select * from finish();
rollback;
