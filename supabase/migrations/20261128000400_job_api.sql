-- Entry points of job-operations: createJob, getJob, listJobs. Each is one call, one transaction.
-- The Edge Function has already validated the input with zod; these functions own everything that
-- needs the database to be right: ownership, idempotency, all-or-nothing writes.
--
-- Entry points run with plan_cache_mode = force_generic_plan: each of their statements has one
-- right plan (by primary key or an index prefix), and re-planning it on every call, which the
-- default mode tends to do with parameters, costs more than the statement.
--
-- Errors the API reports are raised with SQLSTATE 'JS' || <HTTP status>, the message being the
-- API error code and the detail (optional) a JSON object of details; the function maps them as is.

-- stable (to_char is), so that it is inlined into the queries that use it
create function job_service.iso(ts timestamptz) returns text
language sql stable parallel safe
as $$ select to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;
comment on function job_service.iso(timestamptz) is
  'Formats a time as the API does everywhere: ISO 8601 in UTC with milliseconds, whatever the session time zone.';

create function job_service.job_counts(p_job_id uuid) returns job_service.task_counts
language plpgsql stable parallel safe
-- a job's few shard rows are always found through the primary key, whatever statistics say about
-- job_id (a scan of every job's shards would make each read slower as jobs accumulate)
set enable_seqscan = off
set jit = off
as $$
declare
  v job_service.task_counts;
  s record;
  e record;
begin
  select coalesce(sum(pending), 0)::integer as pending, coalesce(sum(started), 0)::integer as started,
         coalesce(sum(failed), 0)::integer as failed, coalesce(sum(cancelled), 0)::integer as cancelled,
         coalesce(sum(errors), 0)::integer as errors
  into s
  from job_service.job_shards where job_id = p_job_id;
  select coalesce(sum(ended), 0)::integer as ended, coalesce(sum(succeeded), 0)::integer as succeeded,
         coalesce(sum(failed), 0)::integer as failed, coalesce(sum(cancelled), 0)::integer as cancelled,
         coalesce(sum(requeued), 0)::integer as requeued, coalesce(sum(errors), 0)::integer as errors
  into e
  from job_service.job_shard_ends where job_id = p_job_id;
  v.pending := s.pending + e.requeued;
  v.running := s.started - e.ended;
  v.succeeded := e.succeeded;
  v.failed := s.failed + e.failed;
  v.cancelled := s.cancelled + e.cancelled;
  v.errors := s.errors + e.errors;
  v.total := v.pending + v.running + v.succeeded + v.failed + v.cancelled;
  return v;
end
$$;
comment on function job_service.job_counts(uuid) is
  'A job''s task counters: sums over its claim shards and their end rows, equal to its task and '
  'error rows in every snapshot.';

create function job_service.job_json(j job_service.jobs) returns jsonb
language plpgsql stable parallel safe
as $$
begin
  return (select jsonb_build_object(
    'id', j.id,
    'status', j.status,
    'product_id', j.product_id,
    'sending_group_id', j.sending_group_id,
    'user_id', j.user_id,
    'priority', j.priority,
    'max_parallel_tasks', j.max_parallel_tasks,
    'retry_config', jsonb_build_object(
      'max_attempts', j.max_attempts,
      'retry_interval', j.retry_interval_ms,
      'retry_on_errors', to_jsonb(j.retry_on_errors),
      'backoff', j.retry_backoff,
      'max_retry_interval', j.max_retry_interval_ms
    ),
    'resource_limits', case when j.max_memory is not null then
      jsonb_build_object('max_memory', j.max_memory, 'max_cpu', j.max_cpu) end,
    'detailed_status', jsonb_build_object(
      'current_phase', j.current_phase,
      'progress_percentage', case when c.total > 0
        then round(100.0 * (c.succeeded + c.failed + c.cancelled) / c.total, 2)
        else j.progress_percentage end,
      'active_tasks', c.running,
      'error_count', c.errors
    ),
    'tasks', jsonb_build_object(
      'total', c.total,
      'pending', c.pending,
      'running', c.running,
      'succeeded', c.succeeded,
      'failed', c.failed,
      'cancelled', c.cancelled
    ),
    'attempt', j.attempt,
    'next_attempt_at', job_service.iso(j.next_attempt_at),
    'last_error', (
      select jsonb_build_object('code', e.code, 'category', e.category, 'message', e.message,
                                'at', job_service.iso(e.created_at))
      from job_service.job_errors e where e.job_id = j.id order by e.id desc limit 1
    ),
    'rate_limit', (
      select job_service.rate_limit_json(r.max_per_second, r.burst, r.tokens, r.refilled_at)
      from job_service.job_rate_limits r where r.job_id = j.id
    ),
    'sending_group_rate_limit', (
      select job_service.rate_limit_json(g.max_per_second, g.burst, g.tokens, g.refilled_at)
      from job_service.sending_group_limits g where g.sending_group_id = j.sending_group_id
    ),
    'metadata', j.metadata,
    'created_at', job_service.iso(j.created_at),
    'updated_at', job_service.iso(j.updated_at),
    'started_at', job_service.iso(j.started_at),
    'finished_at', job_service.iso(j.finished_at)
  )
  from job_service.job_counts(j.id) c);
end
$$;
comment on function job_service.job_json(job_service.jobs) is
  'The one place the API''s BatchJob shape is built from a job row, so every action returns the same '
  'shape; counters come from the shards, last_error from the latest error row.';

create function job_service.create_job_shards(p_job job_service.jobs, p_pending integer) returns void
language sql
as $$
  insert into job_service.job_shards (job_id, shard, capacity, pending)
  values (p_job.id, 0, 0, p_pending);
  -- max_parallel_tasks split as evenly as possible over shards 1..shard_count
  insert into job_service.job_shards (job_id, shard, capacity, memory_capacity, cpu_capacity)
  select p_job.id, s,
         p_job.max_parallel_tasks / p_job.shard_count
           + case when s <= p_job.max_parallel_tasks % p_job.shard_count then 1 else 0 end,
         p_job.max_memory, p_job.max_cpu
  from generate_series(1, p_job.shard_count) as s;
  insert into job_service.job_shard_ends (job_id, shard)
  select p_job.id, s from generate_series(1, p_job.shard_count) as s;
$$;
comment on function job_service.create_job_shards(job_service.jobs, integer) is
  'Gives a new job its counter shards: shard 0 with the initial pending count, and claim shards '
  'whose capacities add up to exactly max_parallel_tasks (and carry the resource budget when one is '
  'set), each with its end row.';

create function job_service.raise_not_found(p_job_id uuid) returns void
language plpgsql
as $$
begin
  raise exception using errcode = 'JS404', message = 'JOB_NOT_FOUND',
    detail = jsonb_build_object('job_id', p_job_id)::text;
end
$$;
comment on function job_service.raise_not_found(uuid) is
  'Reports an absent job and a job owned by someone else identically, so no caller learns another user''s ids.';

create function job_service.visible_job_owner(p_ctx jsonb) returns uuid
language sql immutable
as $$ select case when p_ctx ->> 'role' = 'service_role' then null else (p_ctx ->> 'user_id')::uuid end $$;
comment on function job_service.visible_job_owner(jsonb) is
  'The owner a caller is restricted to: its own id for users, null (all jobs) for the service.';

-- ---------------------------------------------------------------------------------------------
-- createJob
-- ---------------------------------------------------------------------------------------------
create function job_service.insert_tasks(p_job_id uuid, p_tasks jsonb) returns integer
language plpgsql
as $$
declare
  v_added integer;
begin
  -- One statement for all tasks and their queue entries; ORDER BY keeps ids in the order the
  -- caller listed the tasks.
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
  return v_added;
end
$$;
comment on function job_service.insert_tasks(uuid, jsonb) is
  'The tasks of createJob and addTasks (already validated) and their ready-queue entries, in the '
  'order given; returns how many. The caller keeps the job''s counters.';

create function job_service_api.create_job(
  p_ctx jsonb,
  p_job jsonb,
  p_tasks jsonb,
  p_idempotency_key text,
  p_request_hash text
) returns jsonb
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_owner constant uuid := (p_job ->> 'user_id')::uuid;
  v_job_id uuid := job_service.uuid_v7();
  v_task_count constant integer := coalesce(jsonb_array_length(p_tasks), 0);
  v_retry constant jsonb := p_job -> 'retry_config';
  v_limits constant jsonb := nullif(p_job -> 'resource_limits', 'null'::jsonb);
  v_rate constant jsonb := nullif(p_job -> 'rate_limit', 'null'::jsonb);
  v_claimed_key boolean;
  v_key record;
  v_job job_service.jobs;
begin
  perform job_service.set_request_context(p_ctx);
  -- setGroupRateLimit marks the group's jobs; it cannot miss one created meanwhile
  perform pg_advisory_xact_lock_shared(hashtextextended('sending_group:' || (p_job ->> 'sending_group_id'), 0));

  if p_idempotency_key is not null then
    -- Claim the key; a concurrent request with the same key waits here for the first to finish.
    -- A key older than 24 h is taken over by this request.
    insert into job_service.idempotency_keys as k (user_id, key, request_hash, job_id)
    values (v_owner, p_idempotency_key, p_request_hash, v_job_id)
    on conflict (user_id, key) do update
      set request_hash = excluded.request_hash, job_id = excluded.job_id, created_at = now()
      where k.created_at < now() - interval '24 hours'
    returning true into v_claimed_key;

    if v_claimed_key is null then
      select k.request_hash, k.job_id into v_key
      from job_service.idempotency_keys k
      where k.user_id = v_owner and k.key = p_idempotency_key;

      if v_key.request_hash <> p_request_hash then
        raise exception using errcode = 'JS409', message = 'IDEMPOTENCY_CONFLICT',
          detail = jsonb_build_object('idempotency_key', p_idempotency_key, 'job_id', v_key.job_id)::text;
      end if;
      select * into v_job from job_service.jobs where id = v_key.job_id;
      return jsonb_build_object('created', false, 'job', job_service.job_json(v_job));
    end if;
  end if;

  -- quotas (api.md; user_quotas migration): after the idempotency key, so that a replay of a
  -- created job is never refused
  perform job_service.check_user_quota(v_owner, (p_job ->> 'priority')::integer, 1, v_task_count);

  insert into job_service.jobs (
    id, user_id, product_id, sending_group_id, status, priority, max_parallel_tasks,
    max_attempts, retry_interval_ms, retry_on_errors, retry_backoff, max_retry_interval_ms,
    max_memory, max_cpu, metadata, shard_count, rate_limited, group_limited
  ) values (
    v_job_id,
    v_owner,
    p_job ->> 'product_id',
    p_job ->> 'sending_group_id',
    case when (p_job ->> 'start')::boolean then 'queued' else 'pending' end::job_service.job_status,
    (p_job ->> 'priority')::smallint,
    (p_job ->> 'max_parallel_tasks')::integer,
    (v_retry ->> 'max_attempts')::integer,
    (v_retry ->> 'retry_interval')::integer,
    coalesce(
      (select array_agg(c) from jsonb_array_elements_text(v_retry -> 'retry_on_errors') as c),
      case when v_retry ? 'retry_on_errors' then '{}'::text[] end,
      (select array_agg(code order by code) from job_service.error_catalogue where category = 'transient')
    ),
    v_retry ->> 'backoff',
    (v_retry ->> 'max_retry_interval')::integer,
    (v_limits ->> 'max_memory')::numeric,
    (v_limits ->> 'max_cpu')::numeric,
    coalesce(p_job -> 'metadata', '{}'::jsonb),
    -- claim shards of at least 4 slots each, at most 64 (one for a resource budget)
    case when v_limits is null
      then least(64, greatest(1, (p_job ->> 'max_parallel_tasks')::integer / 4)) else 1 end,
    v_rate is not null,
    exists (select 1 from job_service.sending_group_limits where sending_group_id = p_job ->> 'sending_group_id')
  )
  returning * into v_job;

  if v_rate is not null then
    insert into job_service.job_rate_limits (job_id, max_per_second, burst, tokens, refilled_at)
    select v_job_id, r.rate, r.burst, r.burst, clock_timestamp()
    from (select (v_rate ->> 'max_per_second')::numeric as rate,
                 coalesce((v_rate ->> 'burst')::integer,
                          job_service.default_burst((v_rate ->> 'max_per_second')::numeric)) as burst) r;
  end if;

  perform job_service.create_job_shards(v_job, v_task_count);

  if v_task_count > 0 then
    perform job_service.insert_tasks(v_job_id, p_tasks);
  end if;

  return jsonb_build_object('created', true, 'job', job_service.job_json(v_job));
end
$$;
comment on function job_service_api.create_job(jsonb, jsonb, jsonb, text, text) is
  'createJob: writes the job and all its tasks in one transaction (all or nothing) with counters equal '
  'to the task rows; an idempotency key scoped to the owner returns the first job for the same request '
  'within 24 h and raises IDEMPOTENCY_CONFLICT for a different one.';

-- ---------------------------------------------------------------------------------------------
-- getJob
-- ---------------------------------------------------------------------------------------------
create function job_service_api.get_job(
  p_ctx jsonb,
  p_job_id uuid,
  p_with_errors boolean,
  p_with_events boolean
) returns jsonb
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
declare
  v_owner constant uuid := job_service.visible_job_owner(p_ctx);
  v_job job_service.jobs;
  v_result jsonb;
begin
  select * into v_job from job_service.jobs
  where id = p_job_id and (v_owner is null or user_id = v_owner);
  if not found then
    perform job_service.raise_not_found(p_job_id);
  end if;

  v_result := job_service.job_json(v_job);

  if p_with_errors then
    v_result := v_result || jsonb_build_object('errors', (
      select coalesce(jsonb_agg(jsonb_build_object(
        'id', e.id,
        'task_id', e.task_id,
        'attempt', e.attempt,
        'code', e.code,
        'category', e.category,
        'message', e.message,
        'stack', e.stack,
        'request_id', e.request_id,
        'created_at', job_service.iso(e.created_at)
      ) order by e.id desc), '[]'::jsonb)
      from (select * from job_service.job_errors where job_id = p_job_id order by id desc limit 50) e
    ));
  end if;

  if p_with_events then
    v_result := v_result || jsonb_build_object('events', (
      select coalesce(jsonb_agg(jsonb_build_object(
        'id', ev.id,
        'type', ev.type,
        'from_status', ev.from_status,
        'to_status', ev.to_status,
        'actor', jsonb_build_object('role', ev.actor_role, 'user_id', ev.actor_id),
        'request_id', ev.request_id,
        'details', ev.details,
        'created_at', job_service.iso(ev.created_at)
      ) order by ev.id desc), '[]'::jsonb)
      from (select * from job_service.job_events where job_id = p_job_id order by id desc limit 100) ev
    ));
  end if;

  return v_result;
end
$$;
comment on function job_service_api.get_job(jsonb, uuid, boolean, boolean) is
  'getJob: a user sees only its own job (another user''s is JOB_NOT_FOUND); optionally the last 50 '
  'errors and 100 events, newest first.';

-- ---------------------------------------------------------------------------------------------
-- listJobs
-- ---------------------------------------------------------------------------------------------
create function job_service_api.list_jobs(p_ctx jsonb, p_filter jsonb) returns jsonb
language plpgsql stable
set plan_cache_mode = force_custom_plan
as $$
declare
  v_owner uuid := job_service.visible_job_owner(p_ctx);
  v_limit constant integer := (p_filter ->> 'limit')::integer;
  v_statuses job_service.job_status[];
  v_after_ts timestamptz;
  v_after_id uuid;
  v_row job_service.jobs;
  v_count integer := 0;
  v_jobs jsonb := '[]'::jsonb;
  v_next jsonb;
begin
  if v_owner is null and p_filter ? 'user_id' then
    v_owner := (p_filter ->> 'user_id')::uuid;
  end if;
  if p_filter ? 'status' then
    select array_agg(s::job_service.job_status) into v_statuses
    from jsonb_array_elements_text(p_filter -> 'status') as s;
  end if;
  if p_filter ? 'after' then
    v_after_ts := 'epoch'::timestamptz + (p_filter #>> '{after,t}')::bigint * interval '1 microsecond';
    v_after_id := (p_filter #>> '{after,i}')::uuid;
  end if;

  -- One static statement; force_custom_plan (below) plans it for each call's values, so the
  -- conditions of absent filters fold away and each combination gets the matching index.
  for v_row in
    select * from job_service.jobs j
    where (v_owner is null or j.user_id = v_owner)
      and (v_statuses is null or j.status = any (v_statuses))
      and (not p_filter ? 'product_id' or j.product_id = p_filter ->> 'product_id')
      and (not p_filter ? 'sending_group_id' or j.sending_group_id = p_filter ->> 'sending_group_id')
      and (v_after_ts is null or (j.created_at, j.id) < (v_after_ts, v_after_id))
    order by j.created_at desc, j.id desc
    limit v_limit + 1
  loop
    v_count := v_count + 1;
    if v_count > v_limit then
      -- one row more than asked: there is a next page, which starts after the last row returned
      v_next := jsonb_build_object(
        't', (extract(epoch from v_after_ts) * 1000000)::bigint::text,
        'i', v_after_id
      );
      exit;
    end if;
    v_jobs := v_jobs || jsonb_build_array(job_service.job_json(v_row));
    v_after_ts := v_row.created_at;
    v_after_id := v_row.id;
  end loop;

  return jsonb_build_object('jobs', v_jobs, 'next', v_next);
end
$$;
comment on function job_service_api.list_jobs(jsonb, jsonb) is
  'listJobs: keyset pagination on (created_at desc, id desc), stable under concurrent inserts; a user '
  'sees only its own jobs, the service all jobs or one user''s.';
