-- What every task operation shares: a task's JSON, the job locks of task work, giving back what
-- ended runs held, and the completion check at a job's tail.
--
-- Locks, always in this order: job rows (id order; FOR KEY SHARE for task work, so that job-level
-- changes, which take FOR UPDATE, wait for work in flight and vice versa), then task rows (id
-- order), then shard rows ((job, shard) order). Claims are the one exception, and safe because
-- they never wait for a job or a shard: they take claim shards, then queue rows and the job row,
-- all with SKIP LOCKED, so that a claim walking past busy jobs locks none of their rows. At the
-- tail of a job an ender upgrades its job lock to FOR NO KEY UPDATE (compatible with other task
-- work) to run the completion check one at a time.

create type job_service.ended_task as (
  task_id bigint,
  job_id uuid,
  shard smallint,
  outcome job_service.task_status,
  reserved_memory numeric,
  reserved_cpu numeric,
  usage_memory numeric,
  usage_cpu numeric,
  is_error boolean
);
comment on type job_service.ended_task is 'A task run that just ended, with what its shard must give back.';

create function job_service.task_json(
  p_id bigint,
  p_job_id uuid,
  p_payload jsonb,
  p_attempt integer,
  -- the lease's end as the API writes it (job_service.iso): a claim's statement starts every task
  -- it takes with the same lease, so its callers format it once, not once a task (0.8 µs each)
  p_lease text,
  p_reserved_memory numeric,
  p_reserved_cpu numeric,
  p_memory numeric,
  p_cpu numeric
) returns json
language sql stable
as $$
  -- Written out rather than by json_build_object, which looks up every argument's type in the
  -- catalogue on every call. Every piece is valid JSON as printed: numbers, a uuid and a time that
  -- need no escaping, the payload as jsonb prints it, resources built by json_build_object; the
  -- cast checks the whole. (The columns, not the row: a claim returns only what this needs of the
  -- tasks it started, rather than their whole rows.)
  select (
    '{"task_id": ' || p_id
    || ', "job_id": "' || p_job_id
    || '", "payload": ' || p_payload::text
    || ', "attempt": ' || p_attempt
    || ', "lease_expires_at": ' || coalesce('"' || p_lease || '"', 'null')
    || ', "resources": ' || coalesce(case
      when p_reserved_memory is not null then
        json_build_object('memory', p_reserved_memory, 'cpu', p_reserved_cpu)
      when p_memory is not null then json_build_object('memory', p_memory, 'cpu', p_cpu)
    end::text, 'null')
    || '}'
  )::json
$$;
comment on function job_service.task_json(bigint, uuid, jsonb, integer, text, numeric, numeric, numeric, numeric) is
  'The claimTasks shape of a claimed task, as json (text, which the answer is sent as: building '
  'jsonb would take the payload apart and put it together again, then print it).';

create function job_service.lock_jobs_for_task_work(p_job_ids uuid[]) returns uuid[]
language plpgsql
as $$
begin
  return (
    select coalesce(array_agg(id), '{}') from (
      select id from job_service.jobs where id = any (p_job_ids) order by id for key share
    ) locked
  );
end
$$;
comment on function job_service.lock_jobs_for_task_work(uuid[]) is
  'Takes FOR KEY SHARE on the given jobs in id order (the first step of a heartbeat, which may touch '
  'tasks of many jobs) and returns those that still exist.';

create function job_service.release_ended(p_ended job_service.ended_task[]) returns integer
language plpgsql
-- the few end rows concerned are found by primary key, whatever statistics say
set enable_seqscan = off
set jit = off
as $$
declare
  v_job_id uuid;
  v_one job_service.ended_task;
  v_over boolean;
begin
  if cardinality(p_ended) = 1 then
    -- One run (every one-at-a-time report): its end row changed directly, with none of the
    -- aggregates of the general case below to set up. The same counts as there, for n = 1.
    v_one := p_ended[1];
    update job_service.job_shard_ends e
    set ended = e.ended + 1,
        requeued = e.requeued + (v_one.outcome = 'pending')::integer,
        succeeded = e.succeeded + (v_one.outcome = 'succeeded')::integer,
        failed = e.failed + (v_one.outcome = 'failed')::integer,
        cancelled = e.cancelled + (v_one.outcome = 'cancelled')::integer,
        errors = e.errors + v_one.is_error::integer,
        released_memory = e.released_memory + coalesce(v_one.reserved_memory, 0),
        released_cpu = e.released_cpu + coalesce(v_one.reserved_cpu, 0),
        usage_memory = e.usage_memory - coalesce(v_one.usage_memory, 0),
        usage_cpu = e.usage_cpu - coalesce(v_one.usage_cpu, 0)
    where e.job_id = v_one.job_id and e.shard = v_one.shard
    returning e.over_limit into v_over;
    if v_over then
      perform job_service.apply_back_pressure(v_one.job_id);
    end if;
    return 1;
  end if;

  -- several runs: the end rows concerned, locked in (job, shard) order, then changed in one
  -- statement
  perform 1
  from (select distinct job_id, shard from unnest(p_ended)) d
  join job_service.job_shard_ends e on e.job_id = d.job_id and e.shard = d.shard
  order by e.job_id, e.shard
  for update of e;

  for v_job_id in
    with ended as (
      select job_id, shard, count(*)::integer as n,
             count(*) filter (where outcome = 'pending')::integer as pending,
             count(*) filter (where outcome = 'succeeded')::integer as succeeded,
             count(*) filter (where outcome = 'failed')::integer as failed,
             count(*) filter (where outcome = 'cancelled')::integer as cancelled,
             count(*) filter (where is_error)::integer as errors,
             coalesce(sum(reserved_memory), 0) as reserved_memory,
             coalesce(sum(reserved_cpu), 0) as reserved_cpu,
             coalesce(sum(usage_memory), 0) as usage_memory,
             coalesce(sum(usage_cpu), 0) as usage_cpu
      from unnest(p_ended)
      group by job_id, shard
    ), released as (
      update job_service.job_shard_ends e
      set ended = e.ended + r.n,
          requeued = e.requeued + r.pending,
          succeeded = e.succeeded + r.succeeded,
          failed = e.failed + r.failed,
          cancelled = e.cancelled + r.cancelled,
          errors = e.errors + r.errors,
          released_memory = e.released_memory + r.reserved_memory,
          released_cpu = e.released_cpu + r.reserved_cpu,
          usage_memory = e.usage_memory - r.usage_memory,
          usage_cpu = e.usage_cpu - r.usage_cpu
      from ended r
      where e.job_id = r.job_id and e.shard = r.shard
      returning e.job_id, e.over_limit
    )
    select distinct job_id from released where over_limit order by job_id
  loop
    -- an ended run takes its usage with it: a job held back by its usage may run again
    perform job_service.apply_back_pressure(v_job_id);
  end loop;
  return cardinality(p_ended);
end
$$;
comment on function job_service.release_ended(job_service.ended_task[]) is
  'Keeps shard counters equal to the task rows when runs end (on the end rows, which claims never '
  'lock): frees parallelism, reservations and reported usage (lifting back-pressure once usage is '
  'within the limits), counts the outcome, in (job, shard) order. Returns how many runs it released '
  '(a value, so that callers call it as an expression, without a statement of their own).';

create function job_service.check_job_tail(p_job_id uuid, p_ctx jsonb) returns integer
language plpgsql
as $$
declare
  v_status job_service.job_status;
begin
  -- One check at a time per job, each seeing every end committed before it.
  select status into v_status from job_service.jobs where id = p_job_id for no key update;
  -- a status change may follow: attribute it to this request (audit, events)
  perform job_service.set_request_context(p_ctx);
  if v_status in ('queued', 'running') then
    perform job_service.check_job_completion(p_job_id);
  elsif v_status = 'cancelling' then
    perform job_service.finish_cancelling(p_job_id);
  end if;
  return 1;
end
$$;
comment on function job_service.check_job_tail(uuid, jsonb) is
  'The completion check (or the end of a cancellation) of a job whose last open task may just have '
  'ended, under the job row locked FOR NO KEY UPDATE, so that concurrent enders check one after '
  'the other and the last sees every end. Returns 1 (a value, for callers'' expressions).';

create function job_service.after_tasks_ended(p_job_ids uuid[], p_ctx jsonb) returns integer
language plpgsql
-- the queue's tail by its index, whatever statistics say (see claim_tasks)
set enable_seqscan = off
set jit = off
as $$
declare
  v_job_id uuid;
  v_checked integer := 0;
begin
  -- A job with a pending task nobody is claiming right now is not at its tail: that task's own
  -- end will run this check later. Queue rows locked by a claim in flight are skipped: that claim
  -- may take the last of them, so we cannot rely on them. The queue is read from its end, away
  -- from the head where claims take their rows, so that this check's lock is not in a claim's way.
  -- One statement for all the jobs of a report.
  for v_job_id in
    select x.job_id
    from (select distinct j as job_id from unnest(p_job_ids) j) x
    left join lateral (
      select true as free from job_service.task_ready r
      where r.job_id = x.job_id order by r.task_id desc limit 1
      for key share skip locked
    ) pending on true
    where pending.free is null
    order by x.job_id
  loop
    -- an expression, not a query (see release_ended)
    v_checked := v_checked + job_service.check_job_tail(v_job_id, p_ctx);
  end loop;
  return v_checked;
end
$$;
comment on function job_service.after_tasks_ended(uuid[], jsonb) is
  'Runs, in the transaction that ended tasks of these jobs, the completion check (or the end of a '
  'cancellation) exactly for the jobs whose last open task it may have ended: no job is left running '
  'with all its tasks done, even when its last tasks end concurrently. Returns how many jobs it '
  'checked.';

create function job_service.finish_cancelling(p_job_id uuid) returns boolean
language plpgsql
as $$
declare
  v_deleting boolean;
begin
  if (job_service.job_counts(p_job_id)).running > 0 then
    return false;
  end if;
  select deletion_requested_at is not null into v_deleting
  from job_service.jobs where id = p_job_id and status = 'cancelling';
  if not found then
    return false;
  end if;
  if v_deleting then
    delete from job_service.jobs where id = p_job_id;
  else
    update job_service.jobs set status = 'cancelled' where id = p_job_id;
  end if;
  return true;
end
$$;
comment on function job_service.finish_cancelling(uuid) is
  'A cancelling job whose last running task has stopped becomes cancelled, or is deleted when a '
  'deleteJob is pending, in the same transaction (caller holds the job lock).';
