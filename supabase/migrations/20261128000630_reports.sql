-- A worker's reports: completeTask(s) and failTask.

create function job_service.report_outcomes(p_worker text, p_items jsonb, p_done bigint[])
returns json
language sql
stable
-- (planned as complete_tasks plans its statements: a primary-key probe per task)
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
as $$
  select json_agg(json_build_object('task_id', i.id, 'status',
    case
      when i.id = any (p_done) then 'succeeded'
      when t.id is null then 'not_found'
      -- the same worker reporting again a run it already completed: the first answer again
      when t.status = 'succeeded' and t.ended_by = p_worker then 'succeeded'
      else 'lost'
    end) order by i.ord)
  from (select (x ->> 'task_id')::bigint as id, ord
        from jsonb_array_elements(p_items) with ordinality as a (x, ord)) i
  -- one primary-key probe per task, whatever the statistics say
  left join lateral (select id, status, ended_by from job_service.tasks where id = i.id) t on true
$$;
comment on function job_service.report_outcomes(text, jsonb, bigint[]) is
  'The answer to a report of items of which p_done ended here: each other item judged alone (a '
  'replay by the worker that completed it, lost, or not found), in the items'' order.';

create function job_service_api.complete_tasks(p_ctx jsonb, p_worker text, p_items jsonb) returns json
language plpgsql
set plan_cache_mode = force_generic_plan
-- see claim_tasks; and nested loops only, as in claim_from_job
set enable_seqscan = off
set jit = off
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  v_ids bigint[];
  v_jobs uuid[];
  v_over_jobs uuid[];
  v_answer json;
  v_done bigint[];
  -- takes the answers of calls made as assignments (plpgsql's expression fast path, no executor
  -- start-up as PERFORM would have) and is never read; plpgsql_check's extra warnings (never read
  -- variables) are off for this function only, for that reason
  -- @plpgsql_check_options: extra_warnings = false
  v_counted integer;
  v_id bigint;
  v_job_id uuid;
  v_over boolean;
  v_free boolean;
begin
  if jsonb_array_length(p_items) = 1 then
    -- One task (every one-at-a-time report): what the batch path below does, for one run, in one
    -- statement: the task ended, its end row released (as release_ended does for one run) and its
    -- job's queue probed for the tail check (as after_tasks_ended does), with none of the batch
    -- path's aggregates and sorts to start. complete_and_claim's one-task cycle locks the job and
    -- ends the task (held, done) inline, with the same statements; it counts the end on the end
    -- row in its hand-over's statement and probes the queue after its claim: change them together
    -- (pgTAP 14 checks that they are the same up to the end row).
    v_id := (p_items -> 0 ->> 'task_id')::bigint;
    perform 1 from job_service.jobs where id = (select job_id from job_service.tasks where id = v_id)
    for key share;
    with held as (
      select id, job_id, shard, reserved_memory, reserved_cpu, usage_memory, usage_cpu
      from job_service.tasks
      where id = v_id
        and status = 'running' and worker_id = p_worker and lease_expires_at > now()
      for update
    ), done as (
      update job_service.tasks t
      set status = 'succeeded', result = p_items -> 0 -> 'result', worker_id = null,
          lease_expires_at = null, shard = null, reserved_memory = null, reserved_cpu = null,
          usage_memory = null, usage_cpu = null, stop_requested = false, finished_at = now(),
          ended_by = p_worker, ended_attempt = t.attempt
      from held
      where t.id = held.id
      returning held.*
    ), released as (
      update job_service.job_shard_ends e
      set ended = e.ended + 1,
          succeeded = e.succeeded + 1,
          released_memory = e.released_memory + coalesce(d.reserved_memory, 0),
          released_cpu = e.released_cpu + coalesce(d.reserved_cpu, 0),
          usage_memory = e.usage_memory - coalesce(d.usage_memory, 0),
          usage_cpu = e.usage_cpu - coalesce(d.usage_cpu, 0)
      from done d
      where e.job_id = d.job_id and e.shard = d.shard
      returning e.job_id, e.over_limit
    )
    select r.job_id, r.over_limit, (
             select true from job_service.task_ready q
             where q.job_id = r.job_id order by q.task_id desc limit 1
             for key share skip locked
           )
    into v_job_id, v_over, v_free
    from released r;
    if found then
      if v_over then
        perform job_service.apply_back_pressure(v_job_id);
      end if;
      if v_free is null then
        v_counted := job_service.check_job_tail(v_job_id, p_ctx);
      end if;
      -- written out, as task_json does
      return ('[{"task_id": ' || v_id || ', "status": "succeeded"}]')::json;
    end if;
    v_done := '{}';
  else
    v_ids := array(select distinct (i ->> 'task_id')::bigint from jsonb_array_elements(p_items) i);
    -- the batch's jobs, locked in id order before any task row
    perform 1 from job_service.jobs
    where id in (select t.job_id from job_service.tasks t where t.id = any (v_ids))
    order by id
    for key share;

    with items as (
      select distinct on ((i ->> 'task_id')::bigint) (i ->> 'task_id')::bigint as id,
             i -> 'result' as result, ord
      from jsonb_array_elements(p_items) with ordinality as a (i, ord)
      order by (i ->> 'task_id')::bigint, ord
    ), held as (
      -- each item's task locked in turn, in the items' (id) order: one primary-key probe per item,
      -- whatever statistics say (a row of a job deleted meanwhile is gone once its lock is granted)
      select t.*, items.result, items.ord
      from items
      cross join lateral (
        select id, job_id, shard, reserved_memory, reserved_cpu, usage_memory, usage_cpu
        from job_service.tasks
        where id = items.id
          and status = 'running' and worker_id = p_worker and lease_expires_at > now()
        for update
      ) t
    ), done as (
      update job_service.tasks t
      set status = 'succeeded', result = held.result, worker_id = null, lease_expires_at = null,
          shard = null, reserved_memory = null, reserved_cpu = null, usage_memory = null,
          usage_cpu = null, stop_requested = false, finished_at = now(), ended_by = p_worker,
          ended_attempt = t.attempt
      from held
      where t.id = held.id
      returning held.*
    ), per_shard as (
      -- what release_ended does, for successes only: the end rows given back their runs, in
      -- (job, shard) order, the lock order (each probed by key in this order: nested loops only)
      select job_id, shard, count(*)::integer as n,
             coalesce(sum(reserved_memory), 0) as reserved_memory,
             coalesce(sum(reserved_cpu), 0) as reserved_cpu,
             coalesce(sum(usage_memory), 0) as usage_memory,
             coalesce(sum(usage_cpu), 0) as usage_cpu
      from done
      group by job_id, shard
      order by job_id, shard
    ), released as (
      update job_service.job_shard_ends e
      set ended = e.ended + r.n,
          succeeded = e.succeeded + r.n,
          released_memory = e.released_memory + r.reserved_memory,
          released_cpu = e.released_cpu + r.reserved_cpu,
          usage_memory = e.usage_memory - r.usage_memory,
          usage_cpu = e.usage_cpu - r.usage_cpu
      from per_shard r
      where e.job_id = r.job_id and e.shard = r.shard
      returning e.job_id, e.over_limit
    )
    -- the ends, their jobs and the usual answer (every task ended here) in the one statement
    select coalesce(array_agg(id), '{}'), array_agg(distinct job_id),
           -- written out, as task_json does
           ('[' || string_agg('{"task_id": ' || id || ', "status": "succeeded"}', ', ' order by ord)
            || ']')::json,
           (select array_agg(distinct job_id) from released where over_limit)
    into v_done, v_jobs, v_answer, v_over_jobs from done;

    if cardinality(v_done) > 0 then
      -- an ended run takes its usage with it: a job held back by its usage may run again
      for i in 1 .. coalesce(cardinality(v_over_jobs), 0) loop
        perform job_service.apply_back_pressure(v_over_jobs[i]);
      end loop;
      -- an expression, not a query: no executor start-up for the call itself
      v_counted := job_service.after_tasks_ended(v_jobs, p_ctx);
    end if;

    -- the usual case, every item a distinct task that ended here: the answer is at hand
    if cardinality(v_done) = jsonb_array_length(p_items) then
      return v_answer;
    end if;
  end if;
  return job_service.report_outcomes(p_worker, p_items, v_done);
end
$$;
comment on function job_service_api.complete_tasks(jsonb, text, jsonb) is
  'completeTask(s): one statement ends every task of the batch that this worker holds (lease not '
  'expired) as succeeded; each other task is judged alone: a replay by the worker that completed it '
  '(never counted twice), lost, or not found. Runs the completion check where a job may be done. '
  'Answers json, as claim_tasks does (see task_json).';

create function job_service.fail_outcome(
  p_job job_service.jobs,
  p_task job_service.tasks,
  p_code text
) returns job_service.task_status
language sql stable
as $$
  select case
    when p_task.stop_requested then
      case when p_job.status in ('cancelling', 'cancelled') then 'cancelled' else 'pending' end
    when p_code = any (p_job.retry_on_errors) and p_task.attempt < p_job.max_attempts then 'pending'
    else 'failed'
  end::job_service.task_status
$$;
comment on function job_service.fail_outcome(job_service.jobs, job_service.tasks, text) is
  'Where a failed run goes: a stopped run is cancelled (cancelling job) or pending again without using '
  'an attempt; otherwise pending for a retry when the code is retryable and attempts are left, else '
  'failed for good.';

create function job_service.end_failed_run(
  p_job job_service.jobs,
  p_task job_service.tasks,
  p_code text,
  p_message text,
  p_stack text,
  p_ended_by text
) returns job_service.ended_task
language plpgsql
as $$
declare
  v_outcome constant job_service.task_status := job_service.fail_outcome(p_job, p_task, p_code);
  v_retry boolean := v_outcome = 'pending' and not p_task.stop_requested;
  v_run_after timestamptz := now();
  v_error boolean := not (p_task.stop_requested and p_code = 'WORKER_LOST');
begin
  if v_error then
    insert into job_service.job_errors (job_id, task_id, attempt, code, category, message, stack, request_id)
    values (p_job.id, p_task.id, greatest(p_task.attempt, 1), p_code,
            coalesce((select category from job_service.error_catalogue where code = p_code), 'unknown'),
            p_message, p_stack, job_service.request_id());
  end if;
  if v_retry then
    v_run_after := now() + job_service.retry_delay_ms(p_job.retry_backoff, p_job.retry_interval_ms,
      p_job.max_retry_interval_ms, p_task.attempt) * interval '1 millisecond';
  end if;

  update job_service.tasks
  set status = v_outcome, worker_id = null, lease_expires_at = null, shard = null,
      reserved_memory = null, reserved_cpu = null, usage_memory = null, usage_cpu = null,
      run_after = case when v_outcome = 'pending' then v_run_after else run_after end,
      repeat_attempt = (v_outcome = 'pending' and p_task.stop_requested),
      stop_requested = false,
      finished_at = case when v_outcome in ('failed', 'cancelled') then now() end,
      ended_by = p_ended_by,
      ended_attempt = attempt
  where id = p_task.id;
  if v_outcome = 'pending' then
    insert into job_service.task_ready (job_id, task_id, run_after) values (p_job.id, p_task.id, v_run_after);
  end if;

  return row(p_task.id, p_job.id, p_task.shard, v_outcome, p_task.reserved_memory,
             p_task.reserved_cpu, p_task.usage_memory, p_task.usage_cpu, v_error)::job_service.ended_task;
end
$$;
comment on function job_service.end_failed_run(job_service.jobs, job_service.tasks, text, text, text, text) is
  'Ends a failed (or lost) run: the job''s error row (none for the lease expiry of a stopped run), '
  'the outcome with its retry time, back on the claim queue when pending. Shard counters are the '
  'caller''s (release_ended).';

create function job_service_api.fail_task(
  p_ctx jsonb,
  p_worker text,
  p_task_id bigint,
  p_error jsonb
) returns jsonb
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_job_id uuid;
  v_job job_service.jobs;
  v_task job_service.tasks;
  v_ended job_service.ended_task;
  v_answer jsonb;
begin
  perform job_service.set_request_context(p_ctx);
  select job_id into v_job_id from job_service.tasks where id = p_task_id;
  if found then
    select * into v_job from job_service.jobs where id = v_job_id for key share;
  end if;
  if v_job.id is not null then
    select * into v_task from job_service.tasks where id = p_task_id for update;
  end if;
  if v_task.id is null then
    raise exception using errcode = 'JS404', message = 'TASK_NOT_FOUND',
      detail = jsonb_build_object('task_id', p_task_id)::text;
  end if;

  if v_task.status <> 'running' or v_task.worker_id <> p_worker or v_task.lease_expires_at <= now() then
    -- the same worker repeating the failTask it already made: the first answer again
    if v_task.ended_by = p_worker and v_task.ended_attempt = v_task.attempt
       and v_task.status in ('pending', 'failed', 'cancelled') then
      return jsonb_build_object('task_id', p_task_id, 'status', v_task.status)
        || case when v_task.status = 'pending'
             then jsonb_build_object('next_attempt_at', job_service.iso(v_task.run_after)) else '{}' end;
    end if;
    raise exception using errcode = 'JS409', message = 'LEASE_LOST',
      detail = jsonb_build_object('task_id', p_task_id)::text,
      hint = 'This worker does not hold the task''s lease.';
  end if;

  v_ended := job_service.end_failed_run(v_job, v_task, p_error ->> 'code', p_error ->> 'message',
                                    p_error ->> 'stack', p_worker);
  perform job_service.release_ended(array[v_ended]);
  -- the answer first: the end of the job's last task may delete the job and this task with it
  select jsonb_build_object('task_id', p_task_id, 'status', t.status)
    || case when t.status = 'pending'
         then jsonb_build_object('next_attempt_at', job_service.iso(t.run_after)) else '{}' end
  into v_answer
  from job_service.tasks t where t.id = p_task_id;
  if v_ended.outcome in ('failed', 'cancelled') then
    perform job_service.after_tasks_ended(array[v_job.id], p_ctx);
  end if;
  return v_answer;
end
$$;
comment on function job_service_api.fail_task(jsonb, text, bigint, jsonb) is
  'failTask: only the lease holder may fail a task (LEASE_LOST otherwise, TASK_NOT_FOUND for a '
  'removed one); the error is the job''s error too; the retry policy or the stop decides the outcome; '
  'a repeat by the same worker replays the first answer.';
