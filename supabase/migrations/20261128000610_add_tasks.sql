-- addTasks: more tasks for a job that still takes them.

create function job_service_api.add_tasks(p_ctx jsonb, p_job_id uuid, p_tasks jsonb) returns jsonb
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_job job_service.jobs;
  v_added integer;
  v_too_big jsonb;
begin
  perform job_service.set_request_context(p_ctx);
  -- NO KEY UPDATE: excludes job-level changes and the completion check, not claims or reports
  select * into v_job from job_service.jobs where id = p_job_id for no key update;
  if not found then
    perform job_service.raise_not_found(p_job_id);
  end if;
  if v_job.status not in ('pending', 'queued', 'running', 'paused') then
    raise exception using errcode = 'JS409', message = 'JOB_CLOSED',
      detail = jsonb_build_object('job_id', p_job_id, 'status', v_job.status)::text,
      hint = format('A %s job takes no new tasks.', v_job.status);
  end if;
  if v_job.max_memory is not null then
    select jsonb_agg(jsonb_build_object('path', format('data.tasks.%s.resources', ord - 1),
             'message', 'Exceeds the job''s resource_limits: the task could never run.'))
    into v_too_big
    from jsonb_array_elements(p_tasks) with ordinality as t (value, ord)
    where (t.value #>> '{resources,memory}')::numeric > v_job.max_memory
       or (t.value #>> '{resources,cpu}')::numeric > v_job.max_cpu;
    if v_too_big is not null then
      raise exception using errcode = 'JS400', message = 'VALIDATION_ERROR', detail = v_too_big::text,
        hint = 'The request data is invalid.';
    end if;
  end if;

  v_added := job_service.insert_tasks(p_job_id, p_tasks);

  update job_service.job_shards set pending = pending + v_added where job_id = p_job_id and shard = 0;
  insert into job_service.job_events (job_id, type, actor_role, actor_id, request_id, details)
  values (p_job_id, 'tasks_added', job_service.actor_role(), job_service.actor_id(), job_service.request_id(),
          jsonb_build_object('added', v_added));
  return jsonb_build_object('added', v_added, 'total', (job_service.job_counts(p_job_id)).total);
end
$$;
comment on function job_service_api.add_tasks(jsonb, uuid, jsonb) is
  'addTasks: appends tasks to a pending, queued, running or paused job (JOB_CLOSED otherwise) in one '
  'statement, on the claim queue, with counters; refuses tasks that could never fit the budget.';
