-- The database enforces the status machine for every writer: direct SQL cannot make a move the
-- machine does not allow, nor one whose guard does not hold.
begin;
create extension if not exists pgtap with schema extensions;
-- the service's own schema first: the tests name its tables and types unqualified
set local search_path = job_service, extensions, public;
select plan(14);

select is((select count(*)::int from job_service.job_status_transitions), 27, 'the generated table has every edge');
select is(
  (select count(*)::int from job_service.job_status_transitions where from_status in ('completed', 'cancelled')),
  0, 'completed and cancelled are terminal');

create function pg_temp.new_job(p_status job_status, p_tasks int default 0) returns uuid language plpgsql as $$
declare v jsonb;
begin
  v := job_service_api.create_job('{"role":"service_role","request_id":"pgtap"}',
    jsonb_build_object('user_id', gen_random_uuid(), 'product_id', 'p', 'sending_group_id', 'g',
      'priority', 50, 'max_parallel_tasks', 2, 'start', p_status <> 'pending', 'metadata', '{}'::jsonb,
      'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000, 'backoff', 'fixed',
                                         'max_retry_interval', 3600000)),
    (select coalesce(jsonb_agg(jsonb_build_object('payload', g)), '[]') from generate_series(1, p_tasks) g),
    null, null);
  return (v #>> '{job,id}')::uuid;
end $$;

select set_config('test.pending', pg_temp.new_job('pending')::text, true);
select set_config('test.queued', pg_temp.new_job('queued', 2)::text, true);

select throws_ok($$ update jobs set status = 'running' where id = current_setting('test.pending')::uuid $$,
  'JS409', 'INVALID_TRANSITION', 'pending → running is refused');
select throws_ok($$ update jobs set status = 'completed' where id = current_setting('test.queued')::uuid $$,
  'JS409', 'INVALID_TRANSITION', 'queued → completed with pending tasks is refused (guard)');
select throws_ok($$ update jobs set status = 'retrying', next_attempt_at = now() where id = current_setting('test.queued')::uuid $$,
  'JS409', 'INVALID_TRANSITION', 'queued → retrying is refused');
select throws_ok($$ insert into jobs (user_id, product_id, sending_group_id, status, retry_on_errors, max_retry_interval_ms, shard_count)
                   values (gen_random_uuid(), 'p', 'g', 'running', '{}', 0, 1) $$,
  'JS409', 'INVALID_TRANSITION', 'a job cannot be created running');

-- a legal direct move is accepted, with its event and audit row
select lives_ok($$ update jobs set status = 'paused' where id = current_setting('test.queued')::uuid $$,
  'queued → paused is accepted from SQL too');
select is((select count(*)::int from job_events where job_id = current_setting('test.queued')::uuid and type = 'status_changed'),
  1, 'the direct move wrote its event');

-- claim a task, then try to finish the cancellation while it runs
update jobs set status = 'queued' where id = current_setting('test.queued')::uuid;
select is(json_array_length(job_service_api.claim_tasks('{"role":"service_role"}', 'w1', 1, current_setting('test.queued')::uuid, 60000) -> 'tasks'),
  1, 'a task is claimed');
select is((select status::text from jobs where id = current_setting('test.queued')::uuid), 'running', 'the first claim moved the job to running');
select throws_ok($$ update jobs set status = 'cancelled' where id = current_setting('test.queued')::uuid $$,
  'JS409', 'INVALID_TRANSITION', 'running → cancelled while a task runs is refused (guard)');
select lives_ok($$ update jobs set status = 'cancelling' where id = current_setting('test.queued')::uuid $$,
  'running → cancelling while a task runs is accepted');
select throws_ok($$ update jobs set status = 'cancelled' where id = current_setting('test.queued')::uuid $$,
  'JS409', 'INVALID_TRANSITION', 'cancelling → cancelled while a task runs is refused (guard)');

-- progress of a job without tasks never goes down within an attempt
update jobs set progress_percentage = 50 where id = current_setting('test.pending')::uuid;
select throws_ok($$ update jobs set progress_percentage = 49 where id = current_setting('test.pending')::uuid $$,
  'JS409', 'INVALID_PROGRESS', 'progress going down is refused');

select * from finish();
rollback;
