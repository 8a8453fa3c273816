-- getStats: the figures an operator watches, in one call that is cheap enough to poll every minute.
-- Each figure reads what is small or indexed: job rows (one pass), the counter shards of unfinished
-- jobs, the claim queue (exactly the pending tasks), the tasks of jobs that are active or ended
-- within the last 15 minutes, recent error rows through a BRIN index, the outbox through its
-- indexes. Nothing here takes a lock.

-- job_errors is append-only and its rows arrive in time order: a BRIN index on created_at costs
-- next to nothing on insert (unlike a b-tree, and unlike any index on tasks, which would stop the
-- engine's updates from being heap-only) and lets getStats read only the recent rows.
create index job_errors_created_brin on job_service.job_errors using brin (created_at);

-- Not a hot path, and the best plans depend on the values (how far back the window reaches, how
-- many jobs are active): custom plans, unlike the engine's entry points.
create function job_service_api.get_stats(p_window_minutes integer) returns jsonb
language plpgsql stable
set plan_cache_mode = force_custom_plan
as $$
declare
  v_now constant timestamptz := now();
  v_jobs jsonb;
  v_queue jsonb;
  v_parallel jsonb;
  v_throughput jsonb;
  v_errors jsonb;
  v_resources jsonb;
  v_notifications jsonb;
  v_maintenance jsonb;
  v_active integer;
  v_overdue_retries integer;
begin
  -- Jobs by status (every status, zero included).
  select jsonb_object_agg(s.status, coalesce(c.n, 0) order by s.ord),
         coalesce(sum(c.n) filter (where s.status not in ('completed', 'failed', 'cancelled')), 0)
  into v_jobs, v_active
  from unnest(enum_range(null::job_service.job_status)) with ordinality as s (status, ord)
  left join (select status, count(*)::integer as n from job_service.jobs group by status) c
    on c.status = s.status;
  v_jobs := jsonb_build_object('by_status', v_jobs, 'active', v_active);

  select count(*)::integer into v_overdue_retries
  from job_service.jobs where status = 'retrying' and next_attempt_at < v_now - interval '2 minutes';

  -- Queue depth: pending tasks (due now or waiting for their retry time) and running tasks, with
  -- the parallelism the jobs that may run offer.
  select jsonb_build_object(
    'pending', count(*)::integer,
    'due', count(*) filter (where run_after <= v_now)::integer,
    'delayed', count(*) filter (where run_after > v_now)::integer)
  into v_queue
  from job_service.task_ready;

  select jsonb_build_object(
    'running', coalesce(sum(s.started - e.ended), 0)::integer,
    'capacity', coalesce(sum(s.capacity) filter (where j.status in ('queued', 'running')), 0)::integer,
    'usage', jsonb_build_object('memory', coalesce(sum(e.usage_memory), 0),
                                'cpu', coalesce(sum(e.usage_cpu), 0)))
  into v_parallel
  from job_service.jobs j
  join job_service.job_shards s on s.job_id = j.id and s.shard >= 1
  join job_service.job_shard_ends e on e.job_id = s.job_id and e.shard = s.shard
  -- a failed job can still have runs that were told to stop; completed and cancelled ones cannot
  where j.status not in ('pending', 'completed', 'cancelled');
  v_queue := v_queue || v_parallel;

  -- Throughput: runs that ended for good (succeeded, failed, cancelled) per window, in one pass. A
  -- task ends only while its job is active, or at the end that finishes the job.
  select jsonb_build_object(
    'last_1m', jsonb_build_object('succeeded', s1, 'failed', f1, 'cancelled', c1,
                                  'per_minute', round((s1 + f1)::numeric / 1, 2)),
    'last_5m', jsonb_build_object('succeeded', s5, 'failed', f5, 'cancelled', c5,
                                  'per_minute', round((s5 + f5)::numeric / 5, 2)),
    'last_15m', jsonb_build_object('succeeded', s15, 'failed', f15, 'cancelled', c15,
                                   'per_minute', round((s15 + f15)::numeric / 15, 2)))
  into v_throughput
  from (
    select count(*) filter (where t.status = 'succeeded' and t.finished_at >= v_now - interval '1 minute')::integer as s1,
           count(*) filter (where t.status = 'failed' and t.finished_at >= v_now - interval '1 minute')::integer as f1,
           count(*) filter (where t.status = 'cancelled' and t.finished_at >= v_now - interval '1 minute')::integer as c1,
           count(*) filter (where t.status = 'succeeded' and t.finished_at >= v_now - interval '5 minutes')::integer as s5,
           count(*) filter (where t.status = 'failed' and t.finished_at >= v_now - interval '5 minutes')::integer as f5,
           count(*) filter (where t.status = 'cancelled' and t.finished_at >= v_now - interval '5 minutes')::integer as c5,
           count(*) filter (where t.status = 'succeeded')::integer as s15,
           count(*) filter (where t.status = 'failed')::integer as f15,
           count(*) filter (where t.status = 'cancelled')::integer as c15
    from job_service.jobs j
    join job_service.tasks t on t.job_id = j.id
    where (j.status not in ('pending', 'completed', 'failed', 'cancelled')
           or j.finished_at >= v_now - interval '15 minutes')
      and t.finished_at >= v_now - interval '15 minutes'
  ) w;

  -- Errors by class over the window: every category, and the most frequent codes.
  with recent as (
    select code, category from job_service.job_errors
    where created_at >= v_now - p_window_minutes * interval '1 minute'
  )
  select jsonb_build_object(
    'window_minutes', p_window_minutes,
    'total', (select count(*)::integer from recent),
    'by_category', (
      select jsonb_object_agg(c.category, coalesce(n.n, 0) order by c.ord)
      from unnest(enum_range(null::job_service.error_category)) with ordinality as c (category, ord)
      left join (select category, count(*)::integer as n from recent group by category) n
        on n.category = c.category),
    'top_codes', coalesce((
      select jsonb_agg(jsonb_build_object('code', code, 'category', category, 'count', n)
                       order by n desc, code)
      from (select code, category, count(*)::integer as n from recent
            group by code, category order by n desc, code limit 10) top), '[]'::jsonb))
  into v_errors;

  -- Resources of the unfinished jobs that have limits: reservations and reported usage against
  -- the limits, and the jobs closest to (or over) them.
  with limited as (
    select j.id, j.status, j.max_memory, j.max_cpu,
           sum(s.reserved_memory - e.released_memory) as reserved_memory,
           sum(s.reserved_cpu - e.released_cpu) as reserved_cpu,
           sum(e.usage_memory) as usage_memory, sum(e.usage_cpu) as usage_cpu,
           bool_or(e.over_limit) as over_limit
    from job_service.jobs j
    join job_service.job_shards s on s.job_id = j.id and s.shard >= 1
    join job_service.job_shard_ends e on e.job_id = s.job_id and e.shard = s.shard
    where j.max_memory is not null and j.status not in ('pending', 'completed', 'cancelled')
    group by j.id
  )
  select jsonb_build_object(
    'jobs_with_limits', count(*)::integer,
    'jobs_over_limit', count(*) filter (where over_limit)::integer,
    'totals', jsonb_build_object(
      'max_memory', coalesce(sum(max_memory), 0), 'max_cpu', coalesce(sum(max_cpu), 0),
      'reserved_memory', coalesce(sum(reserved_memory), 0), 'reserved_cpu', coalesce(sum(reserved_cpu), 0),
      'usage_memory', coalesce(sum(usage_memory), 0), 'usage_cpu', coalesce(sum(usage_cpu), 0)),
    'top_jobs', coalesce((
      select jsonb_agg(jsonb_build_object(
               'job_id', l.id, 'status', l.status, 'max_memory', l.max_memory, 'max_cpu', l.max_cpu,
               'reserved_memory', l.reserved_memory, 'reserved_cpu', l.reserved_cpu,
               'usage_memory', l.usage_memory, 'usage_cpu', l.usage_cpu,
               'usage_ratio', round(greatest(l.usage_memory / l.max_memory, l.usage_cpu / l.max_cpu), 4),
               'over_limit', l.over_limit)
             order by greatest(l.usage_memory / l.max_memory, l.usage_cpu / l.max_cpu,
                               l.reserved_memory / l.max_memory, l.reserved_cpu / l.max_cpu) desc, l.id)
      from (select * from limited
            order by greatest(usage_memory / max_memory, usage_cpu / max_cpu,
                              reserved_memory / max_memory, reserved_cpu / max_cpu) desc, id
            limit 10) l), '[]'::jsonb))
  into v_resources
  from limited;

  -- The outbox: what waits, what was given up, how late the oldest is.
  select jsonb_build_object(
    'pending', count(*)::integer,
    'retrying', count(*) filter (where attempts > 0)::integer,
    'oldest_pending_at', job_service.iso(min(created_at)),
    'overdue', count(*) filter (where next_attempt_at < v_now - interval '2 minutes')::integer)
  into v_notifications
  from job_service.notifications where status = 'pending';
  v_notifications := v_notifications || jsonb_build_object(
    'failed', (select count(*)::integer from job_service.notifications where status = 'failed'),
    'delivered_in_window', (select count(*)::integer from job_service.notifications
                            where status = 'delivered'
                              and delivered_at >= v_now - p_window_minutes * interval '1 minute'));

  -- Maintenance: a run at work now, when one last finished, whether the schedule exists, and
  -- whether it is late (no run finished in the last 2 minutes; the schedule runs every minute);
  -- when the claims last ran the overdue timers in its place.
  select jsonb_build_object(
    'running', l.holder is not null and l.expires_at > v_now,
    'lease_expires_at', case when l.holder is not null and l.expires_at > v_now then job_service.iso(l.expires_at) end,
    'overdue_retries', v_overdue_retries,
    'last_run_at', job_service.iso(l.last_run_at),
    'scheduled', job_service.maintenance_scheduled(),
    'overdue', not (l.holder is not null and l.expires_at > v_now)
               and (l.last_run_at is null or l.last_run_at < v_now - interval '2 minutes'),
    'due_timers_last_run_at', (select job_service.iso(d.last_run_at) from job_service.due_timers d
                               where d.last_run_at > '-infinity'))
  into v_maintenance
  from job_service.maintenance_lease l;

  return jsonb_build_object(
    'generated_at', job_service.iso(v_now),
    'jobs', v_jobs,
    'tasks', v_queue,
    'throughput', v_throughput,
    'errors', v_errors,
    'resources', v_resources,
    'notifications', v_notifications,
    'maintenance', v_maintenance);
end
$$;
comment on function job_service_api.get_stats(integer) is
  'getStats: jobs by status; queue depth (pending due/delayed, running, parallel capacity, reported '
  'usage); tasks ended per minute over the last 1, 5 and 15 minutes; errors by category and top codes '
  'over the last p_window_minutes; reservations and usage against resource limits; the notification '
  'outbox; maintenance: running, last run, scheduled, overdue, and the claims'' overdue timers. '
  'Read-only, no locks, bounded reads.';
