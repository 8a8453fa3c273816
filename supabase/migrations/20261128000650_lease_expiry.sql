-- Timers of the task engine that maintenance runs: expired leases, cancelling jobs left over.

create function job_service_api.expire_leases(p_ctx jsonb, p_limit integer) returns integer
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_job_id uuid;
  v_job job_service.jobs;
  v_task job_service.tasks;
  v_ended job_service.ended_task[];
  v_total integer := 0;
  v_lost integer;
  v_workers text[];
begin
  perform job_service.set_request_context(p_ctx);
  for v_job_id in
    select s.job_id from job_service.job_shards s
    join job_service.job_shard_ends e on e.job_id = s.job_id and e.shard = s.shard
    group by s.job_id having sum(s.started) > sum(e.ended)
    order by s.job_id
  loop
    exit when v_total >= p_limit;
    select * into v_job from job_service.jobs where id = v_job_id for key share;
    continue when not found;
    v_ended := '{}';
    v_workers := '{}';
    v_lost := 0;
    for v_task in
      select * from job_service.tasks
      where job_id = v_job_id and status = 'running' and lease_expires_at <= now()
      order by id
      limit p_limit - v_total
      for update skip locked
    loop
      v_ended := v_ended || job_service.end_failed_run(v_job, v_task, 'WORKER_LOST',
        format('The lease of worker %s expired at %s.', v_task.worker_id, job_service.iso(v_task.lease_expires_at)),
        null, null);
      if not v_task.stop_requested then
        v_lost := v_lost + 1;
        v_workers := array_append(v_workers, v_task.worker_id);
      end if;
    end loop;
    continue when cardinality(v_ended) = 0;
    perform job_service.release_ended(v_ended);
    v_total := v_total + cardinality(v_ended);
    if v_lost > 0 then
      perform job_service.queue_notification('task.worker_lost', v_job_id, v_job.user_id,
        jsonb_build_object('tasks', v_lost,
                           'workers', (select jsonb_agg(distinct w) from unnest(v_workers) w)));
    end if;
    if exists (select 1 from unnest(v_ended) e where e.outcome in ('failed', 'cancelled')) then
      perform job_service.after_tasks_ended(array[v_job_id], p_ctx);
    end if;
  end loop;
  return v_total;
end
$$;
comment on function job_service_api.expire_leases(jsonb, integer) is
  'Maintenance: every running task whose lease expired ends as a WORKER_LOST failure (retried by '
  'policy, counts as an attempt), or, if its job had told it to stop, as a stopped run without an '
  'error; skips tasks a report is holding.';

create function job_service_api.finish_cancelled_jobs(p_ctx jsonb, p_limit integer) returns integer
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_job_id uuid;
  v_done integer := 0;
begin
  perform job_service.set_request_context(p_ctx);
  for v_job_id in
    select id from job_service.jobs where status = 'cancelling' order by updated_at limit p_limit
    for update skip locked
  loop
    if job_service.finish_cancelling(v_job_id) then
      v_done := v_done + 1;
    end if;
  end loop;
  return v_done;
end
$$;
comment on function job_service_api.finish_cancelled_jobs(jsonb, integer) is
  'Maintenance: cancelling jobs with nothing running become cancelled (normally the last stopping '
  'task does it; this catches any left over).';
