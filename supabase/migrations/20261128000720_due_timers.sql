-- Overdue timers through the service's own traffic, for a deployment whose maintenance schedule
-- does not run (not set up yet, or broken): claims (before) and reports (after) call run_due_timers,
-- which does the timer
-- steps of runMaintenance that the engine's promises rest on (expired leases, due retries,
-- cancelling jobs whose runs have all ended, and with them pending deletions), bounded:
-- - at most 100 rows of work per call, in the caller's one short transaction;
-- - one caller at a time per database (a transaction-level advisory lock, tried, never waited for);
-- - at most once a second per database (the last run's time, below);
-- - not while runMaintenance holds its lease (it is doing all of this, and more).
-- Notifications and retention wait for the schedule.

create table job_service.due_timers (
  id boolean primary key default true check (id),
  last_run_at timestamptz not null default '-infinity'
);
comment on table job_service.due_timers is
  'When the claims last ran the overdue timers (one row): at most once a second per database.';
alter table job_service.due_timers enable row level security;
insert into job_service.due_timers default values;

create function job_service_api.run_due_timers(p_ctx jsonb, p_limit integer) returns jsonb
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_limit constant integer := least(greatest(coalesce(p_limit, 100), 0), 100);
  v_expired integer := 0;
  v_retries integer := 0;
  v_cancelled integer := 0;
begin
  -- one caller at a time: the others go on with their claim at once
  if not pg_try_advisory_xact_lock(hashtextextended('job_service_api.run_due_timers', 0)) then
    return jsonb_build_object('ran', false, 'skipped', 'busy');
  end if;
  if exists (select from job_service.maintenance_lease
             where holder is not null and expires_at > clock_timestamp()) then
    return jsonb_build_object('ran', false, 'skipped', 'maintenance');
  end if;
  update job_service.due_timers set last_run_at = clock_timestamp()
  where id and last_run_at <= clock_timestamp() - interval '1 second';
  if not found then
    return jsonb_build_object('ran', false, 'skipped', 'recent');
  end if;
  v_expired := job_service_api.expire_leases(p_ctx, v_limit);
  if v_expired < v_limit then
    v_retries := job_service_api.start_due_retries(p_ctx, v_limit - v_expired);
  end if;
  if v_expired + v_retries < v_limit then
    v_cancelled := job_service_api.finish_cancelled_jobs(p_ctx, v_limit - v_expired - v_retries);
  end if;
  return jsonb_build_object('ran', true, 'leases_expired', v_expired, 'retries_started', v_retries,
                            'jobs_cancelled', v_cancelled);
end
$$;
comment on function job_service_api.run_due_timers(jsonb, integer) is
  'The overdue timers on the back of the claims (no schedule needed): expired leases, due retries, '
  'cancelling jobs with nothing running; at most p_limit (<= 100) rows, one caller at a time, at '
  'most once a second per database, never while runMaintenance holds its lease.';
