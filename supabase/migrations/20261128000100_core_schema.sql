-- Core schema of the batch job service: jobs, their counter shards, tasks and the ready queue,
-- the error catalogue, job errors, job events, the append-only audit log, idempotency keys and the
-- notification outbox.
--
-- Every range of the HTTP contract (docs/spec: api.md) is also a constraint here, so that no writer,
-- however buggy, can store what the API would refuse. JSON sizes are measured by the API on compact
-- JSON; the database measures PostgreSQL's jsonb text form, which adds a space after every ':' and
-- ',', so its backstop allows twice the API limit (docs/decisions.md, "JSON size limits").

-- Everything of the service lives in two schemas of its own, so that it never meets an app's own
-- `public.jobs`, `private` schema or `public.claim_tasks` (platform.md): `job_service` holds the
-- tables, types and internal helpers, `job_service_api` the entry points the Edge Functions call.
-- Neither is exposed over PostgREST unless the project adds it to the API settings.
create schema job_service;
create schema job_service_api;
revoke all on schema job_service from public;
revoke all on schema job_service_api from public;

comment on schema job_service is 'Tables, types and internal helpers of the batch job service.';
comment on schema job_service_api is 'Entry points called by the job-operations and task-operations Edge Functions.';

create type job_service.job_status as enum (
  'pending', 'queued', 'running', 'paused', 'retrying', 'cancelling', 'completed', 'failed', 'cancelled'
);

create type job_service.task_status as enum ('pending', 'running', 'succeeded', 'failed', 'cancelled');

create type job_service.error_category as enum (
  'transient', 'resource', 'validation', 'permission', 'internal', 'unknown'
);

create function job_service.is_error_code(code text) returns boolean
language sql immutable parallel safe
as $$ select code ~ '^[A-Z][A-Z0-9_]{1,63}$' $$;
comment on function job_service.is_error_code(text) is
  'Guarantees one definition of a valid error code (api.md: ^[A-Z][A-Z0-9_]{1,63}$) for every constraint.';

create function job_service.are_error_codes(codes text[]) returns boolean
language sql immutable parallel safe
as $$
  select cardinality(codes) <= 50
     and array_position(codes, null) is null
     and coalesce(bool_and(job_service.is_error_code(c)), true)
  from unnest(codes) as c
$$;
comment on function job_service.are_error_codes(text[]) is
  'Guarantees retry_on_errors holds at most 50 valid codes and no null.';

-- ---------------------------------------------------------------------------------------------
-- Error catalogue
-- ---------------------------------------------------------------------------------------------
create table job_service.error_catalogue (
  code text primary key check (job_service.is_error_code(code)),
  category job_service.error_category not null,
  retryable boolean not null,
  description text not null check (char_length(description) <= 512)
);
comment on table job_service.error_catalogue is
  'Maps error codes to a category and a default retry flag; codes not listed are category unknown.';

insert into job_service.error_catalogue (code, category, retryable, description) values
  ('TIMEOUT', 'transient', true, 'The work did not finish in time.'),
  ('NETWORK_ERROR', 'transient', true, 'A network call failed.'),
  ('RATE_LIMITED', 'transient', true, 'A provider refused the call because of its rate limit.'),
  ('SERVICE_UNAVAILABLE', 'transient', true, 'A dependency was unavailable.'),
  ('WORKER_LOST', 'transient', true, 'The worker holding the task stopped reporting before its lease expired.'),
  ('DEADLOCK', 'transient', true, 'A database deadlock or serialization failure.'),
  ('RESOURCE_LIMIT_EXCEEDED', 'resource', false, 'The task or job went over its resource budget.'),
  ('OUT_OF_MEMORY', 'resource', false, 'The worker ran out of memory.'),
  ('INVALID_PAYLOAD', 'validation', false, 'The task payload cannot be processed.'),
  ('INVALID_RECIPIENT', 'validation', false, 'The recipient does not exist or cannot receive.'),
  ('PERMISSION_DENIED', 'permission', false, 'The worker lacks a permission the task needs.'),
  ('INTERNAL', 'internal', false, 'An unexpected error in the worker.');

-- ---------------------------------------------------------------------------------------------
-- Jobs
-- ---------------------------------------------------------------------------------------------
-- Job ids are time-ordered (UUID version 7, RFC 9562: 48 bits of Unix time in milliseconds, then
-- random bits; PostgreSQL 15 has no uuidv7()). Every index that starts with a job id (jobs, tasks,
-- queue, shards, errors, events, audit) then takes a new job's rows at its right-hand end, on pages
-- that are already in memory and already logged since the last checkpoint, instead of on a random
-- leaf of a large index: with a million finished tasks kept, a random id cost a createJob about
-- five full-page images (33 kB of WAL against 8 kB). 74 random bits keep ids unguessable.
create function job_service.uuid_v7() returns uuid
language sql volatile parallel safe
as $$
  select encode(
    -- version 7: the version nibble of gen_random_uuid's 4 (0100) with its two low bits set
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
              from 1 for 6),
      52, 1), 53, 1),
    'hex')::uuid
$$;
comment on function job_service.uuid_v7() is
  'A time-ordered UUID (version 7): new job ids land at the end of every index keyed by job id.';

create table job_service.jobs (
  id uuid primary key default job_service.uuid_v7(),
  user_id uuid not null,
  product_id text not null check (char_length(product_id) between 1 and 128),
  sending_group_id text not null check (char_length(sending_group_id) between 1 and 128),
  status job_service.job_status not null default 'pending',
  priority smallint not null default 50 check (priority between 0 and 100),
  max_parallel_tasks integer not null default 10 check (max_parallel_tasks between 1 and 1000),

  -- retry_config
  max_attempts integer not null default 3 check (max_attempts between 1 and 100),
  retry_interval_ms integer not null default 60000 check (retry_interval_ms between 0 and 86400000),
  retry_on_errors text[] not null check (job_service.are_error_codes(retry_on_errors)),
  retry_backoff text not null default 'fixed' check (retry_backoff in ('fixed', 'exponential')),
  max_retry_interval_ms integer not null check (
    max_retry_interval_ms between retry_interval_ms and 604800000
  ),

  -- resource_limits (both or neither)
  max_memory numeric check (max_memory between 1 and 1048576),
  max_cpu numeric check (max_cpu between 0.001 and 1024),
  constraint jobs_resource_limits_both check ((max_memory is null) = (max_cpu is null)),

  -- detailed_status: the caller's phase, and progress for jobs without tasks (a job with tasks
  -- reports the share of its tasks that ended, computed from its counters)
  current_phase text not null default 'created' check (char_length(current_phase) <= 64),
  progress_percentage numeric(5, 2) not null default 0 check (progress_percentage between 0 and 100),

  -- how many claim shards (job_shards 1..n) share max_parallel_tasks; one when resource limits
  -- are set, because reservations must be summed in one place
  shard_count smallint not null check (shard_count between 1 and 64),

  attempt integer not null default 1 check (attempt >= 1),
  -- set at creation when the job has a rate_limit (its bucket is in job_rate_limits)
  rate_limited boolean not null default false,
  -- its sending group has a rate limit (kept by setGroupRateLimit): claims of other jobs never
  -- look at group buckets
  group_limited boolean not null default false,
  -- deleteJob asked for while tasks ran: the job is deleted when the last one stops
  deletion_requested_at timestamptz,
  constraint jobs_deletion_only_when_stopping check (
    deletion_requested_at is null or status in ('cancelling', 'cancelled')
  ),
  next_attempt_at timestamptz,
  constraint jobs_next_attempt_only_when_retrying check (
    (status = 'retrying') = (next_attempt_at is not null)
  ),
  metadata jsonb not null default '{}'::jsonb check (
    jsonb_typeof(metadata) = 'object' and octet_length(metadata::text) <= 2 * 16384
  ),

  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz
);
comment on table job_service.jobs is 'One batch of work (a job) with its limits and status; its task counters are kept in job_shards and job_shard_ends (job_service.job_counts).';

create index jobs_user_created_idx on job_service.jobs (user_id, created_at desc, id desc);
create index jobs_created_idx on job_service.jobs (created_at desc, id desc);
create index jobs_sending_group_idx on job_service.jobs (sending_group_id);
-- claim order across jobs: highest priority first, then the older job
create index jobs_claimable_idx on job_service.jobs (priority desc, created_at, id)
  where status in ('queued', 'running');

-- ---------------------------------------------------------------------------------------------
-- Counter shards
-- ---------------------------------------------------------------------------------------------
-- A job's task counters are sums over two kinds of rows, so that no single row serialises a busy
-- job and claims never wait for reports:
--   job_shards      shard 0 takes the changes made under the job's row lock (creation, added tasks,
--                   cancel, recovery, caller errors); shards 1..shard_count are claim rows: each owns
--                   a slice of max_parallel_tasks (`capacity`) and counts the tasks started through
--                   it. Only claims lock them, with SKIP LOCKED.
--   job_shard_ends  one per claim shard: the ends of the runs started through it (outcomes,
--                   errors, released reservations, reported usage). Only reports lock them.
-- A claim reads its shard's end row without locking it: the ends it sees can only be fewer than
-- the real ones, so `started - ended_seen <= capacity` (a CHECK on the claim row) keeps the running
-- tasks within max_parallel_tasks exactly, and the same holds for reservations against a budget.
-- Per-row values are deltas or cumulative counts; only the sums mean something.
--
-- Single-column rules of these rows are domains (see "Tasks" below for why): claims and reports
-- update them all the time and never write these columns.
create domain job_service.shard_number as smallint check (value between 0 and 64);
comment on domain job_service.shard_number is
  'A counter shard of a job: 0 its base shard, 1..64 its claim shards.';
create domain job_service.claim_shard_number as smallint check (value between 1 and 64);
comment on domain job_service.claim_shard_number is 'A claim shard of a job (1..64).';
create domain job_service.slot_count as integer check (value >= 0);
comment on domain job_service.slot_count is 'How many of a job''s max_parallel_tasks a claim shard holds.';

create table job_service.job_shards (
  job_id uuid not null references job_service.jobs (id) on delete cascade,
  shard job_service.shard_number not null,
  capacity job_service.slot_count not null,
  -- claim rows: runs started through this shard, and the ends of them its last claim saw
  started integer not null default 0,
  ended_seen integer not null default 0,
  -- deltas: + at creation / added tasks / recovery (shard 0), - per claim
  pending integer not null default 0,
  -- deltas of job-level changes (shard 0)
  failed integer not null default 0,
  cancelled integer not null default 0,
  errors integer not null default 0,
  -- reservations (only the single claim shard of a job with resource_limits): taken by claims,
  -- and the releases the last claim saw
  memory_capacity numeric,
  cpu_capacity numeric,
  reserved_memory numeric not null default 0,
  released_memory_seen numeric not null default 0,
  reserved_cpu numeric not null default 0,
  released_cpu_seen numeric not null default 0,
  -- budget only: the end count at which a claim found the shard's next due task too big for the
  -- budget left while runs of it were running; the claim walk passes the shard by until one ends
  unfit_at_ended integer,
  -- one constraint, as short as it can be written (PostgreSQL parses every CHECK of a table again
  -- for each statement that updates it, and every claim does): parallelism and budgets hold per
  -- shard. Without a budget the capacities are null, which makes their comparisons null, which a
  -- CHECK accepts.
  constraint job_shards_within_capacity check (
    started - ended_seen between 0 and capacity
    and reserved_memory >= released_memory_seen
    and reserved_memory - released_memory_seen <= memory_capacity
    and reserved_cpu >= released_cpu_seen
    and reserved_cpu - released_cpu_seen <= cpu_capacity
  ),
  primary key (job_id, shard)
) with (fillfactor = 50);
comment on table job_service.job_shards is
  'Claim side of a job''s sharded counters: parallelism and budget capacity, starts, job-level deltas.';

create table job_service.job_shard_ends (
  job_id uuid not null references job_service.jobs (id) on delete cascade,
  shard job_service.claim_shard_number not null,
  ended integer not null default 0,
  succeeded integer not null default 0,
  failed integer not null default 0,
  cancelled integer not null default 0,
  -- back to pending (retry, or a stopped run)
  requeued integer not null default 0,
  errors integer not null default 0,
  released_memory numeric not null default 0,
  released_cpu numeric not null default 0,
  -- usage reported by heartbeats for the running tasks of this shard (current, summed)
  usage_memory numeric not null default 0,
  usage_cpu numeric not null default 0,
  -- back-pressure: reported usage is over the job's limits; no claims until it is back within
  over_limit boolean not null default false,
  primary key (job_id, shard)
) with (fillfactor = 50);
comment on table job_service.job_shard_ends is
  'End side of a job''s sharded counters: how the runs started through each claim shard ended.';

create type job_service.task_counts as (
  total integer, pending integer, running integer, succeeded integer, failed integer,
  cancelled integer, errors integer
);
comment on type job_service.task_counts is 'A job''s task counters, summed over its shards.';

-- ---------------------------------------------------------------------------------------------
-- Rate limits (token buckets; see the rate_limits migration)
-- ---------------------------------------------------------------------------------------------
create table job_service.job_rate_limits (
  job_id uuid primary key references job_service.jobs (id) on delete cascade,
  max_per_second numeric not null check (max_per_second between 0.01 and 100000),
  burst integer not null check (burst >= 1),
  tokens numeric not null check (tokens >= 0 and tokens <= burst),
  refilled_at timestamptz not null
);
comment on table job_service.job_rate_limits is
  'A job''s start-rate limit and its token bucket (tokens as of refilled_at).';

create table job_service.sending_group_limits (
  sending_group_id text primary key check (char_length(sending_group_id) between 1 and 128),
  max_per_second numeric not null check (max_per_second between 0.01 and 100000),
  burst integer not null check (burst >= 1),
  tokens numeric not null check (tokens >= 0 and tokens <= burst),
  refilled_at timestamptz not null,
  updated_at timestamptz not null default now()
);
comment on table job_service.sending_group_limits is
  'Start-rate limit shared by every job of a sending group, with its token bucket.';

-- ---------------------------------------------------------------------------------------------
-- Tasks
-- ---------------------------------------------------------------------------------------------
-- Single-column rules of the hot tables are domains: PostgreSQL checks a domain only when a value
-- is written to the column, while it re-reads and re-checks every table CHECK constraint on every
-- update of the row (a claim or a report would pay for all of them).
create domain job_service.json_value as jsonb check (octet_length(value::text) <= 2 * 65536);
comment on domain job_service.json_value is 'A task payload or result (64 KiB compact JSON at the API).';
create domain job_service.memory_mib as numeric check (value between 0 and 1048576);
comment on domain job_service.memory_mib is 'Memory in MiB, as resources, reservations and usage.';
create domain job_service.cpu_cores as numeric check (value between 0 and 1024);
comment on domain job_service.cpu_cores is 'CPU in cores, as resources, reservations and usage.';
create domain job_service.worker_id as text check (char_length(value) between 1 and 128);
comment on domain job_service.worker_id is 'A worker''s id (1..128 characters).';
create domain job_service.lease_ms as integer check (value between 1000 and 3600000);
comment on domain job_service.lease_ms is 'A lease duration in ms.';
create domain job_service.claim_limit as integer check (value between 1 and 1000);
comment on domain job_service.claim_limit is
  'Tasks one claimTasks call may ask for (a worker process claims for all its free slots at once).';
create domain job_service.run_number as integer check (value >= 0);
comment on domain job_service.run_number is 'A task''s attempt number (0 before its first run).';

create table job_service.tasks (
  id bigint generated always as identity primary key,
  job_id uuid not null references job_service.jobs (id) on delete cascade,
  status job_service.task_status not null default 'pending',
  payload job_service.json_value not null,
  -- requested reservation; null: the job's fair share when it has resource limits
  memory job_service.memory_mib,
  cpu job_service.cpu_cores,
  -- number of the current (or last) run; 0 before the first claim
  attempt job_service.run_number not null default 0,
  run_after timestamptz not null default now(),
  -- while running: who holds it, until when, through which shard, with what reservation
  worker_id job_service.worker_id,
  lease_expires_at timestamptz,
  shard smallint,
  reserved_memory job_service.memory_mib,
  reserved_cpu job_service.cpu_cores,
  lease_ms job_service.lease_ms,
  -- its job asked it to stop (cancel, failure, retry): its end uses no attempt
  stop_requested boolean not null default false,
  -- back to pending after a stop: the next run repeats the same attempt number
  repeat_attempt boolean not null default false,
  -- last usage reported by heartbeat while running, and the peak of the task's runs
  usage_memory job_service.memory_mib,
  usage_cpu job_service.cpu_cores,
  constraint tasks_running_has_lease check (
    (status = 'running') = (worker_id is not null and lease_expires_at is not null and shard is not null)
  ),
  result job_service.json_value,
  -- who ended the last run, and which run it was: a repeated report by that worker is a replay
  ended_by text,
  ended_attempt integer,
  peak_memory job_service.memory_mib,
  peak_cpu job_service.cpu_cores,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz
) with (fillfactor = 50);
comment on table job_service.tasks is
  'One unit of work of a job; ids grow in creation order (older task first). Only the primary key '
  'and job_id are indexed, so claims and reports update rows in place (HOT).';

create index tasks_job_idx on job_service.tasks (job_id, id);

-- Pending tasks, the only ones a claim may take. Kept apart from tasks so that a claim scans just
-- what may run (never the finished rows of a big job) and task updates stay heap-only.
create table job_service.task_ready (
  job_id uuid not null references job_service.jobs (id) on delete cascade,
  task_id bigint not null,
  run_after timestamptz not null,
  primary key (job_id, task_id)
);
comment on table job_service.task_ready is
  'The claim queue: exactly the pending tasks, in claim order per job (task id).';

-- ---------------------------------------------------------------------------------------------
-- Errors, events, audit log, idempotency keys
-- ---------------------------------------------------------------------------------------------
create table job_service.job_errors (
  id bigint generated always as identity primary key,
  job_id uuid not null references job_service.jobs (id) on delete cascade,
  -- informational: the task row goes away with its job, and so does this row
  task_id bigint,
  attempt integer not null check (attempt >= 1),
  code text not null check (job_service.is_error_code(code)),
  category job_service.error_category not null,
  message text not null check (octet_length(message) <= 4096),
  stack text check (octet_length(stack) <= 16384),
  request_id text,
  created_at timestamptz not null default now()
);
comment on table job_service.job_errors is 'Every error recorded for a job (caller reports, task failures, lost workers).';
create index job_errors_job_idx on job_service.job_errors (job_id, id desc);

create table job_service.job_events (
  id bigint generated always as identity primary key,
  job_id uuid not null references job_service.jobs (id) on delete cascade,
  type text not null check (type ~ '^[a-z][a-z_.]{1,63}$'),
  from_status job_service.job_status,
  to_status job_service.job_status,
  actor_role text not null,
  actor_id uuid,
  request_id text,
  details jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);
comment on table job_service.job_events is 'The log of a job: creation, status changes, progress, resource alerts.';
create index job_events_job_idx on job_service.job_events (job_id, id desc);

create table job_service.audit_log (
  id bigint generated always as identity primary key,
  -- no foreign key: the audit trail outlives the job
  job_id uuid not null,
  owner_id uuid not null,
  action text not null check (action ~ '^[a-z][a-z_.]{1,63}$'),
  actor_role text not null,
  actor_id uuid,
  request_id text,
  before jsonb,
  after jsonb,
  created_at timestamptz not null default now()
);
comment on table job_service.audit_log is 'Append-only record of every job mutation: who, which request, before and after.';
create index audit_log_job_idx on job_service.audit_log (job_id, id);
create index audit_log_owner_idx on job_service.audit_log (owner_id, id);

create table job_service.idempotency_keys (
  user_id uuid not null,
  key text not null check (char_length(key) between 1 and 128),
  request_hash text not null check (request_hash ~ '^[0-9a-f]{64}$'),
  -- deferred: the key is claimed before the job row it points to is written
  job_id uuid not null references job_service.jobs (id) on delete cascade deferrable initially deferred,
  created_at timestamptz not null default now(),
  primary key (user_id, key)
);
comment on table job_service.idempotency_keys is
  'createJob idempotency keys, scoped to the owner; a key is reusable 24 h after first use.';
create index idempotency_keys_job_idx on job_service.idempotency_keys (job_id);
create index idempotency_keys_created_idx on job_service.idempotency_keys (created_at);

create table job_service.notifications (
  id uuid primary key default gen_random_uuid(),
  type text not null check (type in ('job.failed', 'job.resource_limit_exceeded', 'task.worker_lost')),
  -- no foreign key: a notification outlives the job it is about
  job_id uuid not null,
  user_id uuid not null,
  payload jsonb not null default '{}'::jsonb,
  status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
  attempts integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  last_error text,
  created_at timestamptz not null default now(),
  delivered_at timestamptz
);
comment on table job_service.notifications is
  'Outbox of notifications, written in the same transaction as the event they report.';
create index notifications_due_idx on job_service.notifications (next_attempt_at) where status = 'pending';
