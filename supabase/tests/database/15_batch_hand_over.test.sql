-- complete_and_claim's hand-over across jobs: a batch report of several jobs (or of a budgeted
-- one) that carries a claim gives each reported run's slot to its job's next due task, for the jobs
-- that lead the walk, in the walk's order, within the claim's limit and, for a budgeted job, within
-- what its reported runs held; what it does not hand over is claimed the general way.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = job_service, extensions, public;
select plan(19);

create function pg_temp.ctx() returns jsonb
language sql as $$
  select jsonb_build_object('role', 'service_role', 'user_id', null, 'request_id', 'eng15')
$$;

create function pg_temp.new_job(p_priority integer, p_parallel integer, p_tasks jsonb, p_limits jsonb)
returns uuid
language plpgsql as $$
begin
  return (job_service_api.create_job(
    pg_temp.ctx(),
    jsonb_build_object('user_id', '00000000-0000-4000-8000-000000000015', 'product_id', 'eng15',
      'sending_group_id', 'g15', 'priority', p_priority, 'max_parallel_tasks', p_parallel,
      'start', true, 'metadata', '{}'::jsonb, 'resource_limits', p_limits,
      'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000,
        'backoff', 'fixed', 'max_retry_interval', 3600000)),
    p_tasks, null, null) #>> '{job,id}')::uuid;
end
$$;

/** n tasks without resources. */
create function pg_temp.plain_tasks(p_n integer) returns jsonb
language sql as $$
  select jsonb_agg(jsonb_build_object('payload', jsonb_build_object('n', g)) order by g)
  from generate_series(1, p_n) g
$$;

/** The job's n-th task id. */
create function pg_temp.task(p_job text, p_n integer) returns bigint
language sql as $$
  select id from job_service.tasks where job_id = current_setting(p_job)::uuid order by id
  offset p_n - 1 limit 1
$$;

/** A claimed task as claim_tasks writes it (task_json), from its row. */
create function pg_temp.as_claimed(p_task bigint) returns jsonb
language sql as $$
  select job_service.task_json(id, job_id, payload, attempt, job_service.iso(lease_expires_at),
    reserved_memory, reserved_cpu, memory, cpu)::jsonb
  from job_service.tasks where id = p_task
$$;

/** complete_and_claim of the given tasks with a claim of p_limit across jobs: what it claimed. */
create function pg_temp.batch(p_worker text, p_tasks bigint[], p_limit integer) returns jsonb
language sql as $$
  select job_service_api.complete_and_claim(pg_temp.ctx(), p_worker,
    (select jsonb_agg(jsonb_build_object('task_id', t, 'result', jsonb_build_object('ok', t)) order by n)
     from unnest(p_tasks) with ordinality as u (t, n)),
    p_limit, null, 60000)::jsonb -> 'claimed'
$$;

/** A job's claim and end rows (its one shard): started, ended, succeeded, requeued. */
create function pg_temp.counts(p_job text) returns text
language sql as $$
  select (s.started, e.ended, e.succeeded, e.requeued)::text
  from job_service.job_shards s join job_service.job_shard_ends e using (job_id, shard)
  where job_id = current_setting(p_job)::uuid
$$;

-- the report is written three times (complete_tasks, and complete_and_claim's batch paths of one
-- job and of several): the same statement up to the end rows
select is((select array_agg(distinct regexp_replace(m[1], '\s+', ' ', 'g'))
           from pg_proc p, regexp_matches(p.prosrc, '(with items as \(.*?returning held\.\*\s*\))', 'g') m
           where p.oid in ('job_service_api.complete_and_claim(jsonb, text, jsonb, integer, uuid, integer)'::regprocedure,
                           'job_service_api.complete_tasks(jsonb, text, jsonb)'::regprocedure)),
  (select array[regexp_replace(substring(prosrc from 'with items as \(.*?returning held\.\*\s*\)'), '\s+', ' ', 'g')]
   from pg_proc where oid = 'job_service_api.complete_tasks(jsonb, text, jsonb)'::regprocedure),
  'every batch report of complete_and_claim is complete_tasks'' batch report, up to the end rows');
select is((select count(*)::integer
           from pg_proc p, regexp_matches(p.prosrc, 'with items as \(', 'g') m
           where p.oid = 'job_service_api.complete_and_claim(jsonb, text, jsonb, integer, uuid, integer)'::regprocedure),
  2, 'complete_and_claim has two batch reports (one job, several jobs)');

-- two plain jobs at their limits (two runs each)
select set_config('test.a', pg_temp.new_job(60, 2, pg_temp.plain_tasks(6), null)::text, true);
select set_config('test.b', pg_temp.new_job(50, 2, pg_temp.plain_tasks(6), null)::text, true);
select is(json_array_length(job_service_api.claim_tasks(pg_temp.ctx(), 'w1', 4, null, 60000) -> 'tasks'), 4,
  'w1 claims four tasks: two of each job, their limits');
select is(pg_temp.batch('w1', array[pg_temp.task('test.b', 1), pg_temp.task('test.a', 1),
                                    pg_temp.task('test.b', 2), pg_temp.task('test.a', 2)], 4),
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.a', 3)), pg_temp.as_claimed(pg_temp.task('test.a', 4)),
                    pg_temp.as_claimed(pg_temp.task('test.b', 3)), pg_temp.as_claimed(pg_temp.task('test.b', 4))),
  'each job''s two slots go to its next two tasks, in the walk''s order (the higher priority first)');
select is(array[pg_temp.counts('test.a'), pg_temp.counts('test.b')],
  array[(2, 0, 2, -2)::text, (2, 0, 2, -2)::text],
  'the starts are counted on the end rows with the ends, the claim rows as the first claim left them');

-- the claim's limit cuts in the walk's order: the lower job's second slot is not handed over
select is(pg_temp.batch('w1', array[pg_temp.task('test.a', 3), pg_temp.task('test.a', 4),
                                    pg_temp.task('test.b', 3), pg_temp.task('test.b', 4)], 3),
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.a', 5)), pg_temp.as_claimed(pg_temp.task('test.a', 6)),
                    pg_temp.as_claimed(pg_temp.task('test.b', 5))),
  'a claim of three: both of the first job''s slots, one of the second''s');
select is(pg_temp.counts('test.b'), (2, 1, 4, -3)::text,
  'the second job''s run that handed nothing over counts as an end');

-- a job before them with room and a due task: they do not hand over, and the general claim
-- serves that job first
select set_config('test.h', pg_temp.new_job(90, 2, pg_temp.plain_tasks(2), null)::text, true);
select is(pg_temp.batch('w1', array[pg_temp.task('test.a', 5), pg_temp.task('test.b', 5)], 3),
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.h', 1)), pg_temp.as_claimed(pg_temp.task('test.h', 2)),
                    pg_temp.as_claimed(pg_temp.task('test.b', 6))),
  'a job of higher priority with room goes first; then the walk''s next job with a due task');
select is(array[pg_temp.counts('test.a'), pg_temp.counts('test.b')],
  array[(2, 1, 5, -4)::text, (3, 2, 5, -3)::text],
  'nothing was handed over: the ends counted as ends, the general claim''s start on the claim row');

-- a budgeted job (fair share 256 MiB and 0.5 CPU) and a plain one of one slot, at the head of the
-- walk
select set_config('test.k', pg_temp.new_job(100, 4, '[{"payload": {"n": 1}}, {"payload": {"n": 2}},
  {"payload": {"n": 3}, "resources": {"memory": 300, "cpu": 0.5}}, {"payload": {"n": 4}},
  {"payload": {"n": 5}}, {"payload": {"n": 6}}, {"payload": {"n": 7}, "resources": {"memory": 600, "cpu": 0.5}}]',
  '{"max_memory": 1024, "max_cpu": 2}')::text, true);
select set_config('test.p', pg_temp.new_job(99, 1, pg_temp.plain_tasks(3), null)::text, true);
select is(json_array_length(job_service_api.claim_tasks(pg_temp.ctx(), 'w2', 4, null, 60000) -> 'tasks'), 4,
  'w2 claims the budgeted job''s first three tasks (256 + 256 + 300 MiB: a fourth would not fit) and the plain job''s first');
-- the report gives back 556 MiB (256 + 300): with the 212 left, 768 MiB for the job's next tasks,
-- its two runs' slots and the slot that was free
select is(pg_temp.batch('w2', array[pg_temp.task('test.k', 1), pg_temp.task('test.p', 1),
                                    pg_temp.task('test.k', 3)], 4),
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.k', 4)), pg_temp.as_claimed(pg_temp.task('test.k', 5)),
                    pg_temp.as_claimed(pg_temp.task('test.k', 6)), pg_temp.as_claimed(pg_temp.task('test.p', 2))),
  'the budgeted job takes its two runs'' slots and its free one, as far as its budget allows; then the plain job');
select is((select array[reserved_memory, reserved_cpu] from tasks where id = pg_temp.task('test.k', 4)),
  array[256, 0.5]::numeric[], 'a task handed over reserves its fair share, as a claim does');
select is((select array[s.started, e.ended, s.reserved_memory, e.released_memory, s.reserved_cpu, e.released_cpu]
           from job_shards s join job_shard_ends e using (job_id, shard)
           where job_id = current_setting('test.k')::uuid),
  array[4, 0, 1580, 556, 3, 1]::numeric[],
  'the claim row counts the start beyond the slots and the reservations, the end row the releases: 1 024 MiB and 2 CPU held');
-- the next report gives back 256 MiB: the job's next task (600 MiB) does not fit
select is(pg_temp.batch('w2', array[pg_temp.task('test.k', 4), pg_temp.task('test.p', 2)], 2),
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.p', 3))),
  'a task that does not fit is not started; the plain job''s slot is handed over, and nothing else is left');
select is((select array[s.unfit_at_ended, e.ended] from job_shards s join job_shard_ends e using (job_id, shard)
           where job_id = current_setting('test.k')::uuid),
  array[1, 1], 'the budgeted job is passed by until one of its runs ends, as a claim marks it');

-- a plain job with a slot free before the report: the hand-over fills it too, counted on its claim
-- row, before the walk's next job
select set_config('test.x', pg_temp.new_job(20, 2, pg_temp.plain_tasks(4), null)::text, true);
select set_config('test.y', pg_temp.new_job(15, 2, pg_temp.plain_tasks(4), null)::text, true);
select is(json_array_length(job_service_api.claim_tasks(pg_temp.ctx(), 'w3', 3, null, 60000) -> 'tasks'), 3,
  'w3 claims the first job''s two tasks and one of the second''s');
select is(pg_temp.batch('w3', array[pg_temp.task('test.x', 1), pg_temp.task('test.y', 1)], 3),
  jsonb_build_array(pg_temp.as_claimed(pg_temp.task('test.x', 3)), pg_temp.as_claimed(pg_temp.task('test.y', 2)),
                    pg_temp.as_claimed(pg_temp.task('test.y', 3))),
  'each run''s slot goes to its job''s next task, and the second job''s free slot to its task after that');
select is(pg_temp.counts('test.y'), (2, 0, 1, -1)::text,
  'the start in the free slot counted on the claim row, the hand-over on the end row');

select is_empty($$ select * from job_service_api.invariant_violations(
    array[current_setting('test.a')::uuid, current_setting('test.b')::uuid, current_setting('test.h')::uuid,
          current_setting('test.k')::uuid, current_setting('test.p')::uuid, current_setting('test.x')::uuid,
          current_setting('test.y')::uuid]) $$,
  'the counters, reservations and queue equal the rows');

select * from finish();
rollback;
