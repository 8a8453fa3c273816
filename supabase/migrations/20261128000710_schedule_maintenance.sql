-- Calls runMaintenance every minute where pg_cron and pg_net exist (every Supabase project);
-- does nothing on a PostgreSQL without them (local development, the tests).
--
-- The call needs the project's URL and a service key. They are read at each run from Supabase
-- Vault (docs/operations.md shows how to store them):
--   select vault.create_secret('https://<ref>.supabase.co', 'batch_jobs_project_url');
--   select vault.create_secret('<service role or sb_secret key>', 'batch_jobs_service_key');

create function job_service.invoke_maintenance() returns bigint
language plpgsql
as $$
declare
  v_url text;
  v_key text;
begin
  select decrypted_secret into v_url from vault.decrypted_secrets where name = 'batch_jobs_project_url';
  select decrypted_secret into v_key from vault.decrypted_secrets where name = 'batch_jobs_service_key';
  if v_url is null or v_key is null then
    raise notice 'batch jobs maintenance: vault secrets batch_jobs_project_url / batch_jobs_service_key are not set';
    return null;
  end if;
  return net.http_post(
    url := rtrim(v_url, '/') || '/functions/v1/job-operations',
    headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || v_key,
                                  'apikey', v_key),
    body := '{"action":"runMaintenance","data":{}}'::jsonb,
    timeout_milliseconds := 30000
  );
end
$$;
comment on function job_service.invoke_maintenance() is
  'What pg_cron runs every minute: an asynchronous POST of runMaintenance to the job-operations '
  'function (pg_net), with the project URL and service key from Vault.';

do $$
begin
  if exists (select 1 from pg_available_extensions where name = 'pg_cron')
     and exists (select 1 from pg_available_extensions where name = 'pg_net') then
    create extension if not exists pg_cron;
    create extension if not exists pg_net;
    perform cron.schedule('batch-jobs-maintenance', '* * * * *', 'select job_service.invoke_maintenance()');
  else
    raise notice 'pg_cron or pg_net is not available: runMaintenance is not scheduled here';
  end if;
end
$$;
