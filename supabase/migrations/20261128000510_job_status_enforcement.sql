-- The status machine enforced for every writer, and the job-level moves that change tasks:
-- cancelling, stopping, starting a new attempt, the completion check.
--
-- Lock order everywhere: the job row first (FOR UPDATE for job-level changes, FOR KEY SHARE for
-- task-level work, upgraded to FOR NO KEY UPDATE by the task engine only at the tail of a job),
-- then task rows, then shard rows in ascending order.

create function job_service.latest_error_code(p_job_id uuid) returns text
language plpgsql stable
as $$
begin
  return (select code from job_service.job_errors where job_id = p_job_id order by id desc limit 1);
end
$$;
comment on function job_service.latest_error_code(uuid) is
  'The code of the job''s most recent error (what the retryAllowed guard judges).';

-- ---------------------------------------------------------------------------------------------
-- The trigger
-- ---------------------------------------------------------------------------------------------
create function job_service.enforce_job_status() returns trigger
language plpgsql
as $$
declare
  v_counts job_service.task_counts;
  v_error text;
  v_allowed jsonb;
begin
  if tg_op = 'INSERT' then
    if new.status not in ('pending', 'queued') then
      raise exception using errcode = 'JS409', message = 'INVALID_TRANSITION',
        detail = jsonb_build_object('from', null, 'to', new.status, 'allowed', '["pending","queued"]'::jsonb)::text,
        hint = 'A job starts pending or queued.';
    end if;
    new.started_at := null;
    new.finished_at := null;
    return new;
  end if;

  if new.status is distinct from old.status then
    v_counts := job_service.job_counts(new.id);
    v_error := job_service.latest_error_code(new.id);
    if not exists (
      select 1 from job_service.job_status_transitions t
      where t.from_status = old.status and t.to_status = new.status
        and job_service.job_guard_holds(t.guard, v_counts, old, new, v_error)
    ) then
      select coalesce(jsonb_agg(distinct t.to_status), '[]'::jsonb) into v_allowed
      from job_service.job_status_transitions t
      where t.from_status = old.status
        and job_service.job_guard_holds(t.guard, v_counts, old, old, v_error);
      raise exception using errcode = 'JS409', message = 'INVALID_TRANSITION',
        detail = jsonb_build_object('from', old.status, 'to', new.status, 'allowed', v_allowed)::text,
        hint = format('The job cannot move from %s to %s.', old.status, new.status);
    end if;

    if new.status = 'running' and old.started_at is null then
      new.started_at := now();
    end if;
    new.finished_at := case when new.status in ('completed', 'failed', 'cancelled') then now() end;
  end if;

  if new.progress_percentage < old.progress_percentage and new.attempt = old.attempt then
    raise exception using errcode = 'JS409', message = 'INVALID_PROGRESS',
      detail = jsonb_build_object('current', old.progress_percentage, 'requested', new.progress_percentage)::text,
      hint = 'progress_percentage may not go down within one attempt.';
  end if;
  return new;
end
$$;
comment on function job_service.enforce_job_status() is
  'Guarantees, for every writer, that a job is created pending or queued and only ever changes '
  'status along an edge of the generated status machine whose guard holds; keeps started_at and '
  'finished_at true to the status; refuses progress going down within one attempt.';

create trigger jobs_enforce_status
  before insert or update on job_service.jobs
  for each row execute function job_service.enforce_job_status();

-- ---------------------------------------------------------------------------------------------
-- Events and notifications that follow status changes
-- ---------------------------------------------------------------------------------------------
create function job_service.log_job_progress() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into job_service.job_events (job_id, type, actor_role, actor_id, request_id, details)
  values (new.id, 'progress', job_service.actor_role(), job_service.actor_id(), job_service.request_id(),
          jsonb_build_object('current_phase', new.current_phase,
                             'progress_percentage', new.progress_percentage));
  return null;
end
$$;
comment on function job_service.log_job_progress() is
  'Guarantees a progress event whenever a job''s phase or caller-set progress changes.';

create trigger jobs_event_progress
  after update of current_phase, progress_percentage on job_service.jobs
  for each row
  when ((old.current_phase, old.progress_percentage) is distinct from (new.current_phase, new.progress_percentage))
  execute function job_service.log_job_progress();

create function job_service.queue_notification(p_type text, p_job_id uuid, p_user_id uuid, p_payload jsonb)
returns uuid
language plpgsql
as $$
declare
  v_id uuid;
begin
  insert into job_service.notifications (type, job_id, user_id, payload)
  values (p_type, p_job_id, p_user_id, p_payload)
  returning id into v_id;
  perform pg_notify('batch_job_notifications',
    jsonb_build_object('id', v_id, 'type', p_type, 'job_id', p_job_id)::text);
  return v_id;
end
$$;
comment on function job_service.queue_notification(text, uuid, uuid, jsonb) is
  'A notification into the outbox, in the caller''s transaction, announced on channel '
  'batch_job_notifications (delivered after commit); returns its id.';

create function job_service.queue_failure_notification() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform job_service.queue_notification('job.failed', new.id, new.user_id, jsonb_build_object(
    'attempt', new.attempt,
    'product_id', new.product_id,
    'sending_group_id', new.sending_group_id,
    'last_error', (select jsonb_build_object('code', e.code, 'category', e.category, 'message', e.message)
                   from job_service.job_errors e where e.job_id = new.id order by e.id desc limit 1)
  ));
  return null;
end
$$;
comment on function job_service.queue_failure_notification() is
  'Guarantees exactly one job.failed notification in the outbox, in the same transaction, each time a '
  'job fails for good (by a caller or by its last task), announced on channel batch_job_notifications.';

create trigger jobs_notify_failed
  after update of status on job_service.jobs
  for each row
  when (new.status = 'failed' and old.status is distinct from new.status)
  execute function job_service.queue_failure_notification();

-- ---------------------------------------------------------------------------------------------
-- Moves of a job's tasks (callers hold the job row FOR UPDATE)
-- ---------------------------------------------------------------------------------------------
create function job_service.retry_delay_ms(
  p_backoff text,
  p_interval_ms integer,
  p_max_interval_ms integer,
  p_attempt integer
) returns bigint
language sql immutable parallel safe
as $$
  select case when p_backoff = 'exponential'
    then least(p_interval_ms::numeric * power(2::numeric, greatest(p_attempt - 1, 0)), p_max_interval_ms)::bigint
    else p_interval_ms::bigint end
$$;
comment on function job_service.retry_delay_ms(text, integer, integer, integer) is
  'The wait before the next attempt after attempt p_attempt failed: retry_interval (fixed), or '
  'retry_interval * 2^(attempt-1) capped at max_retry_interval (exponential).';

create function job_service.cancel_pending_tasks(p_job_id uuid) returns integer
language plpgsql
as $$
declare
  v_cancelled integer;
begin
  with dequeued as (
    delete from job_service.task_ready where job_id = p_job_id returning task_id
  ), cancelled as (
    update job_service.tasks t set status = 'cancelled', finished_at = now()
    from dequeued d where t.id = d.task_id and t.status = 'pending'
    returning 1
  )
  select count(*) into v_cancelled from cancelled;
  if v_cancelled > 0 then
    update job_service.job_shards set pending = pending - v_cancelled, cancelled = cancelled + v_cancelled
    where job_id = p_job_id and shard = 0;
  end if;
  return v_cancelled;
end
$$;
comment on function job_service.cancel_pending_tasks(uuid) is
  'Cancels every pending task of a job at once (taking them off the claim queue) and keeps the '
  'counters equal to the rows.';

create function job_service.stop_running_tasks(p_job_id uuid) returns integer
language plpgsql
as $$
declare
  v_stopped integer;
begin
  update job_service.tasks set stop_requested = true
  where job_id = p_job_id and status = 'running' and not stop_requested;
  get diagnostics v_stopped = row_count;
  return v_stopped;
end
$$;
comment on function job_service.stop_running_tasks(uuid) is
  'Marks a job''s running tasks to be told "stop" on their next heartbeat; their end then uses no attempt.';

create function job_service.requeue_failed_tasks(p_job_id uuid) returns integer
language plpgsql
as $$
declare
  v_requeued integer;
begin
  with requeued as (
    update job_service.tasks
    set status = 'pending', attempt = 0, run_after = now(), finished_at = null, stop_requested = false,
        repeat_attempt = false, ended_by = null, ended_attempt = null, result = null
    where job_id = p_job_id and status = 'failed'
    returning id, run_after
  )
  insert into job_service.task_ready (job_id, task_id, run_after)
  select p_job_id, id, run_after from requeued;
  get diagnostics v_requeued = row_count;
  if v_requeued > 0 then
    update job_service.job_shards set failed = failed - v_requeued, pending = pending + v_requeued
    where job_id = p_job_id and shard = 0;
  end if;
  return v_requeued;
end
$$;
comment on function job_service.requeue_failed_tasks(uuid) is
  'Gives the tasks of a job that failed for good a fresh start (pending, attempts counted anew, back '
  'on the claim queue), counters included.';

create function job_service.check_job_completion(p_job_id uuid) returns job_service.job_status
language plpgsql
as $$
declare
  v_status job_service.job_status;
  v_counts job_service.task_counts;
begin
  select status into v_status from job_service.jobs where id = p_job_id;
  if v_status not in ('queued', 'running') then
    return v_status;
  end if;
  v_counts := job_service.job_counts(p_job_id);
  if v_counts.total = 0 or v_counts.pending > 0 or v_counts.running > 0 then
    return v_status;
  end if;
  v_status := case when v_counts.failed > 0 then 'failed'::job_service.job_status else 'completed' end;
  update job_service.jobs set status = v_status where id = p_job_id;
  return v_status;
end
$$;
comment on function job_service.check_job_completion(uuid) is
  'The completion check: a queued or running job that has tasks, none pending or running, moves on '
  'in the same transaction (all succeeded: completed; any failed for good: failed). The caller holds '
  'the job row lock.';

create function job_service.start_next_attempt(p_job_id uuid) returns job_service.job_status
language plpgsql
as $$
declare
  v_counts job_service.task_counts;
  v_job record;
begin
  -- the recovery of a failed job (failed -> queued) makes it active again: checked like a create
  -- (quotas, user_quotas migration)
  select user_id, status into v_job from job_service.jobs where id = p_job_id;
  if v_job.status = 'failed' then
    perform job_service.check_user_quota(v_job.user_id, null, 1, 0);
  end if;
  perform job_service.requeue_failed_tasks(p_job_id);
  v_counts := job_service.job_counts(p_job_id);
  update job_service.jobs
  set status = 'queued',
      attempt = attempt + 1,
      next_attempt_at = null,
      -- a new attempt of a job without tasks reports its progress from zero again
      progress_percentage = case when v_counts.total = 0 then 0 else progress_percentage end
  where id = p_job_id;
  return job_service.check_job_completion(p_job_id);
end
$$;
comment on function job_service.start_next_attempt(uuid) is
  'Starts the next attempt of a failed (recovery) or retrying (retry due) job: attempt + 1, failed '
  'tasks back to pending, then the completion check. The caller holds the job row lock.';
