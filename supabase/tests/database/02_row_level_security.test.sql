-- Row-level security: authenticated users read only their own rows and write nothing; anon gets
-- nothing; service_role sees everything.
begin;
create extension if not exists pgtap with schema extensions;
-- the service's own schema first: the tests name its tables and types unqualified
set local search_path = job_service, extensions, public;
select plan(34);

-- every table of the service has RLS on
select is(
  (select count(*)::int from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'job_service' and c.relkind = 'r' and not c.relrowsecurity),
  0, 'every table in job_service has row-level security enabled');

-- two users, one job each, with a task, an error and an event
select set_config('test.alice', gen_random_uuid()::text, true), set_config('test.bob', gen_random_uuid()::text, true);
select job_service_api.create_job(
  jsonb_build_object('role', 'authenticated', 'user_id', current_setting('test.alice'), 'request_id', 'rls-a'),
  jsonb_build_object('user_id', current_setting('test.alice'), 'product_id', 'p', 'sending_group_id', 'g',
    'priority', 50, 'max_parallel_tasks', 10, 'start', true, 'metadata', '{}'::jsonb,
    'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000, 'backoff', 'fixed', 'max_retry_interval', 3600000)),
  '[{"payload": {"for": "alice"}}]', 'alice-key', repeat('a', 64));
select job_service_api.create_job(
  jsonb_build_object('role', 'authenticated', 'user_id', current_setting('test.bob'), 'request_id', 'rls-b'),
  jsonb_build_object('user_id', current_setting('test.bob'), 'product_id', 'p', 'sending_group_id', 'g',
    'priority', 50, 'max_parallel_tasks', 10, 'start', true, 'metadata', '{}'::jsonb,
    'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000, 'backoff', 'fixed', 'max_retry_interval', 3600000)),
  '[{"payload": {"for": "bob"}}]', 'bob-key', repeat('b', 64));
insert into job_errors (job_id, attempt, code, category, message)
select id, 1, 'TIMEOUT', 'transient', 'slow' from jobs where user_id in (current_setting('test.alice')::uuid, current_setting('test.bob')::uuid);

-- as alice
select set_config('request.jwt.claims', json_build_object('sub', current_setting('test.alice'), 'role', 'authenticated')::text, true);
set local role authenticated;

select results_eq($$ select user_id::text from jobs $$, $$ values (current_setting('test.alice')) $$, 'alice sees only her job');
select results_eq($$ select payload ->> 'for' from tasks $$, $$ values ('alice') $$, 'alice sees only her tasks');
select is((select count(*)::int from job_errors), 1, 'alice sees only her job''s errors');
select is((select count(*)::int from job_events), 1, 'alice sees only her job''s events');
select is((select count(*)::int from audit_log), 1, 'alice sees only her audit rows');
select throws_ok($$ select key from idempotency_keys $$, '42501', null, 'idempotency keys are engine-internal: not readable by users');
select ok((select count(*) from error_catalogue) > 0, 'the error catalogue is readable');
select throws_ok($$ select * from job_shards $$, '42501', null, 'the counter shards are not readable by users');
select throws_ok($$ select last_error from notifications $$, '42501', null,
  'the notification outbox (what a webhook receiver answered) is not readable by users');
select throws_ok($$ select * from task_ready $$, '42501', null, 'the claim queue is not readable by users');
select throws_ok($$ update job_shards set pending = 0 $$, '42501', null, 'alice cannot change counters');

select throws_ok($$ insert into jobs (user_id, product_id, sending_group_id, retry_on_errors, max_retry_interval_ms)
                   values (auth.uid(), 'p', 'g', '{}', 0) $$, '42501', null, 'alice cannot insert jobs');
select throws_ok($$ update jobs set priority = 99 $$, '42501', null, 'alice cannot update jobs');
select throws_ok($$ delete from jobs $$, '42501', null, 'alice cannot delete jobs');
select throws_ok($$ update tasks set status = 'succeeded' $$, '42501', null, 'alice cannot update tasks');
select throws_ok($$ insert into job_errors (job_id, attempt, code, category, message) select id, 1, 'X_Y', 'unknown', 'm' from jobs $$,
  '42501', null, 'alice cannot insert errors');
select throws_ok($$ insert into audit_log (job_id, owner_id, action, actor_role) values (gen_random_uuid(), auth.uid(), 'job.forged', 'x') $$,
  '42501', null, 'alice cannot forge audit rows');
select throws_ok($$ delete from idempotency_keys $$, '42501', null, 'alice cannot delete idempotency keys');
select throws_ok($$ select job_service_api.get_job('{}', gen_random_uuid(), false, false) $$, '42501', null,
  'alice cannot call the API functions directly');
select throws_ok($$ select job_service.actor_role() $$, '42501', null, 'alice cannot use private helpers');

-- as bob
reset role;
select set_config('request.jwt.claims', json_build_object('sub', current_setting('test.bob'), 'role', 'authenticated')::text, true);
set local role authenticated;
select results_eq($$ select user_id::text from jobs $$, $$ values (current_setting('test.bob')) $$, 'bob sees only his job');
select results_eq($$ select payload ->> 'for' from tasks $$, $$ values ('bob') $$, 'bob sees only his tasks');

-- as anon
reset role;
select set_config('request.jwt.claims', '{"role": "anon"}', true);
set local role anon;
select throws_ok($$ select * from job_service.jobs $$, '42501', null, 'anon cannot read jobs');
select throws_ok($$ select * from job_service.tasks $$, '42501', null, 'anon cannot read tasks');
select throws_ok($$ select * from job_service.job_errors $$, '42501', null, 'anon cannot read errors');
select throws_ok($$ select * from job_service.job_events $$, '42501', null, 'anon cannot read events');
select throws_ok($$ select * from job_service.audit_log $$, '42501', null, 'anon cannot read the audit log');
select throws_ok($$ select * from job_service.idempotency_keys $$, '42501', null, 'anon cannot read idempotency keys');
select throws_ok($$ select * from job_service.error_catalogue $$, '42501', null, 'anon cannot read the catalogue');
select throws_ok($$ select * from job_service.job_shards $$, '42501', null, 'anon cannot read counters');
select throws_ok($$ select * from job_service.notifications $$, '42501', null, 'anon cannot read notifications');

-- as service_role
reset role;
set local role service_role;
select is((select count(*)::int from jobs where user_id in (current_setting('test.alice')::uuid, current_setting('test.bob')::uuid)),
  2, 'the service sees every user''s jobs');
select throws_ok($$ delete from audit_log $$, '42501', null, 'the service cannot delete audit rows');

reset role;
select * from finish();
rollback;
