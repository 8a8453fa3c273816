-- Runs last: who may call what (docs/operations.md#least-privilege).
--
-- 1. No routine of the service is executable by PUBLIC (PostgreSQL grants EXECUTE on every new
--    function to PUBLIC, and a per-schema default privilege cannot take that away). Grants are made
--    one by one where a role is meant to call a routine.
revoke execute on all routines in schema job_service, job_service_api from public;

-- 2. The Edge Functions' own login role: it owns nothing, is no superuser, bypasses no row-level
--    security and may only execute the entry points (job_service_api). It is created here, by the
--    migration role (CREATEROLE, like hosted Supabase's `postgres`), without a password: locally it
--    logs in through trust authentication; on a project the operator gives it a password once and
--    hands the functions its URL as JOB_SERVICE_DB_URL (docs/operations.md#least-privilege).
--    Cluster-wide, so created only where missing and never dropped by a migration.
do $$
begin
  if not exists (select from pg_roles where rolname = 'job_service_runtime') then
    create role job_service_runtime login nosuperuser nocreatedb nocreaterole nobypassrls noinherit;
  end if;
end
$$;
comment on role job_service_runtime is
  'The batch job service''s Edge Functions: may only execute the job_service_api entry points.';

-- usage on job_service only to name its types (job_status) in calls: no table privilege comes with it
grant usage on schema job_service_api, job_service to job_service_runtime;

-- 3. Every entry point runs as its owner (SECURITY DEFINER) with a fixed, empty search_path, so the
--    runtime role needs no table privilege and no caller can redirect a name to an object of its
--    own. The entry points take the caller's role from their context argument: that is why only the
--    runtime role (which verified the token) may call them. Done here by `alter function` so the
--    migrations that define the bodies stay as they are; a routine added to job_service_api later
--    gets the same treatment by this loop (and pgTAP 10_privileges fails until it is declared).
do $$
declare
  r record;
begin
  for r in
    select p.oid::regprocedure as fn from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'job_service_api' and p.prokind = 'f'
  loop
    execute format('alter function %s security definer set search_path = %L', r.fn, '');
    execute format('grant execute on function %s to job_service_runtime', r.fn);
  end loop;
end
$$;

-- 4. Operator-only entry points: called by the project's operator (`postgres`), never by the
--    functions. schedule_maintenance writes Vault secrets and the cron job.
revoke execute on function job_service_api.schedule_maintenance(text, text) from job_service_runtime;
