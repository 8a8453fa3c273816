-- Who did what: the request context every entry point sets, the triggers that write the audit log
-- and the job's event log for every writer (API or direct SQL), and the append-only guard.

-- ---------------------------------------------------------------------------------------------
-- Request context (transaction-local settings)
-- ---------------------------------------------------------------------------------------------
-- Hot-path helpers are PL/pgSQL, not SQL functions: PostgreSQL re-plans a non-inlined SQL
-- function on every call, while PL/pgSQL keeps its plans for the session.
create function job_service.set_request_context(p_ctx jsonb) returns void
language plpgsql volatile
as $$
begin
  perform set_config('batch.actor_role', coalesce(p_ctx ->> 'role', ''), true),
          set_config('batch.actor_id', coalesce(p_ctx ->> 'user_id', ''), true),
          set_config('batch.request_id', coalesce(p_ctx ->> 'request_id', ''), true);
end
$$;
comment on function job_service.set_request_context(jsonb) is
  'Records the caller (role, user id, request id) for the rest of the transaction only, so that the '
  'audit and event triggers attribute every row they write to the request that caused it.';

create function job_service.actor_role() returns text
language sql stable
-- session_user, not current_user: the audit triggers run as their owner (security definer)
as $$ select coalesce(nullif(current_setting('batch.actor_role', true), ''), 'db:' || session_user) $$;
comment on function job_service.actor_role() is
  'The calling role of this transaction; a direct SQL writer without request context is named '
  'db:<the role it logged in as>.';

create function job_service.actor_id() returns uuid
language sql stable
as $$ select nullif(current_setting('batch.actor_id', true), '')::uuid $$;
comment on function job_service.actor_id() is 'The calling user of this transaction, null for service and SQL callers.';

create function job_service.request_id() returns text
language sql stable
as $$ select nullif(current_setting('batch.request_id', true), '') $$;
comment on function job_service.request_id() is 'The x-request-id of the HTTP request running this transaction, if any.';

-- ---------------------------------------------------------------------------------------------
-- updated_at
-- ---------------------------------------------------------------------------------------------
create function job_service.touch_updated_at() returns trigger
language plpgsql
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
comment on function job_service.touch_updated_at() is
  'Guarantees jobs.updated_at is the time of the last write, whoever wrote it.';

create trigger jobs_touch_updated_at
  before update on job_service.jobs
  for each row execute function job_service.touch_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Audit log: one row per job mutation, append-only
-- ---------------------------------------------------------------------------------------------
-- The writers are SECURITY DEFINER so that no API role needs (or gets) INSERT on the audit log:
-- nobody can forge an entry, and every job write still produces one.
create function job_service.audit_job_change() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into job_service.audit_log (job_id, owner_id, action, actor_role, actor_id, request_id, before, after)
  values (
    coalesce(new.id, old.id),
    coalesce(new.user_id, old.user_id),
    case tg_op when 'INSERT' then 'job.created' when 'UPDATE' then 'job.updated' else 'job.deleted' end,
    job_service.actor_role(),
    job_service.actor_id(),
    job_service.request_id(),
    -- a deleted job is kept as the API showed it (counters included): its rows are about to go
    case tg_op when 'UPDATE' then to_jsonb(old) when 'DELETE' then job_service.job_json(old) end,
    case when tg_op <> 'DELETE' then to_jsonb(new) end
  );
  return case tg_op when 'DELETE' then old end;
end
$$;
comment on function job_service.audit_job_change() is
  'Guarantees an audit row (actor, request id, full before/after snapshot) for every creation, '
  'deletion and steering change of a job, by any writer; the snapshot of a deleted job survives it.';

create trigger jobs_audit_insert
  after insert on job_service.jobs
  for each row execute function job_service.audit_job_change();

-- BEFORE: the cascade that removes the job's tasks and counters runs after the row is deleted, and
-- the snapshot must see them
create trigger jobs_audit_delete
  before delete on job_service.jobs
  for each row execute function job_service.audit_job_change();

-- Writes that change none of the steering fields (none exist today: counters live in job_shards)
-- are not job mutations.
create trigger jobs_audit_update
  after update on job_service.jobs
  for each row
  when (
    (old.status, old.priority, old.max_parallel_tasks, old.current_phase, old.progress_percentage,
     old.metadata, old.attempt, old.next_attempt_at, old.max_memory, old.max_cpu,
     old.deletion_requested_at)
    is distinct from
    (new.status, new.priority, new.max_parallel_tasks, new.current_phase, new.progress_percentage,
     new.metadata, new.attempt, new.next_attempt_at, new.max_memory, new.max_cpu,
     new.deletion_requested_at)
  )
  execute function job_service.audit_job_change();

create function job_service.refuse_audit_change() returns trigger
language plpgsql
as $$
begin
  raise exception using
    errcode = 'JS403',
    message = 'AUDIT_LOG_APPEND_ONLY',
    detail = format('%s on audit_log is not allowed: the audit log is append-only', tg_op);
end
$$;
comment on function job_service.refuse_audit_change() is
  'Guarantees the audit log is append-only: UPDATE, DELETE and TRUNCATE fail for every role, '
  'the table owner included.';

create trigger audit_log_append_only
  before update or delete on job_service.audit_log
  for each row execute function job_service.refuse_audit_change();

create trigger audit_log_no_truncate
  before truncate on job_service.audit_log
  for each statement execute function job_service.refuse_audit_change();

-- ---------------------------------------------------------------------------------------------
-- Job events: creation and every status change
-- ---------------------------------------------------------------------------------------------
create function job_service.log_job_event() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into job_service.job_events (job_id, type, from_status, to_status, actor_role, actor_id, request_id)
  values (
    new.id,
    case tg_op when 'INSERT' then 'created' else 'status_changed' end,
    case when tg_op = 'UPDATE' then old.status end,
    new.status,
    job_service.actor_role(),
    job_service.actor_id(),
    job_service.request_id()
  );
  return null;
end
$$;
comment on function job_service.log_job_event() is
  'Guarantees the job''s event log has its creation and every status move (from, to, actor, request id).';

create trigger jobs_event_created
  after insert on job_service.jobs
  for each row execute function job_service.log_job_event();

create trigger jobs_event_status_changed
  after update of status on job_service.jobs
  for each row
  when (old.status is distinct from new.status)
  execute function job_service.log_job_event();
