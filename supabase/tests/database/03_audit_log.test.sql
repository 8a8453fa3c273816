-- The audit log: one row per job mutation with actor and request id, append-only for every role
-- (the owner included), surviving the job's deletion.
begin;
create extension if not exists pgtap with schema extensions;
-- the service's own schema first: the tests name its tables and types unqualified
set local search_path = job_service, extensions, public;
select plan(12);

select set_config('test.owner', gen_random_uuid()::text, true);
select set_config('test.job', (job_service_api.create_job(
  jsonb_build_object('role', 'service_role', 'request_id', 'audit-1'),
  jsonb_build_object('user_id', current_setting('test.owner'), 'product_id', 'p', 'sending_group_id', 'g',
    'priority', 50, 'max_parallel_tasks', 10, 'start', false, 'metadata', '{}'::jsonb,
    'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000, 'backoff', 'fixed', 'max_retry_interval', 3600000)),
  '[]', null, null) #>> '{job,id}'), true);

select results_eq(
  $$ select action, actor_role, request_id from audit_log where job_id = current_setting('test.job')::uuid $$,
  $$ values ('job.created', 'service_role', 'audit-1') $$,
  'creation is audited with actor and request id');
select is((select client_request_id from audit_log where job_id = current_setting('test.job')::uuid),
  null, 'no client id when the caller sent none');

-- the caller's own x-request-id is kept beside the server's, not in its place
select set_config('test.job2', (job_service_api.create_job(
  jsonb_build_object('role', 'service_role', 'request_id', 'server-2', 'client_request_id', 'mine.1'),
  jsonb_build_object('user_id', current_setting('test.owner'), 'product_id', 'p', 'sending_group_id', 'g',
    'priority', 50, 'max_parallel_tasks', 10, 'start', false, 'metadata', '{}'::jsonb,
    'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000, 'backoff', 'fixed', 'max_retry_interval', 3600000)),
  '[]', null, null) #>> '{job,id}'), true);
select results_eq(
  $$ select request_id, client_request_id from audit_log where job_id = current_setting('test.job2')::uuid $$,
  $$ values ('server-2', 'mine.1') $$,
  'the client''s request id is audited beside the server''s');

-- a direct SQL writer, without request context, is still audited
select job_service.set_request_context('{}');
update jobs set priority = 77 where id = current_setting('test.job')::uuid;
select results_eq(
  $$ select action, actor_role, (before ->> 'priority')::int, (after ->> 'priority')::int
     from audit_log where job_id = current_setting('test.job')::uuid and action = 'job.updated' $$,
  $$ values ('job.updated', 'db:postgres', 50, 77) $$,
  'a direct update is audited with before and after');

-- counter-only writes are not job mutations
update jobs set updated_at = updated_at where id = current_setting('test.job')::uuid;
select is((select count(*)::int from audit_log where job_id = current_setting('test.job')::uuid), 2,
  'a write that changes no steering field adds no audit row');

select throws_ok($$ update audit_log set actor_role = 'someone-else' $$, 'JS403', 'AUDIT_LOG_APPEND_ONLY',
  'UPDATE is refused even for the table owner');
select throws_ok($$ delete from audit_log $$, 'JS403', 'AUDIT_LOG_APPEND_ONLY', 'DELETE is refused even for the table owner');
select throws_ok($$ truncate audit_log $$, 'JS403', 'AUDIT_LOG_APPEND_ONLY', 'TRUNCATE is refused even for the table owner');

set local role service_role;
select throws_ok($$ update audit_log set actor_role = 'x' $$, '42501', null, 'the service role cannot update audit rows');
reset role;

-- deleting the job keeps its audit trail and adds the deletion with a snapshot
delete from jobs where id = current_setting('test.job')::uuid;
select results_eq(
  $$ select action from audit_log where job_id = current_setting('test.job')::uuid order by id $$,
  $$ values ('job.created'), ('job.updated'), ('job.deleted') $$,
  'the audit rows survive the job');
select is(
  (select before ->> 'product_id' from audit_log where job_id = current_setting('test.job')::uuid and action = 'job.deleted'),
  'p', 'the deletion row holds a snapshot of the job as it was');
select is((select count(*)::int from job_events where job_id = current_setting('test.job')::uuid), 0,
  'the job''s events went with it');

select * from finish();
rollback;
