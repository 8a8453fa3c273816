-- claimTasks (docs/architecture.md, "What may be claimed": rules 1–5), and the trigger that keeps a job's limits fixed,
-- which claims rely on when they decide a budget before locking the job.

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

-- The claim shard a claim across jobs takes first from a job: one with room (ends as last
-- committed) and a due task, locked (SKIP LOCKED). Used by claim's walk and by complete_and_claim's
-- one-task cycle, inside their own statements: a SQL function of one SELECT, STABLE and without a
-- SET list, is written into the calling query by the planner (no call, no plan of its own; the
-- EXPLAIN shows its scans). Were it not, PostgreSQL would refuse its FOR UPDATE in a function that
-- is not VOLATILE instead of running it.
create function job_service.claim_shard_to_take(p_job_id uuid, p_from integer)
returns setof job_service.claim_shard
language sql
stable
as $$
  select shard.*
  -- from shard p_from on (the caller's favourite: claim's is this connection's, so that
  -- concurrent claimers spread out), then from the first: two index ranges, in this order, the
  -- second read only when the first has none
  from (values (p_from, 64), (1, p_from - 1)) as range (low, high)
  cross join lateral (
    -- what claim_from_job needs of the shard, so that it does not read it again
    select s.shard, s.capacity - (s.started - e.ended), e.ended, e.released_memory,
           e.released_cpu, s.memory_capacity - (s.reserved_memory - e.released_memory),
           s.cpu_capacity - (s.reserved_cpu - e.released_cpu), e.over_limit
    from job_service.job_shards s
    join job_service.job_shard_ends e on e.job_id = s.job_id and e.shard = s.shard
    where s.job_id = p_job_id and s.shard between range.low and range.high
      -- room (ends as last committed), then a due task: CASE keeps that order, so that the queue
      -- is probed only for a shard with room (most of those a claim walks past are full); from the
      -- queue's end, away from the entries that claims leave dead at its head
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
  -- the second range is empty when the first starts at shard 1 (every job of one shard): not
  -- probed then (2.6 k instructions a job the walk passes)
  where range.low <= range.high
  limit 1
$$;
comment on function job_service.claim_shard_to_take(uuid, integer) is
  'The claim shard a claim across jobs takes first from a job (room, a due task), locked SKIP '
  'LOCKED, from shard p_from on; written into the calling query by the planner.';

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
-- keys only: a claim joins at most its limit of rows (1000, most often 10), for which a hash or merge join costs
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
  v_shards smallint[] := '{}'::smallint[];
  v_room integer[] := '{}'::integer[];
  v_ended integer[] := '{}'::integer[];
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
  v_slots smallint[] := '{}'::smallint[];
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
begin
  -- Rule 1, first without a lock: most jobs a claim walks past have no free shard for it.
  claimed := '{}'::json[];
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
      -- what the answer (task_json) and the shard counts need, not the whole row
      returning t.id, t.job_id, t.payload, t.attempt, t.lease_expires_at, t.shard, t.reserved_memory,
                t.reserved_cpu, t.memory, t.cpu
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
    select array[job_service.task_json(c.id, c.job_id, c.payload, c.attempt,
                   job_service.iso(c.lease_expires_at), c.reserved_memory, c.reserved_cpu, c.memory,
                   c.cpu)]
    into claimed from runs c;
    if not found then
      claimed := '{}'::json[];
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
      -- what the answer (task_json) and the shard counts need, not the whole row
      returning t.id, t.job_id, t.payload, t.attempt, t.lease_expires_at, t.shard, t.reserved_memory,
                t.reserved_cpu, t.memory, t.cpu
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
    -- (a statement starts all its tasks with one lease: formatted once, from the first row)
    select coalesce(array_agg(job_service.task_json(c.id, c.job_id, c.payload, c.attempt,
                                (select job_service.iso(l.lease_expires_at) from runs l limit 1),
                                c.reserved_memory, c.reserved_cpu, c.memory, c.cpu)
                              order by c.id), '{}'), count(*)
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
  'Claims up to p_limit tasks of one job under the five claim rules (docs/architecture.md): the job is queued or '
  'running, the task pending and due, the shard (hence the job) stays within max_parallel_tasks, '
  'reservations within resource_limits and no claims while reported usage is over them; older '
  'tasks first; no more starts than the job''s and its sending group''s token buckets allow. Never '
  'waits on another claim (SKIP LOCKED).';

create function job_service.claim_from_jobs(
  -- the jobs of the batch in the walk's (priority) order, each as the caller read it with its first
  -- claim shard (read and locked by the walk): the shard, its end count, the releases and budget
  -- room it saw, how many tasks the batch wants of the job (never more than the shard's room)
  p_jobs uuid[],
  p_shards smallint[],
  p_ended integer[],
  p_want integer[],
  p_rooms integer[],
  p_max_parallel integer[],
  -- budgeted jobs only (null elsewhere): the fair share of a task without resources, the shard's
  -- budget room and the releases seen
  p_fair_memory numeric[],
  p_fair_cpu numeric[],
  p_room_memory numeric[],
  p_room_cpu numeric[],
  p_released_memory numeric[],
  p_released_cpu numeric[],
  p_worker text,
  p_lease_ms integer,
  p_now timestamptz,
  -- some job of the batch was queued when the walk read it (only then is a job row changed)
  p_starts boolean,
  -- the most tasks the batch takes in all: the jobs' wants add up to more when budgets were
  -- expected to stop some of them, and the cut keeps the first in the batch's (priority) order
  p_limit integer
) returns json[]
language plpgsql
-- see claim_from_job (nested loops over keys only: a hash join would read all of tasks); sorts
-- stay on: the window sums of budgets run per job in task order
set enable_seqscan = off
set jit = off
set enable_sort = on
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  v_claimed json[];
begin
  -- Rules 1–4 for every job of the batch at once, in one statement: each job's row locked SKIP
  -- LOCKED and still queued or running without rate limits (else it gives nothing to this claim),
  -- its due queue rows taken in task order up to what the batch wants of it (within its shard's
  -- room), for a budgeted job only the prefix whose reservations fit the shard's budget room; the
  -- rows taken off the queue by address, the tasks started, each job's shard counted once, the
  -- queued jobs among them moved to running; a budgeted job that got a lock but nothing that fits
  -- has its shard passed by until one of its runs ends (as claim_from_job does).
  with batch as (
    select b.*
    from unnest(p_jobs, p_shards, p_want, p_fair_memory, p_fair_cpu, p_room_memory, p_room_cpu)
      with ordinality as b (job_id, shard, want, fair_memory, fair_cpu, room_memory, room_cpu, k)
  ), locked as (
    -- a running job's row shared with all other task work; a queued one's taken FOR NO KEY UPDATE,
    -- as claim_from_job does, since this statement moves it to running (the second test runs
    -- only for a job that the first did not find running)
    select b.*
    from batch b
    where exists (
      select from job_service.jobs j
      where j.id = b.job_id and j.status = 'running' and not j.rate_limited and not j.group_limited
      for key share skip locked
    ) or p_starts and exists (
      select from job_service.jobs j
      where j.id = b.job_id and j.status = 'queued' and not j.rate_limited and not j.group_limited
      for no key update skip locked
    )
  ), due as (
    select l.k, r.task_id, r.row_address, l.fair_memory, l.room_memory, l.room_cpu,
           sum(coalesce(t.memory, l.fair_memory)) over w as memory_total,
           sum(coalesce(t.cpu, l.fair_cpu)) over w as cpu_total,
           row_number() over w as place
    from locked l
    cross join lateral (
      select q.task_id, q.ctid as row_address from job_service.task_ready q
      where q.job_id = l.job_id and q.run_after <= now()
      order by q.task_id limit l.want
      for update skip locked
    ) r
    -- a task's own resources only matter for a budgeted job, and are read for no other (a null
    -- key finds nothing without a probe; a condition beside the key would filter what was read)
    left join job_service.tasks t
      on t.id = case when l.fair_memory is not null then r.task_id end
    window w as (partition by l.k order by r.task_id)
  ), fitting as (
    select k, task_id, row_address from due
    where fair_memory is null or (memory_total <= room_memory and cpu_total <= room_cpu)
    order by k, task_id
    limit p_limit
  ), taken as (
    -- by row address, each with its job's place in the batch (k), which the rest go by
    delete from job_service.task_ready q
    using fitting f
    where q.ctid = f.row_address
    returning f.k, q.task_id
  ), runs as (
    update job_service.tasks t
    set status = 'running',
        worker_id = p_worker,
        lease_ms = p_lease_ms,
        lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
        shard = p_shards[n.k],
        attempt = case when t.repeat_attempt then t.attempt else t.attempt + 1 end,
        repeat_attempt = false,
        stop_requested = false,
        reserved_memory = case when p_fair_memory[n.k] is not null
          then coalesce(t.memory, p_fair_memory[n.k]) end,
        reserved_cpu = case when p_fair_memory[n.k] is not null
          then coalesce(t.cpu, p_fair_cpu[n.k]) end,
        usage_memory = null,
        usage_cpu = null,
        ended_by = null,
        ended_attempt = null,
        started_at = p_now
    from taken n
    where t.id = n.task_id
    -- what the answer (task_json) and the shard counts need, not the whole row
    returning n.k, t.id, t.job_id, t.payload, t.attempt, t.lease_expires_at, t.reserved_memory,
      t.reserved_cpu, t.memory, t.cpu
  ), per_job as (
    -- what each job started (a job's place in the batch, k, is the key of its shard: looked up by
    -- position in the arrays, never by a search through them)
    select k, count(*)::integer as n, coalesce(sum(reserved_memory), 0) as memory,
           coalesce(sum(reserved_cpu), 0) as cpu
    from runs group by k
  ), counted as (
    update job_service.job_shards s
    set started = s.started + p.n,
        ended_seen = p_ended[p.k],
        pending = s.pending - p.n,
        reserved_memory = s.reserved_memory + p.memory,
        released_memory_seen = case when p_fair_memory[p.k] is not null
          then p_released_memory[p.k] else s.released_memory_seen end,
        reserved_cpu = s.reserved_cpu + p.cpu,
        released_cpu_seen = case when p_fair_memory[p.k] is not null
          then p_released_cpu[p.k] else s.released_cpu_seen end
    from per_job p
    where s.job_id = p_jobs[p.k] and s.shard = p_shards[p.k]
  ), started_jobs as (
    -- the queued jobs that started a task move to running (their rows are locked above; nothing
    -- is read when the walk saw none queued); the caller set the request context for the audit
    -- and event rows this writes
    update job_service.jobs j
    set status = 'running'
    from per_job p
    where p_starts and j.id = p_jobs[p.k] and j.status = 'queued'
  ), unfit as (
    -- the budgeted jobs whose next due task did not fit while runs of theirs are running (only an
    -- end frees budget): their lock was granted, and the first of their due tasks is not in
    -- fitting (the sums only grow, so none of the job's is)
    update job_service.job_shards s
    set unfit_at_ended = p_ended[d.k]
    from due d
    where d.place = 1 and d.fair_memory is not null
      and not (d.memory_total <= d.room_memory and d.cpu_total <= d.room_cpu)
      and p_rooms[d.k] < p_max_parallel[d.k]
      and s.job_id = p_jobs[d.k] and s.shard = p_shards[d.k]
  )
  -- (a statement starts all its tasks with one lease: formatted once, from the first row)
  select coalesce(array_agg(job_service.task_json(r.id, r.job_id, r.payload, r.attempt,
                              (select job_service.iso(l.lease_expires_at) from runs l limit 1),
                              r.reserved_memory, r.reserved_cpu, r.memory, r.cpu)
                            order by r.k, r.id), '{}')
  into v_claimed
  from runs r;
  return v_claimed;
end
$$;
comment on function job_service.claim_from_jobs(uuid[], smallint[], integer[], integer[], integer[], integer[], numeric[], numeric[], numeric[], numeric[], numeric[], numeric[], text, integer, timestamptz, boolean, integer) is
  'Claims for a batch of queued or running jobs without rate limits, each from the one claim shard '
  'the walk locked, in one statement (claim_from_job''s rules 1–4 per job, set-based): job locks, '
  'due tasks in order within each shard''s room and budget, queue rows removed, tasks started, each '
  'shard counted once, queued jobs that started a task moved to running. The claimed tasks in the '
  'batch''s job order, then task order.';

create function job_service.claim(
  p_ctx jsonb,
  p_worker text,
  p_limit integer,
  p_job_id uuid,
  p_lease_ms integer
) returns json[]
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
  -- the bound of limits.ts again (a domain: a call past it fails here, VALIDATION_ERROR)
  v_limit constant job_service.claim_limit := p_limit;
  v_result json[] := '{}'::json[];
  v_remaining integer := v_limit;
  v_job record;
  v_claim record;
  v_starved_groups text[] := '{}'::text[];
  v_now constant timestamptz := clock_timestamp();
  v_one job_service.jobs;
  v_candidates refcursor;
  v_end boolean;
  v_simple boolean;
  v_last integer;
  -- the batch's first job, as the walk read it: served alone by claim_from_job
  v_lone record;
  v_lone_want integer;
  v_want integer;
  -- what a batched job is asked for (its shard's room, up to all the claim wants) and, when it has
  -- a budget, the fair share of a task without resources
  v_ask integer;
  v_fair_memory numeric;
  v_fair_cpu numeric;
  v_claimed json[];
  -- the batch of jobs that claim_from_jobs serves in one statement, and the tasks it wants (null
  -- until a second job joins a batch: most claims never build them)
  v_batched integer := 0;
  -- a job of the batch is queued (claim_from_jobs moves it to running)
  v_batch_starts boolean := false;
  b_jobs uuid[];
  b_shards smallint[];
  b_ended integer[];
  b_want integer[];
  b_rooms integer[];
  b_max_parallel integer[];
  b_fair_memory numeric[];
  b_fair_cpu numeric[];
  b_room_memory numeric[];
  b_room_cpu numeric[];
  b_released_memory numeric[];
  b_released_cpu numeric[];
begin
  if p_job_id is not null then
    select * into v_one from job_service.jobs where id = p_job_id;
    if not found then
      -- no such job: the caller decides what that means (claim_tasks: 404)
      return null;
    end if;
    v_claim := job_service.claim_from_job(v_one, v_limit, p_worker, p_lease_ms, null, v_now, p_ctx);
    return v_claim.claimed;
  end if;

  -- Rule 5 across jobs: highest priority, then older job; a job that cannot give a task now (no
  -- due task, no free shard) is passed over. The candidates come in the order of
  -- jobs_claimable_idx (enable_sort is off: a sort would lock a shard in every candidate first),
  -- one row per fetch, each with a claim shard already locked (SKIP LOCKED): walking past the
  -- jobs that other claims are busy with costs one index probe each, not a call
  -- (claim_shard_to_take is written into this query: complete_and_claim's one-task cycle reads
  -- the first candidate the same way).
  open v_candidates for
    select j as job, j.sending_group_id, x as first from job_service.jobs j
    cross join lateral job_service.claim_shard_to_take(j.id, 1 + pg_backend_pid() % j.shard_count) x
    where j.status in ('queued', 'running')
    order by j.priority desc, j.created_at, j.id;
  loop
    fetch v_candidates into v_job;
    v_end := not found;
    if v_limit = 1 and not v_end then
      -- a claim of one task (every one-at-a-time worker's) takes it from one job: the per-job
      -- path straight away, without the batch's bookkeeping
      continue when v_job.sending_group_id = any (v_starved_groups);
      v_claim := job_service.claim_from_job(v_job.job, 1, p_worker, p_lease_ms, v_job.first,
        v_now, p_ctx);
      if v_claim.starved_group is not null then
        v_starved_groups := v_starved_groups || v_claim.starved_group;
      end if;
      v_result := v_claim.claimed;
      exit when cardinality(v_result) > 0;
      continue;
    end if;
    v_simple := false;
    if not v_end then
      -- a group whose tokens a higher job could not get gives none to lower jobs in this claim
      continue when v_job.sending_group_id = any (v_starved_groups);
      -- A queued or running job without rate limits whose first shard has room for what the claim
      -- still wants of it (or that has no other shard) joins the batch that claim_from_jobs serves
      -- in one statement (which also moves queued ones to running: a claim across many new jobs,
      -- T2's first, starts them all there); any other job (rate-limited, or needing more shards)
      -- takes claim_from_job's general path, after the batch of the jobs before it.
      v_want := least((v_job.first).room, v_remaining - v_batched);
      v_simple := not (v_job.job).rate_limited
        and not (v_job.job).group_limited
        and (v_want = v_remaining - v_batched or (v_job.job).shard_count = 1);
      if v_simple then
        -- rule 4's back-pressure (see claim_from_job): a job over its limits gives nothing
        if (v_job.job).max_memory is null or not (v_job.first).over_limit then
          v_ask := least((v_job.first).room, v_remaining);
          v_fair_memory := (v_job.job).max_memory / (v_job.job).max_parallel_tasks;
          v_fair_cpu := (v_job.job).max_cpu / (v_job.job).max_parallel_tasks;
          -- the first job of a batch is kept as read; the arrays of claim_from_jobs are built
          -- only when a second one joins (most claims of a busy job never need them)
          if v_batched = 0 then
            v_lone := v_job;
            v_lone_want := v_ask;
          else
            if b_jobs is null then
              b_jobs := array[(v_lone.job).id];
              b_shards := array[(v_lone.first).shard];
              b_ended := array[(v_lone.first).ended];
              b_want := array[v_lone_want];
              b_rooms := array[(v_lone.first).room];
              b_max_parallel := array[(v_lone.job).max_parallel_tasks];
              b_fair_memory := array[(v_lone.job).max_memory / (v_lone.job).max_parallel_tasks];
              b_fair_cpu := array[(v_lone.job).max_cpu / (v_lone.job).max_parallel_tasks];
              b_room_memory := array[(v_lone.first).room_memory];
              b_room_cpu := array[(v_lone.first).room_cpu];
              b_released_memory := array[(v_lone.first).released_memory];
              b_released_cpu := array[(v_lone.first).released_cpu];
            end if;
            b_jobs := b_jobs || (v_job.job).id;
            b_shards := b_shards || (v_job.first).shard;
            b_ended := b_ended || (v_job.first).ended;
            b_want := b_want || v_ask;
            b_rooms := b_rooms || (v_job.first).room;
            b_max_parallel := b_max_parallel || (v_job.job).max_parallel_tasks;
            b_fair_memory := b_fair_memory || v_fair_memory;
            b_fair_cpu := b_fair_cpu || v_fair_cpu;
            b_room_memory := b_room_memory || (v_job.first).room_memory;
            b_room_cpu := b_room_cpu || (v_job.first).room_cpu;
            b_released_memory := b_released_memory || (v_job.first).released_memory;
            b_released_cpu := b_released_cpu || (v_job.first).released_cpu;
          end if;
          -- Each job is asked for its shard's room (up to all the claim wants) and the batch is cut
          -- at the claim's limit in priority order; what closes the batch is what the jobs are
          -- expected to give: a budgeted job counts the fair shares its budget room holds, at
          -- least one (every job counts: a batch is never empty), so that jobs whose budget is
          -- full do not end a batch that they cannot fill (a budget full of bigger tasks still
          -- makes the batch fall short, and the walk go on, as before).
          v_batched := v_batched + case when (v_job.job).max_memory is null then v_want
            else greatest(1, least(v_want, floor(least((v_job.first).room_memory / v_fair_memory,
                                                        (v_job.first).room_cpu / v_fair_cpu))))
            end;
          v_batch_starts := v_batch_starts or (v_job.job).status = 'queued';
        end if;
        continue when v_batched < v_remaining;
      end if;
    end if;
    -- the batch so far (higher jobs first): when it wants all that is left, before a job of the
    -- general path, or at the walk's end
    if v_batched > 0 and b_jobs is null then
      -- a batch of one job (every claim from one job, as a worker of one busy job makes): the
      -- per-job path, whose statements are cheaper for one job than the batch's
      v_claim := job_service.claim_from_job(v_lone.job, v_remaining, p_worker, p_lease_ms,
        v_lone.first, v_now, p_ctx);
      v_result := v_result || v_claim.claimed;
      v_remaining := v_remaining - cardinality(v_claim.claimed);
    elsif v_batched > 0 then
      if v_batch_starts then
        -- a job's move to running writes audit and event rows: attribute them to this request
        perform job_service.set_request_context(p_ctx);
      end if;
      v_claimed := job_service.claim_from_jobs(b_jobs, b_shards, b_ended, b_want, b_rooms,
        b_max_parallel, b_fair_memory, b_fair_cpu, b_room_memory, b_room_cpu, b_released_memory,
        b_released_cpu, p_worker, p_lease_ms, v_now, v_batch_starts, v_remaining);
      v_result := v_result || v_claimed;
      v_remaining := v_remaining - cardinality(v_claimed);
      -- A job is asked for less than its room only when its room exceeds what the claim wanted;
      -- one before the last then counted less than that (a budget), and gave what fits. When the
      -- batch got less than the claim wants (a budget that stops a job early, queue rows another
      -- claim holds), the last job, so asked, may give more, before any lower job: the general
      -- path, which reads the shard again (the claim holds it).
      v_last := cardinality(b_jobs);
      if v_remaining > 0 and b_want[v_last] < b_rooms[v_last] then
        select * into v_one from job_service.jobs where id = b_jobs[v_last];
        v_claim := job_service.claim_from_job(v_one, v_remaining, p_worker, p_lease_ms, null,
          v_now, p_ctx);
        v_result := v_result || v_claim.claimed;
        v_remaining := v_remaining - cardinality(v_claim.claimed);
      end if;
    end if;
    -- (the other arrays are made again with the next batch's first two jobs)
    b_jobs := null;
    v_batched := 0;
    v_batch_starts := false;
    exit when v_end or v_remaining <= 0;
    if not v_simple then
      -- an expression, not a query: no executor start-up per job
      v_claim := job_service.claim_from_job(v_job.job, v_remaining, p_worker, p_lease_ms,
        v_job.first, v_now, p_ctx);
      if v_claim.starved_group is not null then
        v_starved_groups := v_starved_groups || v_claim.starved_group;
      end if;
      v_result := v_result || v_claim.claimed;
      v_remaining := v_remaining - cardinality(v_claim.claimed);
      exit when v_remaining <= 0;
    end if;
  end loop;
  close v_candidates;
  return v_result;
end
$$;
comment on function job_service.claim(jsonb, text, integer, uuid, integer) is
  'Up to p_limit tasks for a worker, from one job or across jobs in priority order, each with a '
  'lease; none at once when nothing may run; null when p_job_id names no job. The claimed tasks as '
  'task_json makes them (claim_tasks and complete_and_claim put them in their answers without '
  'parsing them again).';

create function job_service_api.claim_tasks(
  p_ctx jsonb,
  p_worker text,
  p_limit integer,
  p_job_id uuid,
  p_lease_ms integer
) returns json
language plpgsql
as $$
declare
  v_claimed json[] := job_service.claim(p_ctx, p_worker, p_limit, p_job_id, p_lease_ms);
begin
  if v_claimed is null then
    perform job_service.raise_not_found(p_job_id);
  end if;
  return json_build_object('tasks', array_to_json(v_claimed));
end
$$;
comment on function job_service_api.claim_tasks(jsonb, text, integer, uuid, integer) is
  'claimTasks: up to p_limit tasks for a worker, from one job or across jobs in priority order, each '
  'with a lease; an empty list at once when nothing may run.';
