-- updateBatchJob, without holding a lock across round trips: the function reads the job's facts
-- (job_facts), decides with the xstate machine, then apply_job_update does the move in one
-- statement under the job's row lock, and only if the job is still in the status the decision
-- started from (else STALE_DECISION: the function reads and decides again). The trigger re-checks
-- the move with its guard, so a decision made on counters that changed meanwhile is refused too
-- and decided again. Two racing updates from one status can never both pass.

create function job_service_api.job_facts(p_ctx jsonb, p_job_id uuid) returns jsonb
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_owner constant uuid := job_service.visible_job_owner(p_ctx);
  v_job job_service.jobs;
  v_counts job_service.task_counts;
begin
  select * into v_job from job_service.jobs
  where id = p_job_id and (v_owner is null or user_id = v_owner);
  if not found then
    perform job_service.raise_not_found(p_job_id);
  end if;
  v_counts := job_service.job_counts(p_job_id);
  return jsonb_build_object(
    'status', v_job.status,
    'tasks', jsonb_build_object('total', v_counts.total, 'pending', v_counts.pending,
      'running', v_counts.running, 'succeeded', v_counts.succeeded, 'failed', v_counts.failed),
    'attempt', v_job.attempt,
    'max_attempts', v_job.max_attempts,
    'retry_on_errors', to_jsonb(v_job.retry_on_errors),
    'next_attempt_at', (extract(epoch from v_job.next_attempt_at) * 1000)::bigint
  );
end
$$;
comment on function job_service_api.job_facts(jsonb, uuid) is
  'First half of updateBatchJob: the facts the status machine decides on, for the caller''s job (404 '
  'otherwise, another user''s included).';

create function job_service_api.apply_job_update(
  p_ctx jsonb,
  p_job_id uuid,
  p_decided_from job_service.job_status,
  p_target job_service.job_status,
  p_update jsonb,
  p_expected_status job_service.job_status
) returns jsonb
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_job job_service.jobs;
  v_counts job_service.task_counts;
  v_error constant jsonb := p_update -> 'error_details';
  v_phase constant text := p_update #>> '{detailed_status,current_phase}';
  v_progress numeric := (p_update #>> '{detailed_status,progress_percentage}')::numeric;
begin
  perform job_service.set_request_context(p_ctx);

  -- FOR UPDATE also waits for task work in flight: the counters are exact from here on
  select * into v_job from job_service.jobs
  where id = p_job_id and (job_service.visible_job_owner(p_ctx) is null or user_id = job_service.visible_job_owner(p_ctx))
  for update;
  if not found then
    perform job_service.raise_not_found(p_job_id);
  end if;
  if p_expected_status is not null and v_job.status <> p_expected_status then
    raise exception using errcode = 'JS409', message = 'PRECONDITION_FAILED',
      detail = jsonb_build_object('expected', p_expected_status, 'actual', v_job.status)::text,
      hint = format('The job is %s, not %s.', v_job.status, p_expected_status);
  end if;
  if p_target is not null and v_job.status <> p_decided_from then
    raise exception using errcode = 'JS409', message = 'STALE_DECISION',
      detail = jsonb_build_object('decided_from', p_decided_from, 'actual', v_job.status)::text;
  end if;
  v_counts := job_service.job_counts(p_job_id);
  -- a job with tasks reports the share of ended tasks; the caller's figure is ignored
  if v_counts.total > 0 then
    v_progress := null;
  end if;

  if v_error is not null then
    insert into job_service.job_errors (job_id, attempt, code, category, message, stack, request_id)
    values (
      p_job_id, v_job.attempt, v_error ->> 'code',
      coalesce((select category from job_service.error_catalogue where code = v_error ->> 'code'), 'unknown'),
      v_error ->> 'message', v_error ->> 'stack', job_service.request_id()
    );
    update job_service.job_shards set errors = errors + 1 where job_id = p_job_id and shard = 0;
    if p_target is null and v_phase is null and v_progress is null then
      -- no job row changes: the audit trigger does not fire, so the error is audited here
      insert into job_service.audit_log (job_id, owner_id, action, actor_role, actor_id, request_id, after)
      values (p_job_id, v_job.user_id, 'job.error_recorded', job_service.actor_role(), job_service.actor_id(),
              job_service.request_id(), v_error - 'stack');
    end if;
  end if;

  if p_target in ('cancelled', 'cancelling') then
    perform job_service.cancel_pending_tasks(p_job_id);
    perform job_service.stop_running_tasks(p_job_id);
  elsif p_target in ('failed', 'retrying') then
    perform job_service.stop_running_tasks(p_job_id);
  end if;

  if p_target = 'queued' and v_job.status in ('failed', 'retrying') then
    perform job_service.start_next_attempt(p_job_id);
    if v_phase is not null or v_progress is not null then
      update job_service.jobs
      set current_phase = coalesce(v_phase, current_phase),
          progress_percentage = coalesce(v_progress, progress_percentage)
      where id = p_job_id;
    end if;
  else
    -- one statement for the caller's whole change: one audit row, one check by the trigger
    update job_service.jobs
    set status = coalesce(p_target, status),
        next_attempt_at = case
          when p_target = 'retrying' then now() + job_service.retry_delay_ms(
            retry_backoff, retry_interval_ms, max_retry_interval_ms, attempt) * interval '1 millisecond'
          when p_target is null then next_attempt_at
        end,
        current_phase = coalesce(v_phase, current_phase),
        progress_percentage = coalesce(v_progress, progress_percentage)
    where id = p_job_id;
    if p_target in ('queued', 'running') then
      perform job_service.check_job_completion(p_job_id);
    end if;
  end if;

  select * into v_job from job_service.jobs where id = p_job_id;
  return job_service.job_json(v_job);
end
$$;
comment on function job_service_api.apply_job_update(jsonb, uuid, job_service.job_status, job_service.job_status, jsonb, job_service.job_status) is
  'Second half of updateBatchJob, under the job''s row lock: records the error (catalogue category, '
  'counter, latest error), applies the move the machine chose with its effect on the tasks (cancel '
  'pending, stop running, new attempt), the phase and progress, then the completion check. All or '
  'nothing: a refused move or progress rolls back the error row too.';

create function job_service_api.start_due_retries(p_ctx jsonb, p_limit integer) returns integer
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_job_id uuid;
  v_started integer := 0;
begin
  perform job_service.set_request_context(p_ctx);
  for v_job_id in
    select id from job_service.jobs
    where status = 'retrying' and next_attempt_at <= now()
    order by next_attempt_at
    limit p_limit
    for update skip locked
  loop
    perform job_service.start_next_attempt(v_job_id);
    v_started := v_started + 1;
  end loop;
  return v_started;
end
$$;
comment on function job_service_api.start_due_retries(jsonb, integer) is
  'Maintenance timer: moves retrying jobs whose next_attempt_at has come to queued (attempt + 1); '
  'skips jobs another run holds, so concurrent runs never start one attempt twice.';

create index jobs_retry_due_idx on job_service.jobs (next_attempt_at) where status = 'retrying';
