-- runMaintenance on a schedule, as Supabase's "Scheduling Edge Functions" guide does it: pg_cron
-- calls the job-operations function every minute through pg_net, with the project URL and a secret
-- key kept in Supabase Vault. One idempotent step, run once per project by its operator (the
-- `postgres` role; `deno task maintenance:schedule` runs it):
--
--   select job_service_api.schedule_maintenance('https://<ref>.supabase.co', '<sb_secret_… key>');
--
-- It stores (or updates) the two Vault secrets and creates (or updates) the one cron job. Where
-- pg_cron, pg_net or Vault is missing it says which, and how to enable it (SQLSTATE 55000). Until
-- it is done the claims run the overdue timers themselves (due_timers migration); notifications
-- and retention wait for the schedule.
--
-- Nothing here names vault, cron or net statically: those schemas exist only where the extensions
-- are installed (every Supabase project; not a plain PostgreSQL), so their objects are reached by
-- dynamic SQL once they are known to be there. The schema goes in through format('%I') rather than
-- in a constant string: plpgsql_check (`supabase db lint`, run in CI) resolves constant EXECUTE
-- strings too, and would fail on a database without the extensions.

-- The extensions, created as Supabase's docs create them, where the server has them.
do $$
begin
  if exists (select from pg_available_extensions where name = 'pg_cron') then
    create extension if not exists pg_cron with schema pg_catalog;
  end if;
  if exists (select from pg_available_extensions where name = 'pg_net') then
    create extension if not exists pg_net with schema extensions;
  end if;
end
$$;

-- Names the schedule and the secrets go by.
create function job_service.maintenance_names() returns table (
  cron_job text, url_secret text, key_secret text
)
language sql immutable
as $$
  select 'batch-jobs-maintenance', 'batch_jobs_project_url', 'batch_jobs_service_key'
$$;
comment on function job_service.maintenance_names() is
  'The pg_cron job name and the Vault secret names of the maintenance schedule.';

-- Where a function of a schema exists (the extension that defines it is installed).
create function job_service.routine_exists(p_schema text, p_name text) returns boolean
language sql stable
as $$
  select exists (
    select from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = p_schema and p.proname = p_name)
$$;
comment on function job_service.routine_exists(text, text) is
  'Whether schema.name is a function here: how maintenance finds pg_cron, pg_net and Vault.';

create function job_service.maintenance_secret(p_name text) returns text
language plpgsql stable
as $$
declare
  v_value text;
begin
  if to_regclass('vault.decrypted_secrets') is null then
    return null;
  end if;
  execute format('select decrypted_secret from %I.decrypted_secrets where name = $1 limit 1', 'vault')
    into v_value using p_name;
  return v_value;
end
$$;
comment on function job_service.maintenance_secret(text) is
  'A secret of the maintenance schedule from Vault (null where it or Vault is missing).';

create function job_service.store_maintenance_secret(p_name text, p_value text, p_description text)
returns void
language plpgsql
as $$
declare
  v_id uuid;
begin
  execute format('select id from %I.secrets where name = $1 limit 1', 'vault') into v_id using p_name;
  if v_id is null then
    execute format('select %I.create_secret($1, $2, $3)', 'vault') using p_value, p_name, p_description;
  else
    execute format('select %I.update_secret($1, $2)', 'vault') using v_id, p_value;
  end if;
end
$$;
comment on function job_service.store_maintenance_secret(text, text, text) is
  'Creates the named Vault secret, or gives the existing one its new value.';

create function job_service.maintenance_scheduled() returns boolean
language plpgsql stable
as $$
declare
  v_scheduled boolean;
begin
  if to_regclass('cron.job') is null then
    return false;
  end if;
  execute format('select exists (select from %I.job where jobname = $1 and active)', 'cron')
    into v_scheduled using (select cron_job from job_service.maintenance_names());
  return v_scheduled;
exception when insufficient_privilege then
  -- cron.job unreadable by this function's owner: getStats still answers (overdue tells the rest)
  return false;
end
$$;
comment on function job_service.maintenance_scheduled() is
  'Whether the pg_cron job that calls runMaintenance exists and is active (getStats).';

-- What pg_cron runs every minute.
create function job_service.invoke_maintenance() returns bigint
language plpgsql
as $$
declare
  v_names record;
  v_url text;
  v_key text;
  v_request bigint;
begin
  select * into v_names from job_service.maintenance_names();
  v_url := job_service.maintenance_secret(v_names.url_secret);
  v_key := job_service.maintenance_secret(v_names.key_secret);
  if v_url is null or v_key is null then
    raise warning 'batch jobs maintenance: the Vault secrets % / % are not set', v_names.url_secret,
      v_names.key_secret
      using hint = 'Run job_service_api.schedule_maintenance(url, key) (deno task maintenance:schedule).';
    return null;
  end if;
  execute format('select %I.http_post(url := $1, body := $2, headers := $3, timeout_milliseconds := $4)',
                  'net')
    into v_request
    using rtrim(v_url, '/') || '/functions/v1/job-operations',
          '{"action":"runMaintenance","data":{}}'::jsonb,
          jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || v_key,
                             'apikey', v_key),
          30000;
  return v_request;
end
$$;
comment on function job_service.invoke_maintenance() is
  'What pg_cron runs every minute: an asynchronous POST of runMaintenance to the job-operations '
  'function (pg_net), with the project URL and service key from Vault.';

create function job_service_api.schedule_maintenance(p_url text, p_key text) returns jsonb
language plpgsql
as $$
declare
  v_names record;
  v_missing record;
  v_url text := rtrim(btrim(p_url), '/');
  v_key text := btrim(p_key);
  v_cron_db text;
  v_job bigint;
begin
  if v_url is null or v_url !~ '^https?://[^/\s]+' then
    raise exception 'schedule_maintenance: the project URL must be http(s)://host, got %',
      coalesce(quote_literal(p_url), 'null')
      using errcode = '22023', hint = 'The project URL, e.g. https://<ref>.supabase.co.';
  end if;
  if v_key is null or v_key = '' or v_key ~ '\s' then
    raise exception 'schedule_maintenance: the key is empty or holds white space'
      using errcode = '22023',
            hint = 'A secret key (sb_secret_…) or the legacy service_role key of the project.';
  end if;
  -- the extensions it needs, in this order: the first one missing is named
  select m.* into v_missing
  from (values
    (1, 'Supabase Vault (extension supabase_vault)', 'supabase_vault', 'vault',
     job_service.routine_exists('vault', 'create_secret') and to_regclass('vault.secrets') is not null),
    (2, 'pg_cron', 'pg_cron', 'pg_catalog', job_service.routine_exists('cron', 'schedule')),
    (3, 'pg_net', 'pg_net', 'extensions', job_service.routine_exists('net', 'http_post'))
  ) as m (ord, label, extension, schema, present)
  where not m.present
  order by m.ord
  limit 1;
  if found then
    raise exception 'schedule_maintenance: % is not installed', v_missing.label
      using errcode = '55000',
            hint = format('Enable the extension %s (Dashboard > Database > Extensions, or '
                          'create extension %s with schema %s), then run this again.',
                          v_missing.extension, v_missing.extension, v_missing.schema);
  end if;
  -- two operators at once still leave one pair of secrets and one job
  perform pg_advisory_xact_lock(hashtextextended('job_service_api.schedule_maintenance', 0));
  select * into v_names from job_service.maintenance_names();
  perform job_service.store_maintenance_secret(v_names.url_secret, v_url,
    'Batch job service: the project URL runMaintenance is called at');
  perform job_service.store_maintenance_secret(v_names.key_secret, v_key,
    'Batch job service: the secret key the maintenance schedule calls runMaintenance with');
  -- cron.schedule replaces a job of the same name; a database other than pg_cron's own is named
  v_cron_db := coalesce(nullif(current_setting('cron.database_name', true), ''), current_database());
  if v_cron_db = current_database() then
    execute format('select %I.schedule($1, $2, $3)', 'cron') into v_job
      using v_names.cron_job, '* * * * *', 'select job_service.invoke_maintenance()';
  else
    execute format('select %I.schedule_in_database($1, $2, $3, $4)', 'cron') into v_job
      using v_names.cron_job, '* * * * *', 'select job_service.invoke_maintenance()',
            current_database();
  end if;
  return jsonb_build_object(
    'cron_job', v_names.cron_job,
    'cron_job_id', v_job,
    'schedule', '* * * * *',
    'url', v_url || '/functions/v1/job-operations',
    'secrets', jsonb_build_array(v_names.url_secret, v_names.key_secret));
end
$$;
comment on function job_service_api.schedule_maintenance(text, text) is
  'The one step that schedules runMaintenance every minute: stores the project URL and a secret key '
  'in Vault and creates the pg_cron job that posts to the function with pg_net. Idempotent (again: '
  'the secrets get the new values, one job stays). Raises 55000 naming a missing extension. For the '
  'operator only (the functions'' runtime role may not call it).';
