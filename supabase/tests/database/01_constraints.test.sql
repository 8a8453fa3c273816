-- Every range of the HTTP contract is also a database constraint: a writer that bypasses the API
-- still cannot store what the API refuses.
begin;
create extension if not exists pgtap with schema extensions;
-- the service's own schema first: the tests name its tables and types unqualified
set local search_path = job_service, extensions, public;
select plan(61);

-- a valid job to start from
create temporary table base_job as
select gen_random_uuid() as id, gen_random_uuid() as user_id;

create function pg_temp.job(overrides jsonb) returns void language plpgsql as $$
declare
  v jsonb := jsonb_build_object(
    'product_id', 'p', 'sending_group_id', 'g', 'status', 'queued', 'priority', 50,
    'max_parallel_tasks', 10, 'max_attempts', 3, 'retry_interval_ms', 60000,
    'retry_on_errors', '{TIMEOUT}', 'retry_backoff', 'fixed', 'max_retry_interval_ms', 3600000,
    'current_phase', 'created', 'progress_percentage', 0, 'metadata', '{}'::jsonb
  ) || overrides;
begin
  insert into job_service.jobs (user_id, product_id, sending_group_id, status, priority, max_parallel_tasks,
    max_attempts, retry_interval_ms, retry_on_errors, retry_backoff, max_retry_interval_ms,
    max_memory, max_cpu, current_phase, progress_percentage, metadata, shard_count, next_attempt_at)
  values (gen_random_uuid(), v ->> 'product_id', v ->> 'sending_group_id', (v ->> 'status')::job_status,
    (v ->> 'priority')::int, (v ->> 'max_parallel_tasks')::int, (v ->> 'max_attempts')::int,
    (v ->> 'retry_interval_ms')::int, (v ->> 'retry_on_errors')::text[], v ->> 'retry_backoff',
    (v ->> 'max_retry_interval_ms')::int, (v ->> 'max_memory')::numeric, (v ->> 'max_cpu')::numeric,
    v ->> 'current_phase', (v ->> 'progress_percentage')::numeric, v -> 'metadata',
    coalesce((v ->> 'shard_count')::int, 1), (v ->> 'next_attempt_at')::timestamptz);
end $$;

select lives_ok($$ select pg_temp.job('{}') $$, 'a valid job is accepted');
select lives_ok($$ select pg_temp.job('{"max_memory": 1, "max_cpu": 0.001, "priority": 0, "max_parallel_tasks": 1000}') $$,
  'limits at their bounds are accepted');

select throws_ok($$ select pg_temp.job('{"product_id": ""}') $$, '23514', null, 'product_id empty');
select throws_ok(format($$ select pg_temp.job('{"product_id": "%s"}') $$, repeat('x', 129)), '23514', null, 'product_id 129 chars');
select throws_ok($$ select pg_temp.job('{"sending_group_id": ""}') $$, '23514', null, 'sending_group_id empty');
select throws_ok(format($$ select pg_temp.job('{"sending_group_id": "%s"}') $$, repeat('x', 129)), '23514', null, 'sending_group_id 129 chars');
select throws_ok($$ select pg_temp.job('{"priority": -1}') $$, '23514', null, 'priority below 0');
select throws_ok($$ select pg_temp.job('{"priority": 101}') $$, '23514', null, 'priority above 100');
select throws_ok($$ select pg_temp.job('{"max_parallel_tasks": 0}') $$, '23514', null, 'max_parallel_tasks 0');
select throws_ok($$ select pg_temp.job('{"max_parallel_tasks": 1001}') $$, '23514', null, 'max_parallel_tasks 1001');
select throws_ok($$ select pg_temp.job('{"max_attempts": 0}') $$, '23514', null, 'max_attempts 0');
select throws_ok($$ select pg_temp.job('{"max_attempts": 101}') $$, '23514', null, 'max_attempts 101');
select throws_ok($$ select pg_temp.job('{"retry_interval_ms": -1}') $$, '23514', null, 'retry_interval negative');
select throws_ok($$ select pg_temp.job('{"retry_interval_ms": 86400001, "max_retry_interval_ms": 90000000}') $$, '23514', null, 'retry_interval over a day');
select throws_ok($$ select pg_temp.job('{"retry_on_errors": "{timeout}"}') $$, '23514', null, 'retry_on_errors lower case code');
select throws_ok($$ select pg_temp.job('{"retry_on_errors": "{A}"}') $$, '23514', null, 'retry_on_errors one-letter code');
select throws_ok(format($$ select pg_temp.job('{"retry_on_errors": "{%s}"}') $$,
  (select string_agg('CODE_' || i, ',') from generate_series(1, 51) i)), '23514', null, 'retry_on_errors 51 codes');
select throws_ok($$ select pg_temp.job('{"retry_on_errors": "{TIMEOUT,NULL}"}') $$, '23514', null, 'retry_on_errors with a null');
select throws_ok($$ select pg_temp.job('{"retry_backoff": "linear"}') $$, '23514', null, 'unknown backoff');
select throws_ok($$ select pg_temp.job('{"max_retry_interval_ms": 59999}') $$, '23514', null, 'max_retry_interval below retry_interval');
select throws_ok($$ select pg_temp.job('{"max_retry_interval_ms": 604800001}') $$, '23514', null, 'max_retry_interval over a week');
select throws_ok($$ select pg_temp.job('{"max_memory": 10}') $$, '23514', null, 'max_memory without max_cpu');
select throws_ok($$ select pg_temp.job('{"max_cpu": 1}') $$, '23514', null, 'max_cpu without max_memory');
select throws_ok($$ select pg_temp.job('{"max_memory": 0, "max_cpu": 1}') $$, '23514', null, 'max_memory 0');
select throws_ok($$ select pg_temp.job('{"max_memory": 1048577, "max_cpu": 1}') $$, '23514', null, 'max_memory too big');
select throws_ok($$ select pg_temp.job('{"max_memory": 1, "max_cpu": 0.0009}') $$, '23514', null, 'max_cpu too small');
select throws_ok($$ select pg_temp.job('{"max_memory": 1, "max_cpu": 1025}') $$, '23514', null, 'max_cpu too big');
select throws_ok(format($$ select pg_temp.job('{"current_phase": "%s"}') $$, repeat('x', 65)), '23514', null, 'current_phase 65 chars');
select throws_ok($$ select pg_temp.job('{"progress_percentage": 100.01}') $$, '23514', null, 'progress above 100');
select throws_ok($$ select pg_temp.job('{"progress_percentage": -0.01}') $$, '23514', null, 'progress below 0');
select throws_ok($$ select pg_temp.job('{"shard_count": 0}') $$, '23514', null, 'shard_count 0');
select throws_ok($$ select pg_temp.job('{"shard_count": 65}') $$, '23514', null, 'shard_count 65');
select throws_ok($$ select pg_temp.job('{"next_attempt_at": "2030-01-01T00:00:00Z"}') $$, '23514', null, 'next_attempt_at while not retrying');
select throws_ok($$ select pg_temp.job('{"status": "retrying"}') $$, 'JS409', null, 'a job is never created retrying');
select pg_temp.job('{"product_id": "to-retry", "status": "queued"}');
update jobs set status = 'running' where product_id = 'to-retry';
insert into job_errors (job_id, attempt, code, category, message) select id, 1, 'TIMEOUT', 'transient', 'slow' from jobs where product_id = 'to-retry';
select throws_ok($$ update jobs set status = 'retrying' where product_id = 'to-retry' $$, '23514', null,
  'retrying without next_attempt_at');
select throws_ok($$ select pg_temp.job('{"metadata": [1]}') $$, '23514', null, 'metadata not an object');
select throws_ok(format($$ select pg_temp.job('{"metadata": {"a": "%s"}}') $$, repeat('x', 32768)), '23514', null, 'metadata too big');

-- tasks
select pg_temp.job('{"product_id": "task-parent"}');
select throws_ok($$ insert into job_service.tasks (job_id, payload) values (gen_random_uuid(), '1') $$,
  '23503', null, 'a task needs an existing job');
select throws_ok(format($$ insert into job_service.tasks (job_id, payload) select id, to_jsonb(repeat('x', 131073)) from jobs where product_id = 'task-parent' $$),
  '23514', null, 'payload too big');
select throws_ok($$ insert into job_service.tasks (job_id, payload, memory) select id, '1', -1 from jobs where product_id = 'task-parent' $$,
  '23514', null, 'negative memory');
select throws_ok($$ insert into job_service.tasks (job_id, payload, cpu) select id, '1', 1025 from jobs where product_id = 'task-parent' $$,
  '23514', null, 'cpu above 1024');
select throws_ok($$ insert into job_service.tasks (job_id, payload, status) select id, '1', 'running' from jobs where product_id = 'task-parent' $$,
  '23514', null, 'a running task needs a worker and a lease');

-- shards: parallelism and resource budgets are constraints on the rows that count them
insert into job_shards (job_id, shard, capacity, memory_capacity, cpu_capacity)
select id, 1, 4, 100, 1 from jobs where product_id = 'task-parent';
select throws_ok($$ update job_shards set started = 5 where shard = 1 and job_id = (select id from jobs where product_id = 'task-parent') $$,
  '23514', null, 'a shard never starts more tasks than its capacity beyond the ends it saw');
select lives_ok($$ update job_shards set started = 4 where shard = 1 and job_id = (select id from jobs where product_id = 'task-parent') $$,
  'a shard may run exactly its capacity');
select throws_ok($$ update job_shards set reserved_memory = 100.5 where shard = 1 and job_id = (select id from jobs where product_id = 'task-parent') $$,
  '23514', null, 'reservations never exceed the memory budget');
select throws_ok($$ update job_shards set reserved_cpu = 1.01 where shard = 1 and job_id = (select id from jobs where product_id = 'task-parent') $$,
  '23514', null, 'reservations never exceed the cpu budget');
select throws_ok($$ update job_shards set ended_seen = 5 where shard = 1 and job_id = (select id from jobs where product_id = 'task-parent') $$,
  '23514', null, 'a shard never sees more ends than it started');
select throws_ok($$ update job_shards set released_memory_seen = 1 where shard = 1 and job_id = (select id from jobs where product_id = 'task-parent') $$,
  '23514', null, 'a shard never sees more released than it reserved');
select throws_ok($$ insert into job_shards (job_id, shard, capacity) select id, 65, 4 from jobs where product_id = 'task-parent' $$,
  '23514', null, 'claim shards are numbered up to 64');
select throws_ok($$ insert into job_shards (job_id, shard, capacity) select id, 2, -1 from jobs where product_id = 'task-parent' $$,
  '23514', null, 'a shard''s capacity is never negative');
select throws_ok($$ insert into job_shard_ends (job_id, shard) select id, 0 from jobs where product_id = 'task-parent' $$,
  '23514', null, 'end rows belong to claim shards (1..64)');

-- errors, events, idempotency keys
select throws_ok($$ insert into job_service.job_errors (job_id, attempt, code, category, message) select id, 1, 'bad code', 'unknown', 'm' from jobs where product_id = 'task-parent' $$,
  '23514', null, 'error code pattern');
select throws_ok(format($$ insert into job_service.job_errors (job_id, attempt, code, category, message) select id, 1, 'TIMEOUT', 'transient', '%s' from jobs where product_id = 'task-parent' $$, repeat('m', 4097)),
  '23514', null, 'error message over 4 KiB');
select throws_ok(format($$ insert into job_service.job_errors (job_id, attempt, code, category, message, stack) select id, 1, 'TIMEOUT', 'transient', 'm', '%s' from jobs where product_id = 'task-parent' $$, repeat('s', 16385)),
  '23514', null, 'stack over 16 KiB');
select throws_ok($$ insert into job_service.job_errors (job_id, attempt, code, category, message) select id, 1, 'TIMEOUT', 'sometimes', 'm' from jobs where product_id = 'task-parent' $$,
  '22P02', null, 'unknown error category');
select throws_ok(format($$ insert into job_service.idempotency_keys (user_id, key, request_hash, job_id) select user_id, '%s', repeat('0', 64), id from jobs where product_id = 'task-parent' $$, repeat('k', 129)),
  '23514', null, 'idempotency key over 128 chars');
select throws_ok($$ insert into job_service.error_catalogue (code, category, retryable, description) values ('lower', 'transient', true, 'x') $$,
  '23514', null, 'catalogue codes follow the pattern');

-- limits are fixed at creation: the shards were split from them and claims read them unlocked
select throws_ok($$ update job_service.jobs set max_parallel_tasks = max_parallel_tasks + 1 where product_id = 'task-parent' $$,
  '23514', 'JOB_LIMITS_FIXED', 'max_parallel_tasks cannot change');
select throws_ok($$ update job_service.jobs set max_memory = 512, max_cpu = 1 where product_id = 'task-parent' $$,
  '23514', 'JOB_LIMITS_FIXED', 'resource limits cannot change');
select throws_ok($$ update job_service.jobs set shard_count = shard_count + 1 where product_id = 'task-parent' $$,
  '23514', 'JOB_LIMITS_FIXED', 'the shard count cannot change');
select lives_ok($$ update job_service.jobs set priority = 60, max_parallel_tasks = max_parallel_tasks where product_id = 'task-parent' $$,
  'other fields change, and a limit set to its own value is no change');

select * from finish();
rollback;
