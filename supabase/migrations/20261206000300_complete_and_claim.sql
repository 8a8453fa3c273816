-- A report that also claims: completeTask(s) with `claim` ends the reported runs and then claims
-- for the worker in the same transaction, one call and one commit instead of two (as BullMQ's
-- moveToFinished with fetchNext does). The claim sees the room the report gave back.

-- Whether a job before the given one in the claim walk's order (claim's candidates) could take a
-- task now: a claim shard with room (ends as last committed, read without locks as the walk judges
-- room) and a due task. complete_and_claim hands a reported run's slot to its own job only when
-- none could. PL/pgSQL, so that its plan is kept for the session (a SQL function with a subquery is
-- not written into its caller and would be planned again in each call's transaction).
create function job_service.room_before(p_job_id uuid, p_priority smallint, p_created_at timestamptz)
returns boolean
language plpgsql
stable
set enable_seqscan = off
set jit = off
as $$
begin
  return exists (
    select from job_service.jobs j
    where j.status in ('queued', 'running') and j.priority >= p_priority
      and (j.priority > p_priority or (j.created_at, j.id) < (p_created_at, p_job_id))
      and exists (
        select from job_service.job_shards s
        join job_service.job_shard_ends e on e.job_id = s.job_id and e.shard = s.shard
        where s.job_id = j.id and s.started - e.ended < s.capacity
          and s.unfit_at_ended is distinct from e.ended)
      and (select true from job_service.task_ready r
           where r.job_id = j.id and r.run_after <= now()
           order by r.task_id desc limit 1));
end
$$;
comment on function job_service.room_before(uuid, smallint, timestamptz) is
  'Whether a job before this one in the claim order has a claim shard with room and a due task '
  '(read without locks): complete_and_claim''s hand-over test.';
revoke execute on function job_service.room_before(uuid, smallint, timestamptz) from public;

-- A job of a batch report as complete_and_claim's hand-over needs it: its place in the walk's
-- order, whether it may take a task (running, without rate limits), a budgeted job's fair shares,
-- and its reported runs (where they start in the report's arrays, how many, the budget they held).
create type job_service.hand_over_job as (
  job_id uuid,
  priority smallint,
  created_at timestamptz,
  open boolean,
  fair_memory numeric,
  fair_cpu numeric,
  first integer,
  n integer,
  memory numeric,
  cpu numeric
);
comment on type job_service.hand_over_job is
  'A job of a batch report as complete_and_claim''s hand-over reads it, with its reported runs.';

create function job_service_api.complete_and_claim(
  p_ctx jsonb,
  p_worker text,
  p_items jsonb,
  p_limit integer,
  p_job_id uuid,
  p_lease_ms integer
) returns json
language plpgsql
set plan_cache_mode = force_generic_plan
-- for the one-task cycle's plans below, as complete_tasks sets them (claim and complete_tasks set
-- their own; sorts stay on, as complete_tasks and the functions it calls were planned with them, and
-- the one-task walk's index order needs no sort to be turned off: it takes its first row)
set enable_seqscan = off
set jit = off
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  v_done json;
  -- the one-task cycle's
  v_id bigint;
  -- takes the answers of calls made as assignments (see complete_tasks), never read
  -- @plpgsql_check_options: extra_warnings = false
  v_counted integer;
  v_job_id uuid;
  v_over boolean;
  -- the reported task's job as its lock read it: its place in the walk's order, whether it is a
  -- plain one (running, without rate limits or budget), and whether it leads the walk (no job
  -- before it, or none of those with a claim shard with room and a due task)
  v_priority smallint;
  v_created_at timestamptz;
  v_job_plain boolean;
  v_leads boolean;
  v_ended integer;
  v_plain boolean;
  v_claimed text;
  -- a batch's: the runs that ended here (their ids, shards and reported usage, the arrays in one
  -- order), the tasks handed over
  v_ended_ids bigint[];
  v_run_shards smallint[];
  v_run_usage_memory numeric[];
  v_run_usage_cpu numeric[];
  v_handed json[];
  -- a batch of several jobs': the runs' jobs and reservations (in the arrays' order, by job and
  -- shard), the batch's jobs as the hand-over needs them (id order), the first job that could
  -- take a task up to the batch's last open one, the jobs whose end rows are over their limits
  -- and those that handed nothing over
  v_ids bigint[];
  v_run_jobs uuid[];
  v_run_reserved_memory numeric[];
  v_run_reserved_cpu numeric[];
  v_by_job job_service.hand_over_job[];
  v_head_priority smallint;
  v_head_created_at timestamptz;
  v_head_id uuid;
  v_open_jobs uuid[];
  v_over_jobs uuid[];
  v_quiet_jobs uuid[];
  -- the job and claim shard the walk gave
  v_take_job uuid;
  v_take_shard smallint;
begin
  <<one_task>>
  begin
    exit one_task when not (p_limit = 1 and p_job_id is null and jsonb_array_length(p_items) = 1);
    -- A one-task cycle (every one-at-a-time worker's report, carrying the claim of its next
    -- task): the statements of complete_tasks' and claim's one-task paths here, with few PL/pgSQL
    -- expressions around them, for the common case (a running job without rate limits or budget
    -- at the head of the claim walk); anything else takes the general path below. A cycle
    -- otherwise paid about as much for the functions around its statements as for the statements
    -- (docs/performance.md, "A lean one-task cycle").
    v_id := (p_items -> 0 ->> 'task_id')::bigint;
    -- The report: complete_tasks' one-task path's job lock (the same statement, here also reading
    -- what the hand-over below needs of the job) and its held task (the same CTE; pgTAP 14 checks
    -- that both are the same); the task's end, the hand-over and the end row are one statement
    -- below, and the probe of the job's queue for the tail check comes after the claim.
    select j.id, j.priority, j.created_at,
           j.status = 'running' and not j.rate_limited and not j.group_limited and j.max_memory is null,
           not exists (
             select from job_service.jobs b
             where b.status in ('queued', 'running') and b.priority >= j.priority
               and (b.priority > j.priority or (b.created_at, b.id) < (j.created_at, j.id)))
    into v_job_id, v_priority, v_created_at, v_job_plain, v_leads
    from job_service.jobs j where id = (select job_id from job_service.tasks where id = v_id)
    for key share;

    -- The hand-over: the reported run's slot goes to the next due task of the same job, when the
    -- job is plain and leads the walk (claim's candidates, in their order): no job comes before it,
    -- or none of those has a claim shard with room and a due task, read without locks as the walk
    -- judges room (ends as last committed; one whose room other claims are taking just now sends
    -- this cycle the walk's way below, which passes it by). A hand-over uses no room another claim
    -- could see: the shard's running count, started - ended, is the same after this transaction
    -- as before it, and a concurrent claim counts the reported run as running until this one
    -- commits. So it needs no claim row and no lock on one; it is counted on the end row only (the
    -- end and the start as one: no end, one pending fewer; running is started - ended, pending is
    -- the claim rows' pending plus the end rows' requeued), which the statement below updates
    -- once, with the report's end, whether or not it handed a task over (docs/architecture.md,
    -- "Tables"). Most cycles' jobs lead the walk with no job before them: the lock's statement
    -- above tells, and the jobs before it are read only when there are some.
    if v_job_plain and not v_leads then
      v_leads := not job_service.room_before(v_job_id, v_priority, v_created_at);
    end if;
    -- The task's end and the hand-over's start in one UPDATE of both task rows (each column set by
    -- which of the two a row is): tasks' CHECK is prepared once a statement, not once an update,
    -- and one statement is started instead of two. The end as complete_tasks writes it; the start
    -- as claim_from_job's one-task statement writes it.
    with held as (
      select id, job_id, shard, reserved_memory, reserved_cpu, usage_memory, usage_cpu
      from job_service.tasks
      where id = v_id
        and status = 'running' and worker_id = p_worker and lease_expires_at > now()
      for update
    ), taken as (
      delete from job_service.task_ready
      where ctid = (
          select q.ctid from job_service.task_ready q
          where q.job_id = v_job_id and q.run_after <= now() and v_job_plain and v_leads
            and exists (select from held)
          order by q.task_id limit 1
          for update skip locked
        )
      returning task_id
    ), pair as (
      -- the reported task and the task handed over, if any, as one row
      select h.id, h.job_id, h.shard, h.reserved_memory, h.reserved_cpu, h.usage_memory, h.usage_cpu,
             n.task_id as handed
      from held h left join taken n on true
    ), changed as (
      update job_service.tasks t
      set status = case when t.id = p.id then 'succeeded' else 'running' end::job_service.task_status,
          result = case when t.id = p.id then p_items -> 0 -> 'result' else t.result end,
          worker_id = case when t.id = p.id then null else p_worker end,
          lease_ms = case when t.id = p.id then t.lease_ms else p_lease_ms end,
          lease_expires_at = case when t.id = p.id then null
            else now() + p_lease_ms * interval '1 millisecond' end,
          shard = case when t.id = p.id then null else p.shard end,
          attempt = case when t.id = p.id or t.repeat_attempt then t.attempt else t.attempt + 1 end,
          repeat_attempt = case when t.id = p.id then t.repeat_attempt else false end,
          reserved_memory = null, reserved_cpu = null, usage_memory = null, usage_cpu = null,
          stop_requested = false,
          finished_at = case when t.id = p.id then now() else t.finished_at end,
          ended_by = case when t.id = p.id then p_worker end,
          ended_attempt = case when t.id = p.id then t.attempt end,
          started_at = case when t.id = p.id then t.started_at else clock_timestamp() end
      from pair p
      where t.id = any (array[p.id, p.handed])
      returning t.id, t.job_id, t.payload, t.attempt, t.lease_expires_at, t.memory, t.cpu
    ), released as (
      -- the report's end, as complete_tasks counts it, less a hand-over's start (a queue row
      -- taken is a task started: its task row is there while its job is, and the job is locked)
      update job_service.job_shard_ends e
      set ended = e.ended + case when p.handed is null then 1 else 0 end,
          succeeded = e.succeeded + 1,
          requeued = e.requeued - case when p.handed is null then 0 else 1 end,
          released_memory = e.released_memory + coalesce(p.reserved_memory, 0),
          released_cpu = e.released_cpu + coalesce(p.reserved_cpu, 0),
          usage_memory = e.usage_memory - coalesce(p.usage_memory, 0),
          usage_cpu = e.usage_cpu - coalesce(p.usage_cpu, 0)
      from pair p
      where e.job_id = p.job_id and e.shard = p.shard
      returning e.over_limit
    )
    select (select format('{"task_id": %s, "job_id": "%s", "payload": %s, "attempt": %s, '
                          '"lease_expires_at": "%s", "resources": %s}', c.id, c.job_id, c.payload,
                          c.attempt, job_service.iso(c.lease_expires_at),
                          case when c.memory is null then 'null'
                            else json_build_object('memory', c.memory, 'cpu', c.cpu)::text end)
            from changed c where c.id <> v_id),
           (select r.over_limit from released r)
    into v_claimed, v_over
    from held h;
    -- (a worker that does not hold the task: the general path below judges the report)
    exit one_task when not found;
    if v_over then
      perform job_service.apply_back_pressure(v_job_id);
    end if;
    if v_claimed is not null then
      -- the job's next task runs when this transaction commits: the job is not at its tail
      return ('{"tasks": [{"task_id": ' || v_id || ', "status": "succeeded"}], "claimed": ['
              || v_claimed || ']}')::json;
    end if;

    -- The claim: the walk's first job, with a claim shard locked (claim's candidates, read as
    -- its walk reads them) ...
    select j.id, x.shard, x.ended,
           j.status = 'running' and not j.rate_limited and not j.group_limited and j.max_memory is null
    into v_take_job, v_take_shard, v_ended, v_plain
    from job_service.jobs j
    cross join lateral job_service.claim_shard_to_take(j.id, 1 + pg_backend_pid() % j.shard_count) x
    where j.status in ('queued', 'running')
    order by j.priority desc, j.created_at, j.id
    limit 1;
    if v_plain and v_take_job <> v_job_id then
      -- ... and, when it is a plain one, its lock (rule 1 under lock, never waited for; taken
      -- before the queue row's; the reported task's job is locked already, by this transaction,
      -- since before the walk read it) and claim_from_job's one-task statement
      perform 1 from job_service.jobs
      where id = v_take_job and status = 'running' and not rate_limited and not group_limited
      for key share skip locked;
      v_plain := found;
    end if;
    if v_plain then
      with taken as (
        delete from job_service.task_ready
        where ctid = (
            select ctid from job_service.task_ready
            where job_id = v_take_job and run_after <= now()
            order by task_id limit 1
            for update skip locked
          )
        returning task_id
      ), runs as (
        update job_service.tasks t
        set status = 'running',
            worker_id = p_worker,
            lease_ms = p_lease_ms,
            lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
            shard = v_take_shard,
            attempt = case when t.repeat_attempt then t.attempt else t.attempt + 1 end,
            repeat_attempt = false,
            stop_requested = false,
            ended_by = null,
            ended_attempt = null,
            started_at = clock_timestamp()
        from taken n
        where t.id = n.task_id
        returning t.id, t.job_id, t.payload, t.attempt, t.lease_expires_at, t.memory, t.cpu
      ), counted as (
        update job_service.job_shards s
        set started = s.started + 1, ended_seen = v_ended, pending = s.pending - 1
        from runs r
        where s.job_id = v_take_job and s.shard = v_take_shard
      )
      select format('{"task_id": %s, "job_id": "%s", "payload": %s, "attempt": %s, '
                    '"lease_expires_at": "%s", "resources": %s}', c.id, c.job_id, c.payload, c.attempt,
                    job_service.iso(c.lease_expires_at),
                    case when c.memory is null then 'null'
                      else json_build_object('memory', c.memory, 'cpu', c.cpu)::text end)
      into v_claimed from runs c;
    end if;
    -- The tail check (as after_tasks_ended makes it), unless this claim took a task of the
    -- reported task's job: that task runs when this transaction commits, so the job is not at its
    -- tail, and its end will check. Every one-at-a-time worker of a job would otherwise lock its
    -- queue's last row, the same row, in every cycle. Done after the claim: it may wait for the
    -- job row (check_job_tail), which no holder of a claim or queue row ever waits for.
    if v_claimed is null or v_take_job <> v_job_id then
      perform 1 from job_service.task_ready q
      where q.job_id = v_job_id order by q.task_id desc limit 1
      for key share skip locked;
      if not found then
        v_counted := job_service.check_job_tail(v_job_id, p_ctx);
      end if;
    end if;
    if v_claimed is not null then
      -- written out, as task_json does
      return ('{"tasks": [{"task_id": ' || v_id || ', "status": "succeeded"}], "claimed": ['
              || v_claimed || ']}')::json;
    end if;
    -- the report is made; anything else (no job, a job that is not plain, a task another claim
    -- took meanwhile) gets the general claim below, which walks again (the shard this claim locked
    -- stays its own)
    v_done := ('[{"task_id": ' || v_id || ', "status": "succeeded"}]')::json;
  end;
  <<batch>>
  begin
    exit batch when v_done is not null or p_job_id is not null or jsonb_array_length(p_items) < 2;
    -- A batch report that carries a claim (a batched worker's completion call while its jobs are at
    -- their limits): the hand-over above, for a batch of one plain job that leads the walk. The
    -- runs it reports give their slots to the job's next due tasks, one each, in the reported
    -- runs' shards, counted on the end rows with the ends; what the claim asks beyond those (or
    -- everything, when no task was handed over) is claimed the general way after it. A batch of
    -- several jobs, or of a job that is not plain, goes the way of the next block (the same
    -- hand-over across jobs, which costs a batch of one job a fifth more: T1's).
    -- the batch's job locked before any task row, when the batch has one job (a batch of several
    -- goes the next block's way, which locks them all in id order; none is locked here)
    select j.id, j.priority, j.created_at,
           j.status = 'running' and not j.rate_limited and not j.group_limited and j.max_memory is null,
           not exists (
             select from job_service.jobs f
             where f.status in ('queued', 'running') and f.priority >= j.priority
               and (f.priority > j.priority or (f.created_at, f.id) < (j.created_at, j.id)))
    into v_job_id, v_priority, v_created_at, v_job_plain, v_leads
    from job_service.jobs j
    where j.id = (select t.job_id from job_service.tasks t where t.id = (p_items -> 0 ->> 'task_id')::bigint)
      and not exists (
        select from jsonb_array_elements(p_items) i
        join job_service.tasks t on t.id = (i ->> 'task_id')::bigint
        where t.job_id <> j.id)
    for key share;
    exit batch when not found;
    exit batch when not v_job_plain;
    if not v_leads then
      v_leads := not job_service.room_before(v_job_id, v_priority, v_created_at);
    end if;
    -- The report: complete_tasks' batch statement up to the end rows (the same items, held and
    -- done; pgTAP 14 checks that they are the same), the runs' shards and the usage they reported
    -- (the arrays in one order, the rows'; a plain job's runs hold no reservation)
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
    )
    select coalesce(array_agg(id), '{}'), array_agg(shard), array_agg(coalesce(usage_memory, 0)),
           array_agg(coalesce(usage_cpu, 0)),
           -- written out, as task_json does
           ('[' || string_agg('{"task_id": ' || id || ', "status": "succeeded"}', ', ' order by ord)
            || ']')::json
    into v_ended_ids, v_run_shards, v_run_usage_memory, v_run_usage_cpu, v_done
    from done;
    if cardinality(v_ended_ids) = 0 then
      -- nothing ended here: the answer says why, item by item, and the claim goes the general way
      v_done := job_service.report_outcomes(p_worker, p_items, v_ended_ids);
      exit batch;
    end if;
    -- The hand-over: the job's next due tasks, one for each reported run as far as the claim asks,
    -- each started in the shard of the run whose slot it takes (the n-th task in task order takes
    -- the n-th run's); each end row counts its runs' ends less its hand-overs' starts, in (job, shard)
    -- order, with what the runs held given back.
    with taken as (
      delete from job_service.task_ready
      where ctid = any (array(
          select ctid from job_service.task_ready
          where job_id = v_job_id and run_after <= now() and v_leads
          order by task_id limit least(p_limit, cardinality(v_ended_ids))
          for update skip locked
        ))
      returning task_id
    ), slots as (
      select n.task_id, v_run_shards[n.slot] as shard
      from (select task_id, row_number() over (order by task_id) as slot from taken) n
    ), runs as (
      update job_service.tasks t
      set status = 'running',
          worker_id = p_worker,
          lease_ms = p_lease_ms,
          lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
          shard = s.shard,
          attempt = case when t.repeat_attempt then t.attempt else t.attempt + 1 end,
          repeat_attempt = false,
          stop_requested = false,
          ended_by = null,
          ended_attempt = null,
          started_at = clock_timestamp()
      from slots s
      where t.id = s.task_id
      returning t.id, t.job_id, t.payload, t.attempt, t.lease_expires_at, t.memory, t.cpu, t.shard
    ), ends as (
      -- per shard: its runs that ended and what they held, and its hand-overs
      select x.shard, count(*) filter (where x.ended)::integer as n,
             count(*) filter (where not x.ended)::integer as handed,
             sum(x.usage_memory) as usage_memory, sum(x.usage_cpu) as usage_cpu
      from (
        select r.shard, true as ended, r.usage_memory, r.usage_cpu
        from unnest(v_run_shards, v_run_usage_memory, v_run_usage_cpu) as r (shard, usage_memory, usage_cpu)
        union all
        select h.shard, false, 0, 0 from runs h
      ) x
      group by x.shard
      order by x.shard
    ), released as (
      update job_service.job_shard_ends e
      set ended = e.ended + x.n - x.handed,
          succeeded = e.succeeded + x.n,
          requeued = e.requeued - x.handed,
          usage_memory = e.usage_memory - x.usage_memory,
          usage_cpu = e.usage_cpu - x.usage_cpu
      from ends x
      where e.job_id = v_job_id and e.shard = x.shard
      returning e.shard
    )
    -- (a statement starts all its tasks with one lease: formatted once, from the first row)
    select (select array_agg(job_service.task_json(c.id, c.job_id, c.payload, c.attempt,
                               (select job_service.iso(l.lease_expires_at) from runs l limit 1),
                               null, null, c.memory, c.cpu) order by c.id)
            from runs c),
           (select count(*) from released)
    into v_handed, v_counted;
    if v_handed is null then
      -- nothing handed over: the tail check, as complete_tasks makes it (a handed-over task runs
      -- when this transaction commits: its job is not at its tail, and its end will check)
      v_counted := job_service.after_tasks_ended(array[v_job_id], p_ctx);
    end if;
    if cardinality(v_ended_ids) < jsonb_array_length(p_items) then
      v_done := job_service.report_outcomes(p_worker, p_items, v_ended_ids);
    end if;
  end;
  <<batches>>
  begin
    exit batches when v_done is not null or p_job_id is not null or jsonb_array_length(p_items) < 2;
    -- A batch report of several jobs, or of one that is not plain (a budgeted one), that carries
    -- a claim: the same hand-over for every job of the batch that may take a task now and leads
    -- the walk. T2's shape: the jobs at their limits, each report giving back a few runs of each.
    v_ids := array(select distinct (i ->> 'task_id')::bigint from jsonb_array_elements(p_items) i);
    -- the batch's jobs, locked in id order before any task row (complete_tasks' statement)
    perform 1 from job_service.jobs
    where id in (select t.job_id from job_service.tasks t where t.id = any (v_ids))
    order by id
    for key share;
    -- The report: complete_tasks' batch statement up to the end rows (the same items, held and
    -- done; pgTAP 15 checks that they are the same); the runs in arrays by job and shard (a job's
    -- runs together), and by job what the hand-over needs: its runs (how many, where in the
    -- arrays, the budget they held) and the job as its lock above read it
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
    ), ordered as (
      select d.id, d.job_id, d.shard, coalesce(d.reserved_memory, 0) as reserved_memory,
             coalesce(d.reserved_cpu, 0) as reserved_cpu, coalesce(d.usage_memory, 0) as usage_memory,
             coalesce(d.usage_cpu, 0) as usage_cpu
      from done d
      order by d.job_id, d.shard
    )
    select coalesce(array_agg(o.id), '{}'), array_agg(o.job_id), array_agg(o.shard),
           array_agg(o.reserved_memory), array_agg(o.reserved_cpu), array_agg(o.usage_memory),
           array_agg(o.usage_cpu),
           (select array_agg(row(g.job_id, j.priority, j.created_at,
                                 j.status = 'running' and not j.rate_limited and not j.group_limited,
                                 j.max_memory / j.max_parallel_tasks, j.max_cpu / j.max_parallel_tasks,
                                 g.first, g.n, g.memory, g.cpu)::job_service.hand_over_job
                             order by g.job_id)
            from (select c.*, (sum(c.n) over (order by c.job_id) - c.n + 1)::integer as first
                  from (select job_id, count(*)::integer as n, sum(reserved_memory) as memory,
                               sum(reserved_cpu) as cpu
                        from ordered group by job_id) c) g
            join job_service.jobs j on j.id = g.job_id),
           -- written out, as task_json does
           (select ('[' || string_agg('{"task_id": ' || d.id || ', "status": "succeeded"}', ', '
                                      order by d.ord) || ']')::json
            from done d)
    into v_ended_ids, v_run_jobs, v_run_shards, v_run_reserved_memory, v_run_reserved_cpu,
         v_run_usage_memory, v_run_usage_cpu, v_by_job, v_done
    from ordered o;
    if cardinality(v_ended_ids) = 0 then
      -- nothing ended here: the answer says why, item by item, and the claim goes the general way
      v_done := job_service.report_outcomes(p_worker, p_items, v_ended_ids);
      exit batches;
    end if;
    -- The jobs that hand over: those of the batch that may take a task and lead the walk: no job
    -- before them in the walk's order, other than the batch's open jobs (the hand-over takes their
    -- room, in the walk's order), has a claim shard with room and a due task, read without locks
    -- as the walk judges room (room_before's test; ends as last committed). One read for all of
    -- them: the first other job that could take a task, up to the batch's last open job in the
    -- walk's order; the batch's open jobs before it lead. In T2's steady state, the jobs of the
    -- other call in flight at their limits and the jobs after them waiting, it finds none, and
    -- every open job of the batch leads.
    select x.priority, x.created_at, x.job_id,
           array(select o.job_id from unnest(v_by_job) o where o.open)
    into v_priority, v_created_at, v_job_id, v_open_jobs
    from unnest(v_by_job) x
    where x.open
    order by x.priority, x.created_at desc, x.job_id desc
    limit 1;
    if found then
      select j.priority, j.created_at, j.id into v_head_priority, v_head_created_at, v_head_id
      from job_service.jobs j
      where j.status in ('queued', 'running') and j.priority >= v_priority
        -- the batch's open jobs are not read: the hand-over below takes their room too
        and j.id <> all (v_open_jobs)
        and (j.priority > v_priority or (j.created_at, j.id) <= (v_created_at, v_job_id))
        and exists (
          select from job_service.job_shards s
          join job_service.job_shard_ends e on e.job_id = s.job_id and e.shard = s.shard
          where s.job_id = j.id and s.started - e.ended < s.capacity
            and s.unfit_at_ended is distinct from e.ended
            -- a budgeted job only when its next due task fits its budget room (one at its budget
            -- limit, as T2's are, could take nothing)
            and (j.max_memory is null or not e.over_limit and (
              select coalesce(t.memory, j.max_memory / j.max_parallel_tasks)
                       <= s.memory_capacity - (s.reserved_memory - e.released_memory)
                 and coalesce(t.cpu, j.max_cpu / j.max_parallel_tasks)
                       <= s.cpu_capacity - (s.reserved_cpu - e.released_cpu)
              from job_service.task_ready r
              join job_service.tasks t on t.id = r.task_id
              where r.job_id = j.id and r.run_after <= now()
              order by r.task_id limit 1)))
        and (select true from job_service.task_ready r
             where r.job_id = j.id and r.run_after <= now()
             order by r.task_id desc limit 1)
      order by j.priority desc, j.created_at, j.id
      limit 1;
    end if;
    -- The hand-over and the report's ends in one statement: each leading job's next due tasks, in
    -- task order, one for each of its reported runs, at most the claim's limit in the walk's
    -- order; each started in the shard of the run whose slot it takes (a job's n-th task takes its
    -- n-th run's); each end row counts its runs' ends less its hand-overs' starts, in (job, shard)
    -- order, and releases what the runs held. A job with slots free before the report (a plain
    -- job's first such shard) takes those too, with its claim row locked (SKIP LOCKED, as a claim
    -- locks it; a claim holding it fills them instead), counted there as a claim counts its starts:
    -- the walk's read above passes the batch's open jobs by, so the hand-over takes their room
    -- in the walk's order. A budgeted job hands over only with its claim row locked and while its
    -- usage is within its limits, and then takes its whole room as a claim would: its reported
    -- runs' slots and the slots free before the report, in task order while their reservations fit
    -- the budget room with what the runs held given back. The reservations and the starts beyond
    -- the reported runs' slots are counted on the claim row, with the ends and releases it saw; a
    -- budgeted job's task that does not fit while runs of the job are running passes the job by
    -- until one ends (unfit_at_ended, as claims set it), so that it leads no walk to a job whose
    -- next task cannot start.
    with lead as (
      select row_number() over (order by l.priority desc, l.created_at, l.job_id) as k, l.job_id,
             l.fair_memory, l.fair_cpu, l.first, l.n,
             l.n + coalesce(c.free, 0) as want,
             c.shard as claim_shard, c.running as running_before, c.ended as ended_seen,
             c.room_memory + l.memory as room_memory, c.room_cpu + l.cpu as room_cpu,
             c.released_memory + l.memory as released_memory_seen,
             c.released_cpu + l.cpu as released_cpu_seen
      from unnest(v_by_job) l
      left join lateral (
        select s.shard, s.started - e.ended as running,
               greatest(0, s.capacity - (s.started - e.ended)) as free, e.ended,
               s.memory_capacity - (s.reserved_memory - e.released_memory) as room_memory,
               s.cpu_capacity - (s.reserved_cpu - e.released_cpu) as room_cpu,
               e.released_memory, e.released_cpu
        from job_service.job_shards s
        join job_service.job_shard_ends e on e.job_id = s.job_id and e.shard = s.shard
        where s.job_id = l.job_id
          and (l.fair_memory is not null and not e.over_limit
               or l.fair_memory is null and s.started - e.ended < s.capacity)
        order by s.shard
        limit 1
        for update of s skip locked
      ) c on true
      where l.open
        and (v_head_id is null or l.priority > v_head_priority
             or (l.priority = v_head_priority and (l.created_at, l.job_id) <= (v_head_created_at, v_head_id)))
        and (l.fair_memory is null or c.shard is not null)
    ), due as (
      select l.k, l.first, l.n, l.claim_shard, l.fair_memory, l.fair_cpu, r.task_id, r.row_address,
             row_number() over w as place,
             l.fair_memory is null
               or (sum(coalesce(t.memory, l.fair_memory)) over w <= l.room_memory
                   and sum(coalesce(t.cpu, l.fair_cpu)) over w <= l.room_cpu) as fits
      from lead l
      cross join lateral (
        select q.task_id, q.ctid as row_address from job_service.task_ready q
        where q.job_id = l.job_id and q.run_after <= now()
        order by q.task_id limit l.want
        for update skip locked
      ) r
      -- a task's own resources only matter for a budgeted job, and are read for no other
      left join job_service.tasks t
        on t.id = case when l.fair_memory is not null then r.task_id end
      window w as (partition by l.k order by r.task_id)
    ), fitting as (
      -- a reported run's slot (its place in the arrays), or a slot free before the report
      select k, case when place <= n then first + place::integer - 1 end as slot, claim_shard,
             fair_memory, fair_cpu, task_id, row_address
      from due
      where fits
      order by k, task_id
      limit p_limit
    ), taken as (
      delete from job_service.task_ready q
      using fitting f
      where q.ctid = f.row_address
      returning f.k, f.slot, f.claim_shard, f.fair_memory, f.fair_cpu, q.task_id
    ), runs as (
      update job_service.tasks t
      set status = 'running',
          worker_id = p_worker,
          lease_ms = p_lease_ms,
          lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
          shard = coalesce(v_run_shards[n.slot], n.claim_shard),
          attempt = case when t.repeat_attempt then t.attempt else t.attempt + 1 end,
          repeat_attempt = false,
          stop_requested = false,
          reserved_memory = case when n.fair_memory is not null then coalesce(t.memory, n.fair_memory) end,
          reserved_cpu = case when n.fair_memory is not null then coalesce(t.cpu, n.fair_cpu) end,
          usage_memory = null,
          usage_cpu = null,
          ended_by = null,
          ended_attempt = null,
          started_at = clock_timestamp()
      from taken n
      where t.id = n.task_id
      returning n.k, n.slot is not null as handed, t.id, t.job_id, t.payload, t.attempt,
                t.lease_expires_at, t.shard, t.reserved_memory, t.reserved_cpu, t.memory, t.cpu
    ), budgets as (
      -- a claim row locked above: the starts beyond the job's reported runs' slots, the
      -- reservations, the ends and releases seen, and whether a task that did not fit passes a
      -- budgeted job by (due and runs summed by job once: a scan of them per job would read them
      -- all for each)
      select l.claim_shard, l.job_id, l.ended_seen, l.released_memory_seen, l.released_cpu_seen,
             coalesce(x.started, 0) as started, coalesce(x.memory, 0) as memory,
             coalesce(x.cpu, 0) as cpu,
             case when coalesce(d.unfit, false) and l.running_before - l.n + coalesce(x.started, 0) + coalesce(x.handed, 0) > 0
               then l.ended_seen + l.n - coalesce(x.handed, 0) end as unfit_at_ended
      from lead l
      left join (select k, bool_or(not fits) as unfit from due where fair_memory is not null group by k) d
        on d.k = l.k
      left join (
        select k, count(*) filter (where not handed)::integer as started,
               count(*) filter (where handed)::integer as handed,
               sum(reserved_memory) as memory, sum(reserved_cpu) as cpu
        from runs group by k
      ) x on x.k = l.k
      where l.claim_shard is not null
    ), claimed as (
      update job_service.job_shards s
      set started = s.started + b.started,
          ended_seen = b.ended_seen,
          pending = s.pending - b.started,
          reserved_memory = s.reserved_memory + b.memory,
          released_memory_seen = b.released_memory_seen,
          reserved_cpu = s.reserved_cpu + b.cpu,
          released_cpu_seen = b.released_cpu_seen,
          unfit_at_ended = coalesce(b.unfit_at_ended, s.unfit_at_ended)
      from budgets b
      where s.job_id = b.job_id and s.shard = b.claim_shard
    ), ends as (
      -- per end row: its runs that ended and what they held and used, and its hand-overs
      select x.job_id, x.shard, count(*) filter (where x.ended)::integer as n,
             count(*) filter (where not x.ended)::integer as handed,
             sum(x.memory) as memory, sum(x.cpu) as cpu,
             sum(x.usage_memory) as usage_memory, sum(x.usage_cpu) as usage_cpu
      from (
        select r.job_id, r.shard, true as ended, r.memory, r.cpu, r.usage_memory, r.usage_cpu
        from unnest(v_run_jobs, v_run_shards, v_run_reserved_memory, v_run_reserved_cpu,
                    v_run_usage_memory, v_run_usage_cpu)
          as r (job_id, shard, memory, cpu, usage_memory, usage_cpu)
        union all
        select h.job_id, h.shard, false, 0, 0, 0, 0
        from runs h
        where h.handed
      ) x
      group by x.job_id, x.shard
      order by x.job_id, x.shard
    ), released as (
      update job_service.job_shard_ends e
      set ended = e.ended + x.n - x.handed,
          succeeded = e.succeeded + x.n,
          requeued = e.requeued - x.handed,
          released_memory = e.released_memory + x.memory,
          released_cpu = e.released_cpu + x.cpu,
          usage_memory = e.usage_memory - x.usage_memory,
          usage_cpu = e.usage_cpu - x.usage_cpu
      from ends x
      where e.job_id = x.job_id and e.shard = x.shard
      returning e.job_id, e.over_limit, x.handed
    )
    -- (a statement starts all its tasks with one lease: formatted once, from the first row)
    select (select array_agg(job_service.task_json(c.id, c.job_id, c.payload, c.attempt,
                               (select job_service.iso(l.lease_expires_at) from runs l limit 1),
                               c.reserved_memory, c.reserved_cpu, c.memory, c.cpu)
                             order by c.k, c.id)
            from runs c),
           (select array_agg(distinct r.job_id) from released r where r.over_limit),
           -- (a job starts a task beyond its reported runs' slots only after a hand-over to each)
           (select array_agg(q.job_id)
            from (select r.job_id from released r group by r.job_id having sum(r.handed) = 0) q)
    into v_handed, v_over_jobs, v_quiet_jobs;
    -- an ended run takes its usage with it: a job held back by its usage may run again
    for i in 1 .. coalesce(cardinality(v_over_jobs), 0) loop
      perform job_service.apply_back_pressure(v_over_jobs[i]);
    end loop;
    if v_quiet_jobs is not null then
      -- the tail check, as complete_tasks makes it, for the jobs that handed nothing over (a
      -- handed-over task runs when this transaction commits: its job is not at its tail, and its
      -- end will check)
      v_counted := job_service.after_tasks_ended(v_quiet_jobs, p_ctx);
    end if;
    if cardinality(v_ended_ids) < jsonb_array_length(p_items) then
      v_done := job_service.report_outcomes(p_worker, p_items, v_ended_ids);
    end if;
  end;
  if v_done is null then
    v_done := job_service_api.complete_tasks(p_ctx, p_worker, p_items);
  end if;
  if cardinality(v_handed) = p_limit then
    -- a batch's hand-over gave all the claim asks for
    return json_build_object('tasks', v_done, 'claimed', array_to_json(v_handed));
  end if;
  -- the claim, or what a batch's hand-over left of it, the general way (it walks from the first
  -- job); a claim from a job that is gone (deleted meanwhile) gets nothing: the report stands
  return json_build_object('tasks', v_done, 'claimed', coalesce(array_to_json(
    coalesce(v_handed, '{}') || job_service.claim(p_ctx, p_worker, p_limit - coalesce(cardinality(v_handed), 0),
                                                  p_job_id, p_lease_ms)), '[]'::json));
end
$$;
comment on function job_service_api.complete_and_claim(jsonb, text, jsonb, integer, uuid, integer) is
  'completeTask(s) with claim: the report as complete_tasks makes it, then a claim as claim_tasks '
  'makes it (nothing from a job that is gone), in one transaction; answers {tasks, claimed}.';

revoke execute on function job_service_api.complete_and_claim(jsonb, text, jsonb, integer, uuid, integer)
  from public;
alter function job_service_api.complete_and_claim(jsonb, text, jsonb, integer, uuid, integer)
  security definer set search_path = '';
grant execute on function job_service_api.complete_and_claim(jsonb, text, jsonb, integer, uuid, integer)
  to job_service_runtime;
