-- The request id in the audit log is the server's (#16): the functions generate one per request and
-- pass it as request_id; what a caller sent as x-request-id is kept beside it, as the client's, in
-- audit_log.client_request_id (docs/decisions.md, "Audit and events"). A caller can no longer write
-- an id of its choosing into the column operators correlate with the server's logs.

create or replace function job_service.set_request_context(p_ctx jsonb) returns void
language plpgsql volatile
as $$
begin
  perform set_config('batch.actor_role', coalesce(p_ctx ->> 'role', ''), true),
          set_config('batch.actor_id', coalesce(p_ctx ->> 'user_id', ''), true),
          set_config('batch.request_id', coalesce(p_ctx ->> 'request_id', ''), true),
          set_config('batch.client_request_id', coalesce(p_ctx ->> 'client_request_id', ''), true);
end
$$;
comment on function job_service.set_request_context(jsonb) is
  'Records the caller (role, user id, the server''s request id and the id the client sent) for the '
  'rest of the transaction only, so that the audit and event triggers attribute every row they '
  'write to the request that caused it.';

comment on function job_service.request_id() is
  'The id the server gave the HTTP request running this transaction (its x-request-id answer), if any.';

create function job_service.client_request_id() returns text
language sql stable
as $$ select nullif(current_setting('batch.client_request_id', true), '') $$;
comment on function job_service.client_request_id() is
  'The x-request-id the caller sent with the HTTP request running this transaction, if it sent a '
  'well-formed one: the client''s id, kept beside the server''s, never in its place.';
revoke execute on function job_service.client_request_id() from public;

-- A default, not a change to each writer: every audit row (the job trigger's, updateBatchJob's error
-- reports) takes the client's id from the transaction's context. Stable, so adding the column
-- rewrites nothing (existing rows get null).
alter table job_service.audit_log
  add column client_request_id text default job_service.client_request_id()
    constraint audit_log_client_request_id_form
      check (client_request_id ~ '^[A-Za-z0-9._:-]{1,128}$');
comment on column job_service.audit_log.request_id is
  'The server''s id of the request that wrote the row (the x-request-id it answered with).';
comment on column job_service.audit_log.client_request_id is
  'The x-request-id the caller sent, when it sent a well-formed one; null otherwise.';
