-- User quotas in the database: the configured defaults (settings batch.default_*) bind a user
-- without a row, a stored row overrides them, the service is never bound, and a refused create
-- writes nothing.
begin;
create extension if not exists pgtap with schema extensions;
select plan(9);

select set_config('test.user', gen_random_uuid()::text, true);

create function pg_temp.create_as(p_role text, p_priority integer, p_tasks jsonb) returns jsonb
language sql as $$
  select job_service_api.create_job(
    jsonb_build_object('role', p_role, 'user_id', case when p_role = 'authenticated' then current_setting('test.user') end,
                       'request_id', 'quota12'),
    jsonb_build_object('user_id', current_setting('test.user'), 'product_id', 'quota12', 'sending_group_id', 'quota12',
      'priority', p_priority, 'max_parallel_tasks', 10, 'start', false, 'metadata', '{}'::jsonb,
      'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000, 'backoff', 'fixed',
                                         'max_retry_interval', 3600000)),
    p_tasks, null, null)
$$;

select lives_ok($$ select pg_temp.create_as('authenticated', 100, '[{"payload": 1}]') $$,
  'no defaults configured: no limit');

select set_config('batch.default_max_active_jobs', '1', true),
       set_config('batch.default_max_priority', '50', true);
select throws_ok($$ select pg_temp.create_as('authenticated', 10, '[]') $$, 'JS409', 'QUOTA_EXCEEDED',
  'the default max_active_jobs binds a user without a row');
select throws_ok($$ select pg_temp.create_as('authenticated', 60, '[]') $$, 'JS409', 'QUOTA_EXCEEDED',
  'the default max_priority binds a user without a row');
select is((select count(*)::int from job_service.jobs where user_id = current_setting('test.user')::uuid), 1,
  'refused creates wrote nothing');
select lives_ok($$ select pg_temp.create_as('service_role', 100, '[{"payload": 1}]') $$,
  'the service is never bound');

select is(
  job_service_api.set_user_limits(jsonb_build_object('role', 'service_role', 'request_id', 'quota12'),
                                  current_setting('test.user')::uuid, '{"max_active_jobs": 5}'),
  jsonb_build_object('user_id', current_setting('test.user'), 'max_priority', 50, 'max_active_jobs', 5,
                     'max_pending_tasks', null),
  'the first setUserLimits copies the defaults into the fields it omits');
select lives_ok($$ select pg_temp.create_as('authenticated', 50, '[{"payload": 1}]') $$,
  'the stored row overrides the defaults');
select throws_ok($$ select pg_temp.create_as('authenticated', 51, '[]') $$, 'JS409', 'QUOTA_EXCEEDED',
  'the stored max_priority still binds');
select is(
  (select action || ' ' || (job_id is null)::text || ' ' || request_id from job_service.audit_log
   where owner_id = current_setting('test.user')::uuid and action = 'user_limits.set'),
  'user_limits.set true quota12', 'the change is audited, about the user, not a job');

select * from finish();
rollback;
