-- The task engine: addTasks, claimTasks, heartbeat, completeTask(s), failTask, lease expiry.
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

create function job_service.task_json(t job_service.tasks) returns json
language sql stable
as $$
  -- Written out rather than by json_build_object, which looks up every argument's type in the
  -- catalogue on every call. Every piece is valid JSON as printed: numbers, a uuid and a time that
  -- need no escaping, the payload as jsonb prints it, resources built by json_build_object; the
  -- cast checks the whole.
  select (
    '{"task_id": ' || t.id
    || ', "job_id": "' || t.job_id
    || '", "payload": ' || t.payload::text
    || ', "attempt": ' || t.attempt
    || ', "lease_expires_at": ' || coalesce('"' || job_service.iso(t.lease_expires_at) || '"', 'null')
    || ', "resources": ' || coalesce(case
      when t.reserved_memory is not null then
        json_build_object('memory', t.reserved_memory, 'cpu', t.reserved_cpu)
      when t.memory is not null then json_build_object('memory', t.memory, 'cpu', t.cpu)
    end::text, 'null')
    || '}'
  )::json
$$;
comment on function job_service.task_json(job_service.tasks) is
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
  'Takes FOR KEY SHARE on the given jobs in id order (the first step of every task operation) and '
  'returns those that still exist.';

-- ---------------------------------------------------------------------------------------------
-- Giving back what ended runs held, and the completion check at a job's tail
-- ---------------------------------------------------------------------------------------------
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

-- ---------------------------------------------------------------------------------------------
-- addTasks
-- ---------------------------------------------------------------------------------------------
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

  with inserted as (
    insert into job_service.tasks (job_id, payload, memory, cpu)
    select p_job_id, t.value -> 'payload', (t.value #>> '{resources,memory}')::numeric,
           (t.value #>> '{resources,cpu}')::numeric
    from jsonb_array_elements(p_tasks) with ordinality as t (value, ord)
    order by t.ord
    returning id, run_after
  )
  insert into job_service.task_ready (job_id, task_id, run_after)
  select p_job_id, id, run_after from inserted;
  get diagnostics v_added = row_count;

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

-- ---------------------------------------------------------------------------------------------
-- claimTasks
-- ---------------------------------------------------------------------------------------------
create type job_service.claim_shard as (
  shard smallint,
  room integer,
  ended integer,
  released_memory numeric,
  released_cpu numeric,
  room_memory numeric,
  room_cpu numeric,
  over_limit boolean
);
comment on type job_service.claim_shard is
  'A claim shard with room as a claim read it (locked), with its end row''s counts and back-pressure '
  'flag (not locked).';

create function job_service.claim_from_job(
  -- the job as the caller read it, without a lock: its limits (fixed at creation) and a first look
  -- at its status, re-read under the lock before anything is claimed
  p_job job_service.jobs,
  p_limit integer,
  p_worker text,
  p_lease_ms integer,
  -- the claim shard to take first, as the caller read and locked it, or null: this function
  -- finds one, from this connection's own
  p_first job_service.claim_shard,
  p_now timestamptz,
  p_ctx jsonb,
  -- the job's sending group when its bucket could not give a token (busy or empty): lower jobs
  -- of the group must not take one in this claim either
  out starved_group text,
  -- the claimed tasks, in task order
  out claimed json[]
)
language plpgsql
-- see claim_tasks (which turns sorts off for its own candidate query only); and nested loops over
-- keys only: a claim joins at most its limit of rows (100), for which a hash or merge join costs
-- more to set up, on every call, than it can save
set enable_seqscan = off
set jit = off
set enable_sort = on
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  v_job_id constant uuid := p_job.id;
  v_job job_service.jobs := p_job;
  v_shards smallint[] := '{}';
  v_room integer[] := '{}';
  v_ended integer[] := '{}';
  v_want integer;
  v_more_shards smallint[];
  v_more_room integer[];
  v_more_ended integer[];
  -- the first shard, as the caller handed it over or as read here (a job with a resource budget
  -- has only this one: its budget room, the releases seen and the back-pressure flag are its)
  v_first job_service.claim_shard := p_first;
  v_total_room integer := 0;
  v_rows tid[];
  -- the shard of each run slot this claim may fill
  v_slots smallint[] := '{}';
  v_taken integer;
  v_from smallint;
  v_wrapped boolean;
  v_more_total integer;
  v_limit integer := p_limit;
  v_now timestamptz;
  v_job_bucket job_service.job_rate_limits;
  v_group_bucket job_service.sending_group_limits;
  v_job_tokens numeric;
  v_group_tokens numeric;
  i integer;
begin
  -- Rule 1, first without a lock: most jobs a claim walks past have no free shard for it.
  claimed := '{}';
  if v_job.status not in ('queued', 'running') then
    return;
  end if;

  -- Rules 3 and 4: claim shards with room, until there is room for the whole claim, starting from
  -- this connection's favourite shard so that concurrent claimers spread out. A shard's room counts
  -- the ends of its end row as last committed (read, not locked: reports lock end rows, claims
  -- lock claim rows, neither waits for the other). Shards another claim holds are passed over.
  v_from := coalesce(v_first.shard, 1 + pg_backend_pid() % v_job.shard_count);
  v_wrapped := v_from = 1;
  -- The first shard as one row (unless the candidate walk of claim_tasks read and locked it): most
  -- claims need no other, and a statement without aggregates costs less to start.
  while v_first.shard is null loop
    select s.shard, s.capacity - (s.started - e.ended), e.ended, e.released_memory, e.released_cpu,
           s.memory_capacity - (s.reserved_memory - e.released_memory),
           s.cpu_capacity - (s.reserved_cpu - e.released_cpu), e.over_limit
    into v_first
    from job_service.job_shards s
    join job_service.job_shard_ends e on e.job_id = s.job_id and e.shard = s.shard
    where s.job_id = v_job_id and s.shard >= v_from and s.started - e.ended < s.capacity
    order by s.shard
    limit 1
    for update of s skip locked;
    exit when found or v_wrapped;
    v_wrapped := true;
    v_from := 1;
  end loop;
  if v_first.shard is null then
    return;
  end if;
  v_shards := array[v_first.shard];
  v_room := array[v_first.room];
  v_ended := array[v_first.ended];
  v_total_room := v_first.room;
  -- Then about as many more as the missing room needs (shards have similar capacity): a claim
  -- locks no shard it does not use. Shards are read in key order from the favourite, then from the
  -- first: an index range, never a sort of all the job's shards. (A job of one shard, as every
  -- job with a budget or at most 7 parallel tasks, has no other to read.)
  while v_total_room < v_limit and v_job.shard_count > 1 loop
    v_want := ceil((v_limit - v_total_room)::numeric
                   / greatest(1, v_job.max_parallel_tasks / v_job.shard_count))::integer;
    select array_agg(x.shard), array_agg(x.room), array_agg(x.ended), sum(x.room)
    into v_more_shards, v_more_room, v_more_ended, v_more_total
    from (
      select s.shard, s.capacity - (s.started - e.ended) as room, e.ended
      from job_service.job_shards s
      join job_service.job_shard_ends e on e.job_id = s.job_id and e.shard = s.shard
      where s.job_id = v_job_id and s.shard >= v_from and s.started - e.ended < s.capacity
        and s.shard <> all (v_shards)
      order by s.shard
      limit v_want
      for update of s skip locked
    ) x;
    if v_more_shards is null then
      exit when v_wrapped;
      v_wrapped := true;
      v_from := 1;
      continue;
    end if;
    v_shards := v_shards || v_more_shards;
    v_room := v_room || v_more_room;
    v_ended := v_ended || v_more_ended;
    v_total_room := v_total_room + v_more_total;
  end loop;

  if v_job.max_memory is not null then
    -- Rule 4's back-pressure: no claims while a job's reported usage is over its limits (read
    -- with the first shard: a job with a budget has one, whose end row carries the flag).
    if v_first.over_limit then
      return;
    end if;
    -- Rule 4 (the job has one shard): in order, as many as fit the budget; a task that does not
    -- fit stops the claim, so big tasks are not overtaken forever. Decided before the job lock
    -- (limits never change): most claims that find a budgeted job full stop here.
    if least(v_limit, v_total_room) = 1 then
      -- one task (room for one, or a claim of one): whether the next due task fits, without the
      -- running sums below
      select case
               when coalesce(t.memory, v_job.max_memory / v_job.max_parallel_tasks)
                      <= v_first.room_memory
                and coalesce(t.cpu, v_job.max_cpu / v_job.max_parallel_tasks) <= v_first.room_cpu
               then array[r.ctid]
             end
      into v_rows
      from (
        select task_id, ctid from job_service.task_ready
        where job_id = v_job_id and run_after <= now()
        order by task_id limit 1
        for update skip locked
      ) r
      join job_service.tasks t on t.id = r.task_id;
    else
      select array_agg(row_address order by task_id) into v_rows
      from (
        select c.task_id, c.row_address,
               sum(c.memory) over (order by c.task_id) as memory_total,
               sum(c.cpu) over (order by c.task_id) as cpu_total
        from (
          select r.task_id, r.ctid as row_address,
                 coalesce(t.memory, v_job.max_memory / v_job.max_parallel_tasks) as memory,
                 coalesce(t.cpu, v_job.max_cpu / v_job.max_parallel_tasks) as cpu
          from (
            select task_id, ctid from job_service.task_ready
            where job_id = v_job_id and run_after <= now()
            order by task_id limit least(v_limit, v_total_room)
            for update skip locked
          ) r
          join job_service.tasks t on t.id = r.task_id
        ) c
      ) sums
      where memory_total <= v_first.room_memory and cpu_total <= v_first.room_cpu;
    end if;
    if v_rows is null then
      -- Nothing fits until a run of the job ends (ends alone release budget; a claim holds the
      -- job's one shard, so no other claim changes it meanwhile): the claim walk may pass the job
      -- by until then, instead of a call like this one per claim. Only while runs are running,
      -- whose ends will come (a lease expiry ends a lost one).
      if v_first.room < v_job.max_parallel_tasks then
        update job_service.job_shards set unfit_at_ended = v_first.ended
        where job_id = v_job_id and shard = v_first.shard;
      end if;
      return;
    end if;
  end if;

  -- Rule 1 under lock, taken only now that the claim holds shards, and never waited for: a job
  -- that a job-level change holds (FOR UPDATE), or that another claim is starting, is passed over
  -- in this claim. The first claims of a queued job also move it to running, which needs the
  -- stronger lock; every later claim shares the row with all other task work.
  -- (only what may have changed since the caller read the row: limits never change)
  if v_job.status = 'queued' then
    select status, rate_limited, group_limited, sending_group_id
    into v_job.status, v_job.rate_limited, v_job.group_limited, v_job.sending_group_id
    from job_service.jobs where id = v_job_id for no key update skip locked;
  else
    select status, rate_limited, group_limited, sending_group_id
    into v_job.status, v_job.rate_limited, v_job.group_limited, v_job.sending_group_id
    from job_service.jobs where id = v_job_id for key share skip locked;
    if found and v_job.status = 'queued' then
      select status, rate_limited, group_limited, sending_group_id
      into v_job.status, v_job.rate_limited, v_job.group_limited, v_job.sending_group_id
      from job_service.jobs where id = v_job_id for no key update skip locked;
    end if;
  end if;
  if not found or v_job.status not in ('queued', 'running') then
    return;
  end if;

  -- Rate limits (rate_limits migration): a limited job or sending group starts only as many tasks
  -- as its token buckets hold. Bucket rows are taken with SKIP LOCKED: while another claim spends
  -- them, this one gets nothing from the job. Unlimited jobs cost nothing here (flags on the job).
  -- one instant for the whole claim call: a lower-priority job considered after a higher one that
  -- found too few tokens must not see tokens that refilled in between
  v_now := p_now;
  if v_job.rate_limited then
    select * into v_job_bucket from job_service.job_rate_limits where job_id = v_job_id
    for update skip locked;
    if not found then
      return;
    end if;
    v_now := greatest(v_now, v_job_bucket.refilled_at);
  end if;
  if v_job.group_limited then
    select * into v_group_bucket from job_service.sending_group_limits
    where sending_group_id = v_job.sending_group_id
    for update skip locked;
    if not found then
      starved_group := v_job.sending_group_id;
      return;
    end if;
    v_now := greatest(v_now, v_group_bucket.refilled_at);
  end if;
  if v_job_bucket.job_id is not null then
    v_job_tokens := job_service.bucket_tokens(v_job_bucket.tokens, v_job_bucket.refilled_at,
      v_job_bucket.max_per_second, v_job_bucket.burst, v_now);
    v_limit := least(v_limit, floor(v_job_tokens)::integer);
  end if;
  if v_group_bucket.sending_group_id is not null then
    v_group_tokens := job_service.bucket_tokens(v_group_bucket.tokens, v_group_bucket.refilled_at,
      v_group_bucket.max_per_second, v_group_bucket.burst, v_now);
    if v_group_tokens < 1 then
      starved_group := v_job.sending_group_id;
    end if;
    v_limit := least(v_limit, floor(v_group_tokens)::integer);
  end if;
  if v_limit <= 0 then
    return;
  end if;

  -- The run slots the claim may fill, in order: the first tasks go through the first shard, and
  -- so on.
  for i in 1 .. cardinality(v_shards) loop
    exit when cardinality(v_slots) >= v_limit;
    v_slots := v_slots || array_fill(v_shards[i], array[least(v_room[i], v_limit - cardinality(v_slots))]);
  end loop;
  if v_rows is not null then
    -- fewer tokens than the budget chose: the first ones
    v_rows := v_rows[1:cardinality(v_slots)];
  end if;

  -- Rule 2 and rule 5 within the job: due pending tasks, older first (those chosen above for a
  -- budgeted job), taken off the queue by their row address (ctid), which no plan can turn into a
  -- queue scan, started, and counted on their shards, in one statement.
  if cardinality(v_slots) = 1 then
    -- One task (every one-at-a-time claim): the statement below for one run, without the
    -- numbering and the per-shard sums it needs for several (aggregates cost most to start; with
    -- the one-task report's own path, a one-task cycle costs 17 % less). The two start a run
    -- alike: change their SET lists together.
    with taken as (
      delete from job_service.task_ready
      where ctid = coalesce(v_rows[1], (
          select ctid from job_service.task_ready
          where job_id = v_job_id and run_after <= now()
          order by task_id limit 1
          for update skip locked
        ))
      returning task_id
    ), runs as (
      update job_service.tasks t
      set status = 'running',
          worker_id = p_worker,
          lease_ms = p_lease_ms,
          lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
          shard = v_slots[1],
          attempt = case when t.repeat_attempt then t.attempt else t.attempt + 1 end,
          repeat_attempt = false,
          stop_requested = false,
          reserved_memory = case when v_job.max_memory is not null
            then coalesce(t.memory, v_job.max_memory / v_job.max_parallel_tasks) end,
          reserved_cpu = case when v_job.max_memory is not null
            then coalesce(t.cpu, v_job.max_cpu / v_job.max_parallel_tasks) end,
          usage_memory = null,
          usage_cpu = null,
          ended_by = null,
          ended_attempt = null,
          started_at = v_now
      from taken n
      where t.id = n.task_id
      returning t.*
    ), counted as (
      update job_service.job_shards s
      set started = s.started + 1,
          ended_seen = v_ended[array_position(v_shards, s.shard)],
          pending = s.pending - 1,
          reserved_memory = s.reserved_memory + coalesce(r.reserved_memory, 0),
          released_memory_seen = case when v_job.max_memory is not null
            then v_first.released_memory else s.released_memory_seen end,
          reserved_cpu = s.reserved_cpu + coalesce(r.reserved_cpu, 0),
          released_cpu_seen = case when v_job.max_memory is not null
            then v_first.released_cpu else s.released_cpu_seen end
      from runs r
      where s.job_id = v_job_id and s.shard = r.shard
    )
    select array[job_service.task_json(c)] into claimed from runs c;
    if not found then
      claimed := '{}';
      return;
    end if;
    v_taken := 1;
  else
    with taken as (
      delete from job_service.task_ready
      where ctid = any (case when v_rows is not null then v_rows else array(
          select ctid from job_service.task_ready
          where job_id = v_job_id and run_after <= now()
          order by task_id limit cardinality(v_slots)
          for update skip locked
        ) end)
      returning task_id
    ), numbered as (
      select task_id, row_number() over (order by task_id) as slot from taken
    ), runs as (
      update job_service.tasks t
      set status = 'running',
          worker_id = p_worker,
          lease_ms = p_lease_ms,
          lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
          shard = v_slots[n.slot],
          attempt = case when t.repeat_attempt then t.attempt else t.attempt + 1 end,
          repeat_attempt = false,
          stop_requested = false,
          reserved_memory = case when v_job.max_memory is not null
            then coalesce(t.memory, v_job.max_memory / v_job.max_parallel_tasks) end,
          reserved_cpu = case when v_job.max_memory is not null
            then coalesce(t.cpu, v_job.max_cpu / v_job.max_parallel_tasks) end,
          usage_memory = null,
          usage_cpu = null,
          ended_by = null,
          ended_attempt = null,
          started_at = v_now
      from numbered n
      where t.id = n.task_id
      returning t.*
    ), per_shard as (
      select shard, count(*)::integer as n, coalesce(sum(reserved_memory), 0) as memory,
             coalesce(sum(reserved_cpu), 0) as cpu
      from runs group by shard
    ), counted as (
      update job_service.job_shards s
      set started = s.started + p.n,
          ended_seen = v_ended[array_position(v_shards, s.shard)],
          pending = s.pending - p.n,
          reserved_memory = s.reserved_memory + p.memory,
          released_memory_seen = case when v_job.max_memory is not null
            then v_first.released_memory else s.released_memory_seen end,
          reserved_cpu = s.reserved_cpu + p.cpu,
          released_cpu_seen = case when v_job.max_memory is not null
            then v_first.released_cpu else s.released_cpu_seen end
      from per_shard p
      where s.job_id = v_job_id and s.shard = p.shard
    )
    select coalesce(array_agg(job_service.task_json(c) order by c.id), '{}'), count(*)
    into claimed, v_taken
    from runs c;
    if v_taken = 0 then
      return;
    end if;
  end if;

  if v_job_bucket.job_id is not null then
    update job_service.job_rate_limits set tokens = v_job_tokens - v_taken, refilled_at = v_now
    where job_id = v_job_id;
  end if;
  if v_group_bucket.sending_group_id is not null then
    update job_service.sending_group_limits set tokens = v_group_tokens - v_taken, refilled_at = v_now
    where sending_group_id = v_job.sending_group_id;
  end if;

  if v_job.status = 'queued' then
    -- the request context only matters where a job row changes (audit, events): set it here
    perform job_service.set_request_context(p_ctx);
    update job_service.jobs set status = 'running' where id = v_job_id;
  end if;
end
$$;
comment on function job_service.claim_from_job(job_service.jobs, integer, text, integer, job_service.claim_shard, timestamptz, jsonb) is
  'Claims up to p_limit tasks of one job under the five rules of engine.md: the job is queued or '
  'running, the task pending and due, the shard (hence the job) stays within max_parallel_tasks, '
  'reservations within resource_limits and no claims while reported usage is over them; older '
  'tasks first; no more starts than the job''s and its sending group''s token buckets allow. Never '
  'waits on another claim (SKIP LOCKED).';

create function job_service_api.claim_tasks(
  p_ctx jsonb,
  p_worker text,
  p_limit integer,
  p_job_id uuid,
  p_lease_ms integer
) returns json
language plpgsql
set plan_cache_mode = force_generic_plan
-- Index paths only: the hot tables are small or all one job's rows in a benchmark and skewed in
-- production, and a sequential scan of the queue or the shards walks every dead row that claims
-- and reports leave at its head. Keys, not statistics, decide these plans. No JIT: a path that
-- cannot be avoided keeps its "disabled" cost, which would make every call compile its plan.
set enable_seqscan = off
set jit = off
set enable_sort = off
as $$
declare
  v_result json[] := '{}';
  v_remaining integer := p_limit;
  v_job record;
  v_claim record;
  v_starved_groups text[] := '{}';
  v_now constant timestamptz := clock_timestamp();
  v_one job_service.jobs;
  v_candidates refcursor;
begin
  if p_job_id is not null then
    select * into v_one from job_service.jobs where id = p_job_id;
    if not found then
      perform job_service.raise_not_found(p_job_id);
    end if;
    v_claim := job_service.claim_from_job(v_one, p_limit, p_worker, p_lease_ms, null, v_now, p_ctx);
    return json_build_object('tasks', array_to_json(v_claim.claimed));
  end if;

  -- Rule 5 across jobs: highest priority, then older job; a job that cannot give a task now (no
  -- due task, no free shard) is passed over. The candidates come in the order of
  -- jobs_claimable_idx (enable_sort is off: a sort would lock a shard in every candidate first),
  -- one row per fetch, each with a claim shard already locked (SKIP LOCKED): walking past the
  -- jobs that other claims are busy with costs one index probe each, not a call.
  open v_candidates for
    select j as job, j.sending_group_id, x.first from job_service.jobs j
    cross join lateral (
      -- from this connection's favourite shard on, then from the first, so that concurrent
      -- claimers spread out: two index ranges, in this order, the second read only when the first
      -- has none
      select shard.first
      from (values (1 + pg_backend_pid() % j.shard_count, 64),
                   (1, pg_backend_pid() % j.shard_count)) as range (low, high)
      cross join lateral (
        -- what claim_from_job needs of the shard, so that it does not read it again
        select row(s.shard, s.capacity - (s.started - e.ended), e.ended, e.released_memory,
                   e.released_cpu, s.memory_capacity - (s.reserved_memory - e.released_memory),
                   s.cpu_capacity - (s.reserved_cpu - e.released_cpu),
                   e.over_limit)::job_service.claim_shard as first
        from job_service.job_shards s
        join job_service.job_shard_ends e on e.job_id = s.job_id and e.shard = s.shard
        where s.job_id = j.id and s.shard between range.low and range.high
          -- room (ends as last committed), then a due task: CASE keeps that order, so that the
          -- queue is probed only for a shard with room (most of those a claim walks past are
          -- full); from the queue's end, away from the entries that claims leave dead at its head
          and case
            -- (a budgeted shard whose next task did not fit waits for one of its runs to end)
            when s.started - e.ended < s.capacity and s.unfit_at_ended is distinct from e.ended
              then (select true from job_service.task_ready r
                    where r.job_id = s.job_id and r.run_after <= now()
                    order by r.task_id desc limit 1)
            else false
          end
        order by s.shard limit 1
        for update of s skip locked
      ) shard
      limit 1
    ) x
    where j.status in ('queued', 'running')
    order by j.priority desc, j.created_at, j.id;
  loop
    fetch v_candidates into v_job;
    exit when not found;
    -- a group whose tokens a higher job could not get gives none to lower jobs in this claim
    continue when v_job.sending_group_id = any (v_starved_groups);
    -- an expression, not a query: no executor start-up per job
    v_claim := job_service.claim_from_job(v_job.job, v_remaining, p_worker, p_lease_ms, v_job.first,
                                      v_now, p_ctx);
    if v_claim.starved_group is not null then
      v_starved_groups := v_starved_groups || v_claim.starved_group;
    end if;
    v_result := v_result || v_claim.claimed;
    v_remaining := v_remaining - cardinality(v_claim.claimed);
    exit when v_remaining <= 0;
  end loop;
  close v_candidates;
  return json_build_object('tasks', array_to_json(v_result));
end
$$;
comment on function job_service_api.claim_tasks(jsonb, text, integer, uuid, integer) is
  'claimTasks: up to p_limit tasks for a worker, from one job or across jobs in priority order, each '
  'with a lease; an empty list at once when nothing may run.';

-- ---------------------------------------------------------------------------------------------
-- completeTask(s)
-- ---------------------------------------------------------------------------------------------
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
    -- path's aggregates and sorts to start.
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
  return (
    select json_agg(json_build_object('task_id', i.id, 'status',
      case
        when i.id = any (v_done) then 'succeeded'
        when t.id is null then 'not_found'
        -- the same worker reporting again a run it already completed: the first answer again
        when t.status = 'succeeded' and t.ended_by = p_worker then 'succeeded'
        else 'lost'
      end) order by i.ord)
    from (select (x ->> 'task_id')::bigint as id, ord from jsonb_array_elements(p_items) with ordinality as a (x, ord)) i
    -- one primary-key probe per task, whatever the statistics say
    left join lateral (select id, status, ended_by from job_service.tasks where id = i.id) t on true
  );
end
$$;
comment on function job_service_api.complete_tasks(jsonb, text, jsonb) is
  'completeTask(s): one statement ends every task of the batch that this worker holds (lease not '
  'expired) as succeeded; each other task is judged alone: a replay by the worker that completed it '
  '(never counted twice), lost, or not found. Runs the completion check where a job may be done. '
  'Answers json, as claim_tasks does (see task_json).';

-- ---------------------------------------------------------------------------------------------
-- failTask
-- ---------------------------------------------------------------------------------------------
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

-- ---------------------------------------------------------------------------------------------
-- heartbeat
-- ---------------------------------------------------------------------------------------------
create function job_service.apply_back_pressure(p_job_id uuid) returns void
language plpgsql
as $$
declare
  v_job job_service.jobs;
  v_shard job_service.job_shard_ends;
  v_over boolean;
  v_notification uuid;
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
    insert into job_service.notifications (type, job_id, user_id, payload)
    values ('job.resource_limit_exceeded', p_job_id, v_job.user_id,
            jsonb_build_object('memory', v_shard.usage_memory, 'cpu', v_shard.usage_cpu,
                               'max_memory', v_job.max_memory, 'max_cpu', v_job.max_cpu))
    returning id into v_notification;
    perform pg_notify('batch_job_notifications', jsonb_build_object(
      'id', v_notification, 'type', 'job.resource_limit_exceeded', 'job_id', p_job_id)::text);
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

-- ---------------------------------------------------------------------------------------------
-- Lease expiry (maintenance)
-- ---------------------------------------------------------------------------------------------
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
  v_notification uuid;
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
      insert into job_service.notifications (type, job_id, user_id, payload)
      values ('task.worker_lost', v_job_id, v_job.user_id, jsonb_build_object(
        'tasks', v_lost, 'workers', (select jsonb_agg(distinct w) from unnest(v_workers) w)))
      returning id into v_notification;
      perform pg_notify('batch_job_notifications', jsonb_build_object(
        'id', v_notification, 'type', 'task.worker_lost', 'job_id', v_job_id)::text);
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

-- ---------------------------------------------------------------------------------------------
-- Limits fixed at creation
-- ---------------------------------------------------------------------------------------------
create function job_service.refuse_limit_change() returns trigger
language plpgsql
as $$
begin
  raise exception using errcode = '23514', message = 'JOB_LIMITS_FIXED',
    detail = jsonb_build_object('job_id', old.id)::text,
    hint = 'max_parallel_tasks, resource_limits and the claim shards are fixed when a job is created.';
end
$$;
comment on function job_service.refuse_limit_change() is
  'Guarantees that a job''s parallelism, resource limits and shard count never change after '
  'creation: its shards'' capacities were split from them, and claims read them without the job''s '
  'lock (claim_from_job decides a budget before locking the job).';

create trigger jobs_limits_fixed
  before update of max_parallel_tasks, max_memory, max_cpu, shard_count on job_service.jobs
  for each row
  when ((old.max_parallel_tasks, old.max_memory, old.max_cpu, old.shard_count)
        is distinct from (new.max_parallel_tasks, new.max_memory, new.max_cpu, new.shard_count))
  execute function job_service.refuse_limit_change();
comment on trigger jobs_limits_fixed on job_service.jobs is
  'No writer, through the API or not, changes the limits a job''s shards were made from.';
