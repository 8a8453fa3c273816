-- Delivery of the notification outbox to a webhook, driven by runMaintenance
-- (supabase/functions/job-operations/notifications.ts does the HTTP part).
--
-- A delivery try is claimed before the HTTP call and its outcome recorded after it, each in its own
-- short transaction: the claim takes due rows with FOR UPDATE SKIP LOCKED, counts the try, names
-- the run that holds it and moves next_attempt_at past the end of the call (a lease), so no other
-- runner sees the row as due while the call is in flight. The outcome is recorded only by the run
-- that holds the claim. A runner that dies mid-call leaves the row to be claimed again when the
-- lease runs out: the receiver may then get the same notification twice and de-duplicates it by
-- its x-notification-id (docs/operations.md).

alter table job_service.notifications
  add column claimed_by uuid,
  add column last_attempt_at timestamptz;
comment on column job_service.notifications.claimed_by is
  'The maintenance run whose delivery try is in flight (null when none is).';
comment on column job_service.notifications.last_attempt_at is 'When the last delivery try started.';
comment on column job_service.notifications.attempts is 'Delivery tries started so far.';
comment on column job_service.notifications.next_attempt_at is
  'When the notification is due for its next try; while a try is in flight, the end of its lease.';
comment on column job_service.notifications.last_error is
  'Why the last failed try failed (HTTP status, time-out, network error); kept after a later success.';

-- retention: delivered and failed notifications are purged by age
create index notifications_done_idx on job_service.notifications (created_at) where status <> 'pending';

create function job_service_api.claim_notifications(
  p_run uuid,
  p_limit integer,
  p_lease_ms integer,
  p_max_attempts integer
) returns jsonb
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_claimed jsonb;
begin
  -- A try that was claimed and never reported back (its runner died) with no try left: give up.
  update job_service.notifications n
  set status = 'failed', claimed_by = null,
      last_error = coalesce(n.last_error || '; ', '') ||
        format('try %s of %s did not report back (the runner stopped); given up', n.attempts, p_max_attempts)
  where n.id in (
    select id from job_service.notifications
    where status = 'pending' and next_attempt_at <= now() and attempts >= p_max_attempts
    order by next_attempt_at
    limit p_limit
    for update skip locked
  );

  with due as (
    select id from job_service.notifications
    where status = 'pending' and next_attempt_at <= now() and attempts < p_max_attempts
    order by next_attempt_at, created_at
    limit p_limit
    for update skip locked
  ), claimed as (
    update job_service.notifications n
    set claimed_by = p_run,
        attempts = n.attempts + 1,
        last_attempt_at = now(),
        next_attempt_at = now() + p_lease_ms * interval '1 millisecond'
    from due
    where n.id = due.id
    returning n.id, n.type, n.job_id, n.user_id, n.created_at, n.payload, n.attempts
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', c.id, 'type', c.type, 'job_id', c.job_id, 'user_id', c.user_id,
           'created_at', job_service.iso(c.created_at), 'payload', c.payload, 'attempt', c.attempts)
         order by c.created_at, c.id), '[]'::jsonb)
  into v_claimed
  from claimed c;
  return v_claimed;
end
$$;
comment on function job_service_api.claim_notifications(uuid, integer, integer, integer) is
  'Notification delivery, step 1: claims up to p_limit due pending notifications for run p_run (SKIP '
  'LOCKED, so concurrent runners never claim the same one), counts the try and holds the row for '
  'p_lease_ms so nobody else sends it meanwhile; a claimed last try that never reported back is '
  'marked failed. Returns the webhook bodies ({id, type, job_id, user_id, created_at, payload}) '
  'with the try number.';

create function job_service_api.finish_notifications(p_run uuid, p_outcomes jsonb, p_policy jsonb)
returns jsonb
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_max_attempts constant integer := (p_policy ->> 'max_attempts')::integer;
  v_base_ms constant bigint := (p_policy ->> 'retry_base_ms')::bigint;
  v_cap_ms constant bigint := (p_policy ->> 'retry_max_ms')::bigint;
  v_counts jsonb;
begin
  with outcomes as (
    select (o ->> 'id')::uuid as id, coalesce((o ->> 'ok')::boolean, false) as ok,
           left(coalesce(o ->> 'error', 'failed'), 1000) as error
    from jsonb_array_elements(p_outcomes) o
  ), held as (
    select n.id, n.attempts from job_service.notifications n
    join outcomes o on o.id = n.id
    where n.claimed_by = p_run and n.status = 'pending'
    order by n.id
    for update
  ), recorded as (
    update job_service.notifications n
    set claimed_by = null,
        status = case when o.ok then 'delivered'
                      when h.attempts >= v_max_attempts then 'failed'
                      else 'pending' end,
        delivered_at = case when o.ok then now() end,
        last_error = case when o.ok then n.last_error else o.error end,
        next_attempt_at = case when o.ok or h.attempts >= v_max_attempts then n.next_attempt_at
          else now() + least(v_base_ms * power(2::numeric, h.attempts - 1), v_cap_ms)::bigint
                       * interval '1 millisecond' end
    from held h join outcomes o on o.id = h.id
    where n.id = h.id
    returning n.status
  )
  select jsonb_build_object(
    'delivered', count(*) filter (where status = 'delivered'),
    'retrying', count(*) filter (where status = 'pending'),
    'failed', count(*) filter (where status = 'failed'))
  into v_counts
  from recorded;
  return v_counts;
end
$$;
comment on function job_service_api.finish_notifications(uuid, jsonb, jsonb) is
  'Notification delivery, step 2: records the outcome of the tries run p_run holds ([{id, ok, '
  'error}]): delivered; or the error, and another try after retry_base_ms * 2^(tries - 1) (capped '
  'at retry_max_ms); or failed for good after max_attempts tries. An outcome for a claim the run no '
  'longer holds changes nothing. Returns {delivered, retrying, failed}.';

create function job_service_api.purge_notifications(p_retention_days integer, p_limit integer)
returns integer
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_purged integer;
begin
  delete from job_service.notifications
  where id in (
    select id from job_service.notifications
    where status <> 'pending' and created_at < now() - p_retention_days * interval '1 day'
    order by created_at
    limit p_limit
    for update skip locked
  );
  get diagnostics v_purged = row_count;
  return v_purged;
end
$$;
comment on function job_service_api.purge_notifications(integer, integer) is
  'Retention: deletes up to p_limit delivered or failed notifications older than the retention '
  'period (the same JOB_RETENTION_DAYS as finished jobs); pending ones are never purged.';
