-- Rate limits on task starts: per job (createJob rate_limit) and per sending group
-- (setGroupRateLimit), as token buckets kept in the database and consumed by claims.
--
-- A bucket holds up to `burst` tokens and refills at `max_per_second`; a claim takes one token per
-- task it starts, so in any window of T seconds at most burst + max_per_second * T tasks start.
-- Only jobs with a limit (or in a limited group) ever touch a bucket row: unlimited work never
-- waits on one. A claim takes bucket rows with SKIP LOCKED, like shards: when another claim is
-- spending the same bucket it gets nothing from that job and moves on.

-- The tables (job_rate_limits, sending_group_limits) are in the core schema, because the claim
-- code declares variables of their row types.

create function job_service.default_burst(p_max_per_second numeric) returns integer
language sql immutable parallel safe
as $$ select greatest(1, ceil(p_max_per_second))::integer $$;
comment on function job_service.default_burst(numeric) is
  'The burst of a limit given without one: max(1, ceil(max_per_second)).';

create function job_service.bucket_tokens(
  p_tokens numeric,
  p_refilled_at timestamptz,
  p_max_per_second numeric,
  p_burst integer,
  p_at timestamptz
) returns numeric
language sql immutable parallel safe
as $$
  select least(p_burst::numeric,
               p_tokens + p_max_per_second * greatest(extract(epoch from p_at - p_refilled_at), 0))
$$;
comment on function job_service.bucket_tokens(numeric, timestamptz, numeric, integer, timestamptz) is
  'Tokens in a bucket at p_at: what it held, refilled at its rate since, never above burst.';

create function job_service.rate_limit_json(
  p_max_per_second numeric,
  p_burst integer,
  p_tokens numeric,
  p_refilled_at timestamptz
) returns jsonb
language sql stable
as $$
  select jsonb_build_object(
    'max_per_second', p_max_per_second,
    'burst', p_burst,
    'available', floor(job_service.bucket_tokens(p_tokens, p_refilled_at, p_max_per_second, p_burst,
                                             clock_timestamp()))
  )
$$;
comment on function job_service.rate_limit_json(numeric, integer, numeric, timestamptz) is
  'A limit as the API shows it: the configuration and the starts allowed right now.';

create function job_service_api.set_group_rate_limit(
  p_ctx jsonb,
  p_sending_group_id text,
  p_max_per_second numeric,
  p_burst integer
) returns jsonb
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_limit job_service.sending_group_limits;
  v_burst constant integer := coalesce(p_burst, job_service.default_burst(p_max_per_second));
begin
  perform job_service.set_request_context(p_ctx);
  -- excludes createJob in this group while the group's jobs are marked (create_job takes it shared)
  perform pg_advisory_xact_lock(hashtextextended('sending_group:' || p_sending_group_id, 0));
  update job_service.jobs set group_limited = (p_max_per_second is not null)
  where sending_group_id = p_sending_group_id
    and group_limited is distinct from (p_max_per_second is not null);
  if p_max_per_second is null then
    delete from job_service.sending_group_limits where sending_group_id = p_sending_group_id;
    return jsonb_build_object('sending_group_id', p_sending_group_id, 'max_per_second', null,
                              'burst', null);
  end if;
  -- a changed limit keeps the tokens already earned, cut to the new burst
  insert into job_service.sending_group_limits as g
    (sending_group_id, max_per_second, burst, tokens, refilled_at)
  values (p_sending_group_id, p_max_per_second, v_burst, v_burst, clock_timestamp())
  on conflict (sending_group_id) do update
    set tokens = least(excluded.burst, job_service.bucket_tokens(g.tokens, g.refilled_at, g.max_per_second,
                                                             g.burst, clock_timestamp())),
        refilled_at = clock_timestamp(),
        max_per_second = excluded.max_per_second,
        burst = excluded.burst,
        updated_at = now()
  returning * into v_limit;
  return jsonb_build_object('sending_group_id', v_limit.sending_group_id,
                            'max_per_second', v_limit.max_per_second, 'burst', v_limit.burst);
end
$$;
comment on function job_service_api.set_group_rate_limit(jsonb, text, numeric, integer) is
  'setGroupRateLimit: sets (or, with a null rate, removes) the start-rate limit of a sending group.';
