-- The engine's invariants as a query: what the tests, the stress test and the benchmark check after
-- a run, and what an operator can run at any time. An empty result means every invariant holds.

create function job_service_api.invariant_violations(p_job_ids uuid[] default null)
returns table (job_id uuid, invariant text, detail text)
language sql stable
as $$
  with jobs as (
    select j.* from job_service.jobs j where p_job_ids is null or j.id = any (p_job_ids)
  ), rows_by_status as (
    select t.job_id,
           count(*) filter (where t.status = 'pending')::integer as pending,
           count(*) filter (where t.status = 'running')::integer as running,
           count(*) filter (where t.status = 'succeeded')::integer as succeeded,
           count(*) filter (where t.status = 'failed')::integer as failed,
           count(*) filter (where t.status = 'cancelled')::integer as cancelled
    from job_service.tasks t join jobs j on j.id = t.job_id
    group by t.job_id
  ), counts as (
    select j.id, c.*, coalesce(r.pending, 0) as r_pending, coalesce(r.running, 0) as r_running,
           coalesce(r.succeeded, 0) as r_succeeded, coalesce(r.failed, 0) as r_failed,
           coalesce(r.cancelled, 0) as r_cancelled,
           (select count(*)::integer from job_service.job_errors e where e.job_id = j.id) as r_errors
    from jobs j
    cross join lateral job_service.job_counts(j.id) c
    left join rows_by_status r on r.job_id = j.id
  )
  -- counters equal the rows
  select id, 'counters equal task rows',
         format('counters %s/%s/%s/%s/%s, rows %s/%s/%s/%s/%s (pending/running/succeeded/failed/cancelled)',
                pending, running, succeeded, failed, cancelled,
                r_pending, r_running, r_succeeded, r_failed, r_cancelled)
  from counts
  where (pending, running, succeeded, failed, cancelled)
        is distinct from (r_pending, r_running, r_succeeded, r_failed, r_cancelled)
  union all
  select id, 'error_count equals error rows', format('counter %s, rows %s', errors, r_errors)
  from counts where errors <> r_errors
  -- each shard's running count and reservations are those of the tasks claimed through it
  union all
  select s.job_id, 'shard counts its running tasks',
         format('shard %s: running %s, rows %s; reserved %s/%s, rows %s/%s', s.shard, s.started - e.ended,
                coalesce(t.n, 0), s.reserved_memory - e.released_memory, s.reserved_cpu - e.released_cpu,
                coalesce(t.memory, 0), coalesce(t.cpu, 0))
  from job_service.job_shards s
  join job_service.job_shard_ends e on e.job_id = s.job_id and e.shard = s.shard
  join jobs j on j.id = s.job_id
  left join (
    select job_id, shard, count(*)::integer as n, coalesce(sum(reserved_memory), 0) as memory,
           coalesce(sum(reserved_cpu), 0) as cpu
    from job_service.tasks where status = 'running' group by job_id, shard
  ) t on t.job_id = s.job_id and t.shard = s.shard
  where s.shard >= 1
    and (s.started - e.ended, s.reserved_memory - e.released_memory, s.reserved_cpu - e.released_cpu)
        is distinct from (coalesce(t.n, 0), coalesce(t.memory, 0), coalesce(t.cpu, 0))
  -- parallelism and budgets (also constraints: a violation here means a shard lost its capacity)
  union all
  select c.id, 'running within max_parallel_tasks', format('%s running, max %s', c.r_running, j.max_parallel_tasks)
  from counts c join jobs j on j.id = c.id
  where c.r_running > j.max_parallel_tasks
  union all
  select s.job_id, 'shard capacities add up to max_parallel_tasks',
         format('capacities %s, max %s', sum(s.capacity), min(j.max_parallel_tasks))
  from job_service.job_shards s join jobs j on j.id = s.job_id
  group by s.job_id having sum(s.capacity) <> min(j.max_parallel_tasks)
  -- the claim queue holds exactly the pending tasks
  union all
  select t.job_id, 'pending tasks are on the claim queue', format('task %s', t.id)
  from job_service.tasks t join jobs j on j.id = t.job_id
  where t.status = 'pending'
    and not exists (select 1 from job_service.task_ready r where r.job_id = t.job_id and r.task_id = t.id)
  union all
  select r.job_id, 'the claim queue holds only pending tasks', format('task %s', r.task_id)
  from job_service.task_ready r join jobs j on j.id = r.job_id
  where not exists (select 1 from job_service.tasks t where t.id = r.task_id and t.status = 'pending')
  -- statuses agree with the tasks
  union all
  select c.id, 'no running task in a finished job', format('%s is %s with %s running', c.id, j.status, c.r_running)
  from counts c join jobs j on j.id = c.id
  where j.status in ('completed', 'cancelled', 'pending') and c.r_running > 0
  union all
  select c.id, 'a completed job has only succeeded tasks', format('%s failed, %s pending', c.r_failed, c.r_pending)
  from counts c join jobs j on j.id = c.id
  where j.status = 'completed' and (c.r_failed > 0 or c.r_pending > 0)
  union all
  select c.id, 'no queued or running job with all its tasks ended',
         format('%s with %s tasks, none open', j.status, c.total)
  from counts c join jobs j on j.id = c.id
  where j.status in ('queued', 'running') and c.total > 0 and c.r_pending = 0 and c.r_running = 0
  union all
  select c.id, 'a cancelling job has a running task', format('%s running', c.r_running)
  from counts c join jobs j on j.id = c.id
  where j.status = 'cancelling' and c.r_running = 0
  union all
  select c.id, 'a cancelled job has no pending task', format('%s pending', c.r_pending)
  from counts c join jobs j on j.id = c.id
  where j.status in ('cancelled', 'cancelling') and c.r_pending > 0
$$;
comment on function job_service_api.invariant_violations(uuid[]) is
  'Checks the engine invariants (counters, shards, parallelism, claim queue, statuses vs tasks) for '
  'the given jobs or all jobs; no rows means they all hold. Meant for a quiescent moment: in-flight '
  'work is judged at its last committed state.';
