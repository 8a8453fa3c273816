-- complete_and_claim (completeTasks with `claim`): the report as complete_tasks makes it, then a
-- claim that sees the room the report gave back, in one transaction; a claim from a job that is gone
-- gets nothing and the report stands; the job's counters stay exact and it completes at its end.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = job_service, extensions, public;
select plan(10);

create function pg_temp.ctx() returns jsonb
language sql as $$
  select jsonb_build_object('role', 'service_role', 'user_id', null, 'request_id', 'eng13')
$$;

create function pg_temp.new_job(p_tasks integer, p_parallel integer) returns uuid
language plpgsql as $$
begin
  return (job_service_api.create_job(
    pg_temp.ctx(),
    jsonb_build_object('user_id', '00000000-0000-4000-8000-000000000013', 'product_id', 'eng13',
      'sending_group_id', 'g13', 'priority', 50, 'max_parallel_tasks', p_parallel, 'start', true,
      'metadata', '{}'::jsonb,
      'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000,
        'backoff', 'fixed', 'max_retry_interval', 3600000)),
    (select jsonb_agg(jsonb_build_object('payload', jsonb_build_object('n', i))) from generate_series(1, p_tasks) i),
    null, null) #>> '{job,id}')::uuid;
end
$$;

/** The job's task ids in order. */
create function pg_temp.task_ids(p_job uuid) returns bigint[]
language sql as $$
  select array_agg(id order by id) from job_service.tasks where job_id = p_job
$$;

/** complete_and_claim of the given tasks: its answer. */
create function pg_temp.report(p_worker text, p_ids bigint[], p_limit integer, p_job uuid) returns json
language sql as $$
  select job_service_api.complete_and_claim(pg_temp.ctx(), p_worker,
    (select jsonb_agg(jsonb_build_object('task_id', id)) from unnest(p_ids) id), p_limit, p_job, 60000)
$$;

select set_config('test.a', pg_temp.new_job(4, 2)::text, true);
select set_config('test.ids', pg_temp.task_ids(current_setting('test.a')::uuid)::text, true);
-- w1 holds the first two tasks: the job's parallelism is used up
select is(json_array_length(job_service_api.claim_tasks(pg_temp.ctx(), 'w1', 10,
  current_setting('test.a')::uuid, 60000) -> 'tasks'), 2, 'two tasks claimed: the job is full');

select set_config('test.r1', pg_temp.report('w1', array[(current_setting('test.ids')::bigint[])[1]], 10,
  current_setting('test.a')::uuid)::text, true);
select is((current_setting('test.r1')::json -> 'tasks')::jsonb,
  jsonb_build_array(jsonb_build_object('task_id', (current_setting('test.ids')::bigint[])[1], 'status', 'succeeded')),
  'the report is answered as complete_tasks answers it');
select is((select array_agg((t ->> 'task_id')::bigint) from json_array_elements(current_setting('test.r1')::json -> 'claimed') t),
  array[(current_setting('test.ids')::bigint[])[3]],
  'the claim gets the room the report gave back (one), the oldest pending task');
select is((select worker_id from tasks where id = (current_setting('test.ids')::bigint[])[3]), 'w1',
  'the claimed task runs for the reporting worker');

-- a report of a task the worker does not hold: lost; the claim still runs (and finds no room)
select is((pg_temp.report('w2', array[(current_setting('test.ids')::bigint[])[2]], 10,
  current_setting('test.a')::uuid) -> 'tasks' -> 0 ->> 'status'), 'lost',
  'a task the worker does not hold is lost, as in complete_tasks');

-- a claim from a job that is gone: nothing claimed, the report stands
select is(json_array_length(pg_temp.report('w1', array[(current_setting('test.ids')::bigint[])[2]], 10,
  '00000000-0000-4000-8000-0000000000ff') -> 'claimed'), 0,
  'a claim from a job that does not exist gets nothing');
select is((select status::text from tasks where id = (current_setting('test.ids')::bigint[])[2]), 'succeeded',
  'and the report of that call stands');

-- the rest: the last task claimed by a report, then the job's end reported with a claim
select is((select array_agg((t ->> 'task_id')::bigint) from json_array_elements(pg_temp.report('w1',
  array[(current_setting('test.ids')::bigint[])[3]], 1, current_setting('test.a')::uuid) -> 'claimed') t),
  array[(current_setting('test.ids')::bigint[])[4]], 'a claim of one after a report of one: the next task');
select is(json_array_length(pg_temp.report('w1', array[(current_setting('test.ids')::bigint[])[4]], 5,
  current_setting('test.a')::uuid) -> 'claimed'), 0, 'nothing left to claim at the end');
select is_empty($$ select * from job_service_api.invariant_violations(array[current_setting('test.a')::uuid])
  union all select null, 'not completed', status::text from job_service.jobs
  where id = current_setting('test.a')::uuid and status <> 'completed' $$,
  'the counters equal the rows and the job completed');

select * from finish();
rollback;
