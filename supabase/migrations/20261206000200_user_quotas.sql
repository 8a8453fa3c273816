-- User quotas (api.md, "Quotas"; issue #16 part 4): setUserLimits stores a user's limits, and
-- createJob (and the recovery of a failed job to queued) made by an `authenticated` caller is
-- refused with 409 QUOTA_EXCEEDED when it would pass one. `service_role` callers are never bound.
--
-- - max_priority: the highest priority the user's createJob may ask for;
-- - max_active_jobs: jobs of the user in pending, queued, running, paused, retrying or cancelling;
-- - max_pending_tasks: tasks not yet finished (pending or running) over all the user's jobs.
--
-- A null limit is no limit. A user without a row gets the configured defaults (none unless the
-- operator sets them): the settings batch.default_max_priority, batch.default_max_active_jobs and
-- batch.default_max_pending_tasks, e.g. `alter database postgres set batch.default_max_active_jobs
-- = '100'` (docs/decisions.md, "User quotas").
--
-- Race safety: a check that counts (active jobs, unfinished tasks) first takes the user's quota lock,
-- a transaction-scoped advisory lock on 'user_quota:<user id>', and counts afterwards with a fresh
-- snapshot (READ COMMITTED: every statement after the lock sees what the previous holder committed),
-- so two racing creates that only one fits can never both pass. Lock order: the user's quota lock
-- comes after the sending group's lock (createJob) and after job rows (a recovery holds its job row);
-- while holding it a create only inserts its own new rows and never waits for an existing job's row,
-- so no cycle can form. Users without a counting limit never take the lock.
--
-- The checks are called from job_service_api.create_job (job_api migration, after the idempotency
-- key) and job_service.start_next_attempt (status enforcement migration, a failed job's recovery);
-- PL/pgSQL resolves job_service.check_user_quota when they run, so it may be defined here.

alter table job_service.audit_log alter column job_id drop not null;
comment on column job_service.audit_log.job_id is
  'The job the row is about; null for changes that concern a user, not a job (setUserLimits).';

create table job_service.user_limits (
  user_id uuid primary key,
  max_priority smallint check (max_priority between 0 and 100),
  max_active_jobs integer check (max_active_jobs between 0 and 1000000),
  max_pending_tasks integer check (max_pending_tasks between 0 and 1000000000),
  updated_at timestamptz not null default now()
);
comment on table job_service.user_limits is
  'Quotas of users set by setUserLimits (null = no limit); users without a row get the configured defaults.';

alter table job_service.user_limits enable row level security;
revoke all on job_service.user_limits from anon, authenticated, service_role;
-- the service's configuration: no grant to users (they learn a limit from QUOTA_EXCEEDED)
grant all on job_service.user_limits to service_role;

create function job_service.default_user_limit(p_name text) returns integer
language sql stable
as $$ select nullif(current_setting('batch.default_' || p_name, true), '')::integer $$;
comment on function job_service.default_user_limit(text) is
  'The configured default of a quota (setting batch.default_<name>), null when none is set.';

create function job_service.effective_user_limits(p_user_id uuid) returns job_service.user_limits
language plpgsql stable
as $$
declare
  v job_service.user_limits;
begin
  select * into v from job_service.user_limits where user_id = p_user_id;
  if not found then
    v.user_id := p_user_id;
    v.max_priority := job_service.default_user_limit('max_priority');
    v.max_active_jobs := job_service.default_user_limit('max_active_jobs');
    v.max_pending_tasks := job_service.default_user_limit('max_pending_tasks');
  end if;
  return v;
end
$$;
comment on function job_service.effective_user_limits(uuid) is
  'A user''s limits: the stored row, or the configured defaults for a user without one.';

create function job_service.raise_quota_exceeded(p_limit text, p_value integer, p_current bigint,
                                                 p_requested bigint) returns void
language plpgsql
as $$
begin
  raise exception using errcode = 'JS409', message = 'QUOTA_EXCEEDED',
    detail = jsonb_strip_nulls(jsonb_build_object('limit', p_limit, 'value', p_value,
                                                  'current', p_current, 'requested', p_requested))::text,
    hint = format('The request would pass the user''s %s of %s.', p_limit, p_value);
end
$$;
comment on function job_service.raise_quota_exceeded(text, integer, bigint, bigint) is
  'Raises QUOTA_EXCEEDED with its details: which limit, its value, what the user has (current) and '
  'what the request asked for (requested).';

create function job_service.check_user_quota(
  p_user_id uuid,
  p_priority integer,
  p_new_jobs integer,
  p_new_tasks integer
) returns void
language plpgsql
set enable_seqscan = off
set jit = off
as $$
declare
  v_limits job_service.user_limits;
  v_active bigint;
  v_unfinished bigint;
begin
  if job_service.actor_role() is distinct from 'authenticated' then
    return;
  end if;
  v_limits := job_service.effective_user_limits(p_user_id);
  if p_priority is not null and p_priority > v_limits.max_priority then
    perform job_service.raise_quota_exceeded('max_priority', v_limits.max_priority, null, p_priority);
  end if;
  if v_limits.max_active_jobs is null and v_limits.max_pending_tasks is null then
    return;
  end if;
  perform pg_advisory_xact_lock(hashtextextended('user_quota:' || p_user_id::text, 0));
  -- read again under the lock: a setUserLimits that committed meanwhile counts
  v_limits := job_service.effective_user_limits(p_user_id);
  if v_limits.max_active_jobs is not null and p_new_jobs > 0 then
    select count(*) into v_active from job_service.jobs
    where user_id = p_user_id
      and status in ('pending', 'queued', 'running', 'paused', 'retrying', 'cancelling');
    if v_active + p_new_jobs > v_limits.max_active_jobs then
      perform job_service.raise_quota_exceeded('max_active_jobs', v_limits.max_active_jobs, v_active,
                                               p_new_jobs);
    end if;
  end if;
  if v_limits.max_pending_tasks is not null and p_new_tasks > 0 then
    -- per job: pending = shards' pending + ends' requeued, running = shards' started - ends' ended
    select coalesce(sum(s.pending + s.started), 0)
           - coalesce((select sum(e.ended - e.requeued) from job_service.jobs j2
                       join job_service.job_shard_ends e on e.job_id = j2.id
                       where j2.user_id = p_user_id and j2.status not in ('completed', 'cancelled')), 0)
    into v_unfinished
    from job_service.jobs j join job_service.job_shards s on s.job_id = j.id
    where j.user_id = p_user_id and j.status not in ('completed', 'cancelled');
    if v_unfinished + p_new_tasks > v_limits.max_pending_tasks then
      perform job_service.raise_quota_exceeded('max_pending_tasks', v_limits.max_pending_tasks,
                                               v_unfinished, p_new_tasks);
    end if;
  end if;
end
$$;
comment on function job_service.check_user_quota(uuid, integer, integer, integer) is
  'Refuses (QUOTA_EXCEEDED) a request of an authenticated caller that would pass one of the user''s '
  'quotas with p_new_jobs more active jobs and p_new_tasks more unfinished tasks at p_priority; '
  'counts under the user''s quota lock, so racing requests are checked one after the other.';

create function job_service_api.set_user_limits(p_ctx jsonb, p_user_id uuid, p_limits jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_before job_service.user_limits;
  v_after job_service.user_limits;
begin
  perform job_service.set_request_context(p_ctx);
  -- after the counting checks in flight for this user, so that each of them sees old or new limits
  perform pg_advisory_xact_lock(hashtextextended('user_quota:' || p_user_id::text, 0));
  v_before := job_service.effective_user_limits(p_user_id);
  if p_limits = '{}'::jsonb then
    -- nothing to change: the call only answers the user's limits (the dashboard's look-up)
    v_after := v_before;
    return jsonb_build_object('user_id', p_user_id, 'max_priority', v_after.max_priority,
                              'max_active_jobs', v_after.max_active_jobs,
                              'max_pending_tasks', v_after.max_pending_tasks);
  end if;
  -- omitted fields keep their value (the stored one, or the default for a user without a row)
  insert into job_service.user_limits as u (user_id, max_priority, max_active_jobs, max_pending_tasks)
  values (
    p_user_id,
    case when p_limits ? 'max_priority' then (p_limits ->> 'max_priority')::smallint else v_before.max_priority end,
    case when p_limits ? 'max_active_jobs' then (p_limits ->> 'max_active_jobs')::integer else v_before.max_active_jobs end,
    case when p_limits ? 'max_pending_tasks' then (p_limits ->> 'max_pending_tasks')::integer else v_before.max_pending_tasks end
  )
  on conflict (user_id) do update
    set max_priority = excluded.max_priority,
        max_active_jobs = excluded.max_active_jobs,
        max_pending_tasks = excluded.max_pending_tasks,
        updated_at = now()
  returning * into v_after;
  insert into job_service.audit_log (job_id, owner_id, action, actor_role, actor_id, request_id, before, after)
  values (null, p_user_id, 'user_limits.set', job_service.actor_role(), job_service.actor_id(),
          job_service.request_id(), to_jsonb(v_before) - 'updated_at', to_jsonb(v_after) - 'updated_at');
  return jsonb_build_object('user_id', v_after.user_id, 'max_priority', v_after.max_priority,
                            'max_active_jobs', v_after.max_active_jobs,
                            'max_pending_tasks', v_after.max_pending_tasks);
end
$$;
comment on function job_service_api.set_user_limits(jsonb, uuid, jsonb) is
  'setUserLimits: sets a user''s quotas (null = no limit; fields absent from p_limits keep their '
  'value) and audits the change; answers the user''s limits. With no field it changes and audits '
  'nothing: it only answers them.';

revoke execute on function job_service.default_user_limit(text), job_service.effective_user_limits(uuid),
  job_service.raise_quota_exceeded(text, integer, bigint, bigint),
  job_service.check_user_quota(uuid, integer, integer, integer),
  job_service_api.set_user_limits(jsonb, uuid, jsonb) from public;
grant execute on function job_service_api.set_user_limits(jsonb, uuid, jsonb) to job_service_runtime;
