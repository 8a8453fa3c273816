-- job_service_api.invariant_violations, the database half of the stress test's checker, catches each
-- kind of drift it is meant to: counters that no longer equal the rows, a shard that lost count of
-- its running tasks, a pending task off the claim queue, a queue row for a task that is not pending,
-- and statuses that contradict the tasks. Each case corrupts a fresh job behind the engine's back
-- (triggers off where they would refuse) and looks for the one violation it must cause.
begin;
create extension if not exists pgtap with schema extensions;
-- the service's own schema first: the tests name its tables and types unqualified
set local search_path = job_service, extensions, public;
select plan(9);

create function pg_temp.new_job(p_tasks integer) returns uuid
language plpgsql as $$
declare
  v_user uuid := gen_random_uuid();
begin
  return (job_service_api.create_job(
    jsonb_build_object('role', 'service_role', 'user_id', null, 'request_id', 'inv07'),
    jsonb_build_object('user_id', v_user, 'product_id', 'inv07', 'sending_group_id', 'g',
      'priority', 50, 'max_parallel_tasks', 4, 'start', true, 'metadata', '{}'::jsonb,
      'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000, 'backoff', 'fixed',
                                         'max_retry_interval', 3600000)),
    (select jsonb_agg(jsonb_build_object('payload', i)) from generate_series(1, p_tasks) i),
    null, null) #>> '{job,id}')::uuid;
end
$$;

create function pg_temp.violations(p_job uuid) returns text[]
language sql as $$
  select coalesce(array_agg(distinct invariant order by invariant), '{}')
  from job_service_api.invariant_violations(array[p_job])
$$;

select set_config('test.job', pg_temp.new_job(3)::text, true);
select is(pg_temp.violations(current_setting('test.job')::uuid), '{}'::text[],
  'a fresh job violates nothing');

-- counter drift: one more succeeded than the rows say
update job_shards set pending = pending - 1 where job_id = current_setting('test.job')::uuid and shard = 0;
update job_shard_ends set succeeded = succeeded + 1 where job_id = current_setting('test.job')::uuid and shard = 1;
select ok('counters equal task rows' = any (pg_temp.violations(current_setting('test.job')::uuid)),
  'counter drift is caught');

-- an error counted that has no row
select set_config('test.job', pg_temp.new_job(1)::text, true);
update job_shards set errors = errors + 1 where job_id = current_setting('test.job')::uuid and shard = 0;
select ok('error_count equals error rows' = any (pg_temp.violations(current_setting('test.job')::uuid)),
  'an error count without its row is caught');

-- a pending task that fell off the claim queue (lost: nobody could ever claim it)
select set_config('test.job', pg_temp.new_job(2)::text, true);
delete from task_ready where job_id = current_setting('test.job')::uuid
  and task_id = (select min(id) from tasks where job_id = current_setting('test.job')::uuid);
select ok('pending tasks are on the claim queue' = any (pg_temp.violations(current_setting('test.job')::uuid)),
  'a pending task missing from the claim queue is caught');

-- a queue row for a task that already ended (it could be claimed a second time)
select set_config('test.job', pg_temp.new_job(2)::text, true);
set local session_replication_role = replica;
update tasks set status = 'succeeded' where id = (select min(id) from tasks where job_id = current_setting('test.job')::uuid);
set local session_replication_role = origin;
select ok('the claim queue holds only pending tasks' = any (pg_temp.violations(current_setting('test.job')::uuid)),
  'a queued task that is not pending is caught');

-- a running task the shard does not count (a parallelism slot lost or double-used)
select set_config('test.job', pg_temp.new_job(2)::text, true);
set local session_replication_role = replica;
delete from task_ready where job_id = current_setting('test.job')::uuid;
update tasks set status = 'running', worker_id = 'ghost', lease_expires_at = now() + interval '1 minute', shard = 1
where job_id = current_setting('test.job')::uuid;
set local session_replication_role = origin;
select ok('shard counts its running tasks' = any (pg_temp.violations(current_setting('test.job')::uuid)),
  'running tasks a shard does not count are caught');

-- statuses against the tasks: completed with a task pending; queued with every task ended
select set_config('test.job', pg_temp.new_job(1)::text, true);
set local session_replication_role = replica;
update jobs set status = 'completed' where id = current_setting('test.job')::uuid;
set local session_replication_role = origin;
select ok('a completed job has only succeeded tasks' = any (pg_temp.violations(current_setting('test.job')::uuid)),
  'a completed job with a pending task is caught');

select set_config('test.job', pg_temp.new_job(1)::text, true);
set local session_replication_role = replica;
delete from task_ready where job_id = current_setting('test.job')::uuid;
update tasks set status = 'succeeded' where job_id = current_setting('test.job')::uuid;
update job_shards set pending = pending - 1 where job_id = current_setting('test.job')::uuid and shard = 0;
update job_shard_ends set succeeded = succeeded + 1 where job_id = current_setting('test.job')::uuid and shard = 1;
set local session_replication_role = origin;
select ok('no queued or running job with all its tasks ended' = any (pg_temp.violations(current_setting('test.job')::uuid)),
  'a job left queued with every task ended (a missed completion check) is caught');

select set_config('test.job', pg_temp.new_job(1)::text, true);
set local session_replication_role = replica;
update jobs set status = 'cancelling' where id = current_setting('test.job')::uuid;
set local session_replication_role = origin;
select ok('a cancelling job has a running task' = any (pg_temp.violations(current_setting('test.job')::uuid)),
  'a cancelling job with nothing left to stop is caught');

select * from finish();
rollback;
