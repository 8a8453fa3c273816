-- heartbeat: leases extended, usage recorded, back-pressure on jobs over their resource limits.

create function job_service.apply_back_pressure(p_job_id uuid) returns void
language plpgsql
as $$
declare
  v_job job_service.jobs;
  v_shard job_service.job_shard_ends;
  v_over boolean;
begin
  select * into v_job from job_service.jobs where id = p_job_id;
  if v_job.max_memory is null then
    return;
  end if;
  -- a job with resource limits has exactly one engine shard; the caller holds its row
  select * into v_shard from job_service.job_shard_ends where job_id = p_job_id and shard = 1;
  v_over := v_shard.usage_memory > v_job.max_memory or v_shard.usage_cpu > v_job.max_cpu;
  if v_over = v_shard.over_limit then
    return;
  end if;
  update job_service.job_shard_ends set over_limit = v_over where job_id = p_job_id and shard = 1;
  insert into job_service.job_events (job_id, type, actor_role, actor_id, request_id, details)
  values (p_job_id, case when v_over then 'resource_limit_exceeded' else 'resource_limit_recovered' end,
          job_service.actor_role(), job_service.actor_id(), job_service.request_id(),
          jsonb_build_object('memory', v_shard.usage_memory, 'cpu', v_shard.usage_cpu,
                             'max_memory', v_job.max_memory, 'max_cpu', v_job.max_cpu));
  if v_over then
    perform job_service.queue_notification('job.resource_limit_exceeded', p_job_id, v_job.user_id,
      jsonb_build_object('memory', v_shard.usage_memory, 'cpu', v_shard.usage_cpu,
                         'max_memory', v_job.max_memory, 'max_cpu', v_job.max_cpu));
  end if;
end
$$;
comment on function job_service.apply_back_pressure(uuid) is
  'Back-pressure: while the usage reported for a job with resource limits is over them, the job gets '
  'no claims; one resource_limit_exceeded event and notification per episode.';

create function job_service_api.heartbeat(p_ctx jsonb, p_worker text, p_items jsonb) returns jsonb
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_ids bigint[];
  v_jobs uuid[];
  v_beats jsonb;
  r record;
begin
  perform job_service.set_request_context(p_ctx);
  select array_agg(distinct (i ->> 'task_id')::bigint) into v_ids from jsonb_array_elements(p_items) i;
  select array_agg(distinct job_id) into v_jobs from job_service.tasks where id = any (v_ids);
  v_jobs := job_service.lock_jobs_for_task_work(coalesce(v_jobs, '{}'));

  with held as (
    select id, job_id, shard, usage_memory, usage_cpu
    from job_service.tasks
    -- by primary key only (a row of a job deleted meanwhile is gone once its lock is granted)
    where id = any (v_ids)
      and status = 'running' and worker_id = p_worker and lease_expires_at > now()
    order by id
    for update
  ), items as (
    select distinct on ((i ->> 'task_id')::bigint) (i ->> 'task_id')::bigint as id,
           (i #>> '{usage,memory}')::numeric as memory, (i #>> '{usage,cpu}')::numeric as cpu
    from jsonb_array_elements(p_items) i
  ), beaten as (
    update job_service.tasks t
    set lease_expires_at = now() + t.lease_ms * interval '1 millisecond',
        usage_memory = coalesce(items.memory, t.usage_memory),
        usage_cpu = coalesce(items.cpu, t.usage_cpu),
        peak_memory = greatest(t.peak_memory, items.memory),
        peak_cpu = greatest(t.peak_cpu, items.cpu)
    from held join items on items.id = held.id
    where t.id = held.id
    returning t.id, t.job_id, t.shard, t.stop_requested, t.lease_expires_at,
              coalesce(t.usage_memory, 0) - coalesce(held.usage_memory, 0) as memory_delta,
              coalesce(t.usage_cpu, 0) - coalesce(held.usage_cpu, 0) as cpu_delta
  )
  select jsonb_agg(to_jsonb(beaten)) into v_beats from beaten;

  for r in
    select (b ->> 'job_id')::uuid as job_id, (b ->> 'shard')::smallint as shard,
           sum((b ->> 'memory_delta')::numeric) as memory, sum((b ->> 'cpu_delta')::numeric) as cpu
    from jsonb_array_elements(coalesce(v_beats, '[]')) b
    group by 1, 2
    having sum((b ->> 'memory_delta')::numeric) <> 0 or sum((b ->> 'cpu_delta')::numeric) <> 0
    order by 1, 2
  loop
    update job_service.job_shard_ends set usage_memory = usage_memory + r.memory, usage_cpu = usage_cpu + r.cpu
    where job_id = r.job_id and shard = r.shard;
    perform job_service.apply_back_pressure(r.job_id);
  end loop;

  return (
    select jsonb_agg(case
      when b is null then jsonb_build_object('task_id', i.id, 'action', 'lost')
      else jsonb_build_object('task_id', i.id,
        'action', case when (b ->> 'stop_requested')::boolean then 'stop' else 'continue' end,
        'lease_expires_at', job_service.iso((b ->> 'lease_expires_at')::timestamptz))
      end order by i.ord)
    from (select (x ->> 'task_id')::bigint as id, ord from jsonb_array_elements(p_items) with ordinality as a (x, ord)) i
    left join lateral (
      select b from jsonb_array_elements(coalesce(v_beats, '[]')) b where (b ->> 'id')::bigint = i.id limit 1
    ) found on true
  );
end
$$;
comment on function job_service_api.heartbeat(jsonb, text, jsonb) is
  'heartbeat: extends the leases this worker holds and records usage (peak per task, current per job, '
  'with back-pressure); one answer per task: continue, stop (its job is stopping it) or lost. Never '
  'an error for a single task.';
