-- Row-level security for every table and every API role, found from the catalog (so a table added
-- later is covered without editing this file):
-- - every table in job_service has RLS on; anon has no privilege on any of them and reading is refused;
-- - authenticated can neither insert, update, delete nor truncate anything, and every attempt fails;
-- - where authenticated may read, a user sees exactly her own rows (owner from user_id, owner_id,
--   job_id or sending_group_id) and none of another user's; a table without an owner column may be
--   readable only if it is reference data (error_catalogue);
-- - service_role (BYPASSRLS on Supabase) sees every user's rows where it may read;
-- - the job_service_api schema is closed to anon and authenticated.
begin;
create extension if not exists pgtap with schema extensions;
select * from no_plan();

-- two users, each with a job (own sending group, two tasks, an idempotency key), an error, a
-- notification, and rate limits where the tables for them exist
select set_config('test.alice', gen_random_uuid()::text, true),
       set_config('test.bob', gen_random_uuid()::text, true);

create function pg_temp.make_job(p_user text, p_group text) returns uuid
language plpgsql as $$
declare
  v_job jsonb;
begin
  v_job := job_service_api.create_job(
    jsonb_build_object('role', 'authenticated', 'user_id', p_user, 'request_id', 'rls06-' || p_group),
    jsonb_build_object('user_id', p_user, 'product_id', 'rls06', 'sending_group_id', p_group,
      'priority', 50, 'max_parallel_tasks', 10, 'start', true, 'metadata', '{}'::jsonb,
      'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000, 'backoff', 'fixed',
                                         'max_retry_interval', 3600000)),
    '[{"payload": 1}, {"payload": 2}]', 'rls06-key-' || p_group, repeat('c', 64));
  return (v_job #>> '{job,id}')::uuid;
end
$$;

select set_config('test.alice_job', pg_temp.make_job(current_setting('test.alice'), 'rls06-alice-' || current_setting('test.alice'))::text, true),
       set_config('test.bob_job', pg_temp.make_job(current_setting('test.bob'), 'rls06-bob-' || current_setting('test.bob'))::text, true);
select set_config('test.alice_group', 'rls06-alice-' || current_setting('test.alice'), true),
       set_config('test.bob_group', 'rls06-bob-' || current_setting('test.bob'), true);

insert into job_service.job_errors (job_id, attempt, code, category, message)
values (current_setting('test.alice_job')::uuid, 1, 'TIMEOUT', 'transient', 'alice error'),
       (current_setting('test.bob_job')::uuid, 1, 'TIMEOUT', 'transient', 'bob error');
insert into job_service.notifications (type, job_id, user_id)
values ('job.failed', current_setting('test.alice_job')::uuid, current_setting('test.alice')::uuid),
       ('job.failed', current_setting('test.bob_job')::uuid, current_setting('test.bob')::uuid);

do $$
begin
  if to_regclass('job_service.job_rate_limits') is not null then
    execute $q$insert into job_service.job_rate_limits (job_id, max_per_second, burst, tokens, refilled_at)
               values ($1, 1, 1, 1, now()), ($2, 1, 1, 1, now())$q$
      using current_setting('test.alice_job')::uuid, current_setting('test.bob_job')::uuid;
  end if;
  if to_regclass('job_service.sending_group_limits') is not null then
    execute $q$insert into job_service.sending_group_limits (sending_group_id, max_per_second, burst, tokens, refilled_at)
               values ($1, 1, 1, 1, now()), ($2, 1, 1, 1, now())$q$
      using current_setting('test.alice_group'), current_setting('test.bob_group');
  end if;
exception when others then
  raise notice 'rate limit rows not written (%): those tables are checked without them', sqlerrm;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- helpers: a statement run as a role (refused or not), a count as a role, whose rows a table holds
-- ---------------------------------------------------------------------------------------------
create function pg_temp.refused(p_role text, p_sql text) returns boolean
language plpgsql as $$
begin
  execute format('set local role %I', p_role);
  execute p_sql;
  reset role;
  return false;
exception
  -- the role switch is undone with the failed block
  when insufficient_privilege then return true;
  when others then return false;
end
$$;

create function pg_temp.count_as(p_role text, p_sql text) returns bigint
language plpgsql as $$
declare
  v bigint;
begin
  execute format('set local role %I', p_role);
  execute p_sql into v;
  reset role;
  return v;
exception when insufficient_privilege then
  return -1;
end
$$;

-- the predicate that selects the rows of a user (alice or bob) in a table; null: no owner column
create function pg_temp.rows_of(p_table regclass, p_who text) returns text
language plpgsql as $$
declare
  v_cols text[] := array(select attname::text from pg_attribute
                         where attrelid = p_table and attnum > 0 and not attisdropped);
begin
  if 'user_id' = any (v_cols) then
    return format('user_id = %L::uuid', current_setting('test.' || p_who));
  elsif 'owner_id' = any (v_cols) then
    return format('owner_id = %L::uuid', current_setting('test.' || p_who));
  elsif 'job_id' = any (v_cols) then
    return format('job_id = %L::uuid', current_setting('test.' || p_who || '_job'));
  elsif 'sending_group_id' = any (v_cols) then
    return format('sending_group_id = %L', current_setting('test.' || p_who || '_group'));
  end if;
  return null;
end
$$;

create function pg_temp.rls_every_table() returns setof text
language plpgsql as $$
declare
  t record;
  v_alice text;
  v_bob text;
  v_first text;
  v_stmt text;
  v_mine bigint;
  v_theirs bigint;
  v_seen bigint;
  v_total bigint;
  v_privilege text;
  v_claims_alice text := json_build_object('sub', current_setting('test.alice'), 'role', 'authenticated')::text;
begin
  for t in
    select c.oid::regclass as tbl, c.relname, c.relrowsecurity
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'job_service' and c.relkind in ('r', 'p')
    order by c.relname
  loop
    return next ok(t.relrowsecurity, format('%s: row-level security is enabled', t.tbl));

    -- anon: nothing at all
    foreach v_privilege in array array['select', 'insert', 'update', 'delete', 'truncate', 'references', 'trigger'] loop
      return next ok(not has_table_privilege('anon', t.tbl, v_privilege),
                     format('%s: anon has no %s privilege', t.tbl, v_privilege));
    end loop;
    return next ok(pg_temp.refused('anon', format('select 1 from %s limit 1', t.tbl)),
                   format('%s: anon reading is refused', t.tbl));

    -- authenticated: never writes, whatever the statement
    foreach v_privilege in array array['insert', 'update', 'delete', 'truncate', 'references', 'trigger'] loop
      return next ok(not has_table_privilege('authenticated', t.tbl, v_privilege),
                     format('%s: authenticated has no %s privilege', t.tbl, v_privilege));
    end loop;
    select quote_ident(attname) into v_first from pg_attribute
    where attrelid = t.tbl and attnum > 0 and not attisdropped and attidentity = '' and attgenerated = ''
    order by attnum limit 1;
    foreach v_stmt in array array[
      format('insert into %s default values', t.tbl),
      format('update %s set %s = %s', t.tbl, v_first, v_first),
      format('delete from %s', t.tbl),
      format('truncate %s', t.tbl)
    ] loop
      return next ok(pg_temp.refused('authenticated', v_stmt),
                     format('%s: authenticated is refused: %s', t.tbl, split_part(v_stmt, ' ', 1)));
    end loop;

    -- authenticated reading: her own rows only
    v_alice := pg_temp.rows_of(t.tbl, 'alice');
    v_bob := pg_temp.rows_of(t.tbl, 'bob');
    if not has_table_privilege('authenticated', t.tbl, 'select') then
      return next ok(pg_temp.refused('authenticated', format('select 1 from %s limit 1', t.tbl)),
                     format('%s: authenticated reading is refused', t.tbl));
    elsif v_alice is null then
      return next ok(t.relname in ('error_catalogue'),
                     format('%s: readable by every user without an owner column only if it is reference data', t.tbl));
    else
      execute format('select count(*) from %s where %s', t.tbl, v_alice) into v_mine;
      execute format('select count(*) from %s where %s', t.tbl, v_bob) into v_theirs;
      perform set_config('request.jwt.claims', v_claims_alice, true);
      v_seen := pg_temp.count_as('authenticated', format('select count(*) from %s where %s', t.tbl, v_bob));
      return next is(v_seen, 0::bigint,
                     format('%s: a user sees none of the other user''s %s rows', t.tbl, v_theirs));
      v_seen := pg_temp.count_as('authenticated', format('select count(*) from %s where %s', t.tbl, v_alice));
      return next is(v_seen, v_mine, format('%s: a user sees all %s of her own rows', t.tbl, v_mine));
      v_total := pg_temp.count_as('authenticated', format('select count(*) from %s', t.tbl));
      return next is(v_total, v_mine, format('%s: a user sees nothing but her own rows', t.tbl));
      perform set_config('request.jwt.claims', '', true);
    end if;

    -- service_role: everyone's rows
    if has_table_privilege('service_role', t.tbl, 'select') and v_alice is not null then
      execute format('select count(*) from %s where %s or %s', t.tbl, v_alice, v_bob) into v_total;
      return next is(
        pg_temp.count_as('service_role', format('select count(*) from %s where %s or %s', t.tbl, v_alice, v_bob)),
        v_total, format('%s: service_role sees both users'' rows', t.tbl));
    end if;
  end loop;

  -- the schemas of the engine are closed to the API roles
  for t in select unnest(array['job_service_api']) as relname loop
    return next ok(not has_schema_privilege('anon', t.relname, 'usage'), format('%s: no usage for anon', t.relname));
    return next ok(not has_schema_privilege('authenticated', t.relname, 'usage'),
                   format('%s: no usage for authenticated', t.relname));
  end loop;
  -- and so are their tables
  for t in
    select c.oid::regclass as tbl from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'job_service_api' and c.relkind in ('r', 'p') order by 1
  loop
    return next ok(pg_temp.refused('authenticated', format('select 1 from %s limit 1', t.tbl))
                   and pg_temp.refused('anon', format('select 1 from %s limit 1', t.tbl)),
                   format('%s: not readable by authenticated or anon', t.tbl));
  end loop;
  -- no SECURITY DEFINER function in job_service that the API roles may call (it would run as the owner)
  return next is(
    (select count(*)::int from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'job_service' and p.prosecdef
       and (has_function_privilege('anon', p.oid, 'execute')
            or has_function_privilege('authenticated', p.oid, 'execute'))),
    0, 'no SECURITY DEFINER function in job_service is callable by anon or authenticated');
end
$$;

select * from pg_temp.rls_every_table();

-- a user cannot widen her view by claiming another user's id in a claim the database would trust:
-- auth.uid() comes from the verified token only, and reading as "bob" shows only bob's rows
select set_config('request.jwt.claims', json_build_object('sub', current_setting('test.bob'), 'role', 'authenticated')::text, true);
set local role authenticated;
select is((select count(*)::int from job_service.jobs where user_id = current_setting('test.alice')::uuid), 0,
  'as bob: none of alice''s jobs');
select is((select count(*)::int from job_service.tasks where job_id = current_setting('test.alice_job')::uuid), 0,
  'as bob: none of alice''s tasks');
reset role;

select * from finish();
rollback;
