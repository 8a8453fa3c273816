-- runMaintenance's single-flight lease and retention purge. The function runs each timer as its
-- own short transactions (so a long backlog never holds locks for long); the lease row makes sure
-- only one run works at a time, across connections and function instances, and expires by itself
-- if a run dies.

create table job_service.maintenance_lease (
  id boolean primary key default true check (id),
  holder uuid,
  expires_at timestamptz not null,
  -- when the latest run gave the lease back (getStats: is the schedule running?)
  last_run_at timestamptz
);
comment on table job_service.maintenance_lease is
  'Who is running maintenance now, and when a run last finished (one row).';
alter table job_service.maintenance_lease enable row level security;
insert into job_service.maintenance_lease (holder, expires_at) values (null, '-infinity');

create function job_service_api.begin_maintenance(p_run uuid, p_ttl_ms integer) returns boolean
language sql
as $$
  update job_service.maintenance_lease
  set holder = p_run, expires_at = clock_timestamp() + p_ttl_ms * interval '1 millisecond'
  where expires_at < clock_timestamp() or holder = p_run
  returning true
$$;
comment on function job_service_api.begin_maintenance(uuid, integer) is
  'Takes the maintenance lease if nobody holds it (or the holder''s lease ran out), or renews it for '
  'its holder: single flight, and a run that dies blocks the next one only until its lease ends.';

create function job_service_api.end_maintenance(p_run uuid) returns void
language sql
-- a lease row held by someone else is not worth waiting for: the lease runs out anyway
set lock_timeout = '2s'
as $$
  update job_service.maintenance_lease
  set holder = null, expires_at = '-infinity', last_run_at = clock_timestamp()
  where holder = p_run
$$;
comment on function job_service_api.end_maintenance(uuid) is
  'Gives the maintenance lease back (only its holder can) and records when the run finished.';

create index jobs_finished_idx on job_service.jobs (finished_at)
  where status in ('completed', 'cancelled', 'failed');

create function job_service_api.purge_finished_jobs(p_ctx jsonb, p_retention_days integer, p_limit integer)
returns integer
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_purged integer;
begin
  perform job_service.set_request_context(p_ctx);
  delete from job_service.jobs
  where id in (
    select id from job_service.jobs
    where status in ('completed', 'cancelled', 'failed')
      and finished_at < now() - p_retention_days * interval '1 day'
    order by finished_at
    limit p_limit
    for update skip locked
  );
  get diagnostics v_purged = row_count;
  return v_purged;
end
$$;
comment on function job_service_api.purge_finished_jobs(jsonb, integer, integer) is
  'Retention: deletes up to p_limit finished jobs (completed, cancelled, failed) older than the '
  'retention period with everything they own; their audit rows stay.';
