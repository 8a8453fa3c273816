-- The tasks policy never makes a user's read scan every tenant's rows: a user with 3 tasks among
-- 100 000 tasks of 1 000 other users reads tasks through the Data API's path (role
-- authenticated, RLS on) with an index scan on tasks_job_idx over her own job ids, computed once
-- (the `(select auth.uid())` / `= any (array(select …))` form of 20261128000300).
begin;
create extension if not exists pgtap with schema extensions;
select plan(4);

select set_config('test.alice', gen_random_uuid()::text, true);

-- 1 000 other users with one job of 100 tasks each (written directly: the plan is the subject)
with owners as (
  insert into job_service.jobs (user_id, product_id, sending_group_id, retry_on_errors, max_retry_interval_ms, shard_count)
  select gen_random_uuid(), 'plan11', 'plan11-' || g, '{}', 3600000, 1 from generate_series(1, 1000) g
  returning id
)
insert into job_service.tasks (job_id, payload)
select o.id, to_jsonb(t) from owners o cross join generate_series(1, 100) t;

with mine as (
  insert into job_service.jobs (user_id, product_id, sending_group_id, retry_on_errors, max_retry_interval_ms, shard_count)
  values (current_setting('test.alice')::uuid, 'plan11', 'plan11-alice', '{}', 3600000, 1)
  returning id
)
insert into job_service.tasks (job_id, payload) select id, to_jsonb(t) from mine cross join generate_series(1, 3) t;

analyze job_service.jobs;
analyze job_service.tasks;

-- EXPLAIN's text, one line per row, as a user may run it
create function pg_temp.plan_of(p_query text) returns text
language plpgsql as $$
declare
  v_line text;
  v_plan text := '';
begin
  for v_line in execute 'explain ' || p_query loop
    v_plan := v_plan || v_line || E'\n';
  end loop;
  return v_plan;
end
$$;

select is((select count(*)::int from job_service.tasks), 100003, '100 003 tasks in all');

select set_config('request.jwt.claims',
  json_build_object('sub', current_setting('test.alice'), 'role', 'authenticated')::text, true);
set local role authenticated;
select set_config('test.plan', pg_temp.plan_of('select * from job_service.tasks'), true);
select is((select count(*)::int from job_service.tasks), 3, 'the user sees her 3 tasks');
reset role;

select diag('EXPLAIN select * from job_service.tasks as the user:' || E'\n' || current_setting('test.plan'));
select matches(current_setting('test.plan'), 'Index (Only )?Scan (using|on) tasks_job_idx',
  'the read goes through the index on tasks.job_id');
select doesnt_match(current_setting('test.plan'), 'Seq Scan on tasks',
  'the read never scans every tenant''s tasks');

select * from finish();
rollback;
