-- Row-level security on every table. The Edge Functions connect with the database owner's URL and
-- enforce ownership themselves; these policies protect the same data when it is read through
-- PostgREST or any client holding a user's token: `authenticated` reads only its own rows and
-- writes nothing, `anon` gets nothing, `service_role` bypasses RLS (as on Supabase).

alter table public.jobs enable row level security;
alter table public.tasks enable row level security;
alter table public.job_errors enable row level security;
alter table public.job_events enable row level security;
alter table public.audit_log enable row level security;
alter table public.idempotency_keys enable row level security;
alter table public.error_catalogue enable row level security;
alter table public.job_shards enable row level security;
alter table public.job_shard_ends enable row level security;
alter table public.task_ready enable row level security;
alter table public.notifications enable row level security;

-- Supabase grants everything on public tables to the API roles by default; writes go through the
-- Edge Functions only.
revoke all on public.jobs, public.tasks, public.job_errors, public.job_events, public.audit_log,
  public.idempotency_keys, public.error_catalogue, public.job_shards, public.job_shard_ends,
  public.task_ready, public.notifications from anon, authenticated, service_role;
grant select on public.jobs, public.tasks, public.job_errors, public.job_events, public.audit_log,
  public.idempotency_keys, public.error_catalogue, public.job_shards, public.job_shard_ends,
  public.notifications to authenticated;
grant all on public.jobs, public.tasks, public.job_errors, public.job_events,
  public.idempotency_keys, public.error_catalogue, public.job_shards, public.job_shard_ends,
  public.task_ready, public.notifications to service_role;
grant select on public.audit_log to service_role;

create policy jobs_owner_read on public.jobs
  for select to authenticated
  using (user_id = (select auth.uid()));

create policy tasks_owner_read on public.tasks
  for select to authenticated
  using (exists (select 1 from public.jobs j where j.id = job_id and j.user_id = (select auth.uid())));

create policy job_errors_owner_read on public.job_errors
  for select to authenticated
  using (exists (select 1 from public.jobs j where j.id = job_id and j.user_id = (select auth.uid())));

create policy job_events_owner_read on public.job_events
  for select to authenticated
  using (exists (select 1 from public.jobs j where j.id = job_id and j.user_id = (select auth.uid())));

create policy audit_log_owner_read on public.audit_log
  for select to authenticated
  using (owner_id = (select auth.uid()));

create policy idempotency_keys_owner_read on public.idempotency_keys
  for select to authenticated
  using (user_id = (select auth.uid()));

create policy job_shards_owner_read on public.job_shards
  for select to authenticated
  using (exists (select 1 from public.jobs j where j.id = job_id and j.user_id = (select auth.uid())));

create policy job_shard_ends_owner_read on public.job_shard_ends
  for select to authenticated
  using (exists (select 1 from public.jobs j where j.id = job_id and j.user_id = (select auth.uid())));

create policy notifications_owner_read on public.notifications
  for select to authenticated
  using (user_id = (select auth.uid()));

-- task_ready is engine-internal: RLS on, no policy, no grant to users.

create policy error_catalogue_read on public.error_catalogue
  for select to authenticated
  using (true);

-- rate limits
alter table public.job_rate_limits enable row level security;
alter table public.sending_group_limits enable row level security;
revoke all on public.job_rate_limits, public.sending_group_limits from anon, authenticated, service_role;
grant select on public.job_rate_limits, public.sending_group_limits to authenticated;
grant all on public.job_rate_limits, public.sending_group_limits to service_role;

create policy job_rate_limits_owner_read on public.job_rate_limits
  for select to authenticated
  using (exists (select 1 from public.jobs j where j.id = job_id and j.user_id = (select auth.uid())));

-- a group's limit is visible to the users who have jobs in that group
create policy sending_group_limits_owner_read on public.sending_group_limits
  for select to authenticated
  using (exists (select 1 from public.jobs j
                 where j.sending_group_id = sending_group_limits.sending_group_id
                   and j.user_id = (select auth.uid())));
