-- Row-level security on every table. The Edge Functions connect as job_service_runtime, which may
-- only call the entry points (20261128000990_privileges.sql); these policies protect the same data
-- when it is read through PostgREST or any client holding a user's token: `authenticated` reads only its own rows and
-- writes nothing, `anon` gets nothing, `service_role` bypasses RLS (as on Supabase).

alter table job_service.jobs enable row level security;
alter table job_service.tasks enable row level security;
alter table job_service.job_errors enable row level security;
alter table job_service.job_events enable row level security;
alter table job_service.audit_log enable row level security;
alter table job_service.idempotency_keys enable row level security;
alter table job_service.error_catalogue enable row level security;
alter table job_service.job_shards enable row level security;
alter table job_service.job_shard_ends enable row level security;
alter table job_service.task_ready enable row level security;
alter table job_service.notifications enable row level security;

-- The API roles may see the schema (a project can expose it to the Data API); what they may read
-- in it is decided per table below. Writes go through the Edge Functions only.
grant usage on schema job_service to authenticated, service_role;
revoke all on job_service.jobs, job_service.tasks, job_service.job_errors, job_service.job_events, job_service.audit_log,
  job_service.idempotency_keys, job_service.error_catalogue, job_service.job_shards, job_service.job_shard_ends,
  job_service.task_ready, job_service.notifications from anon, authenticated, service_role;
-- authenticated reads its own jobs, their tasks, errors and events, its audit rows and the error
-- catalogue; the engine's internal tables (counter shards, the ready queue, idempotency keys, the
-- notification outbox with its delivery state: what a webhook receiver answered) are not readable
-- by it at all (docs/decisions.md, least privilege).
grant select on job_service.jobs, job_service.tasks, job_service.job_errors, job_service.job_events, job_service.audit_log,
  job_service.error_catalogue to authenticated;
grant all on job_service.jobs, job_service.tasks, job_service.job_errors, job_service.job_events,
  job_service.idempotency_keys, job_service.error_catalogue, job_service.job_shards, job_service.job_shard_ends,
  job_service.task_ready, job_service.notifications to service_role;
grant select on job_service.audit_log to service_role;

create policy jobs_owner_read on job_service.jobs
  for select to authenticated
  using (user_id = (select auth.uid()));

create policy tasks_owner_read on job_service.tasks
  for select to authenticated
  using (job_id = any (array(select j.id from job_service.jobs j where j.user_id = (select auth.uid()))));

create policy job_errors_owner_read on job_service.job_errors
  for select to authenticated
  using (job_id = any (array(select j.id from job_service.jobs j where j.user_id = (select auth.uid()))));

create policy job_events_owner_read on job_service.job_events
  for select to authenticated
  using (job_id = any (array(select j.id from job_service.jobs j where j.user_id = (select auth.uid()))));

create policy audit_log_owner_read on job_service.audit_log
  for select to authenticated
  using (owner_id = (select auth.uid()));

-- Why `= any (array(select …))` and `(select auth.uid())`: both are computed once per statement
-- (an InitPlan), so a user's read of tasks is an index scan on tasks_job_idx over her own job ids,
-- never a per-row subquery over every tenant's rows (pgTAP 11_policy_plan checks the plan).
-- The internal tables (idempotency_keys, job_shards, job_shard_ends, task_ready, notifications):
-- RLS on, no policy, no grant to users.

create policy error_catalogue_read on job_service.error_catalogue
  for select to authenticated
  using (true);

-- rate limits
alter table job_service.job_rate_limits enable row level security;
alter table job_service.sending_group_limits enable row level security;
revoke all on job_service.job_rate_limits, job_service.sending_group_limits from anon, authenticated, service_role;
-- token buckets are engine state: no grant to users (a job's limit is in the job object)
grant all on job_service.job_rate_limits, job_service.sending_group_limits to service_role;
