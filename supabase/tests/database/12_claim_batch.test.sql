-- A claim across jobs serves the queued and running jobs without rate limits whose first claim
-- shard has room for what it wants of them in one statement (claim_from_jobs, which also moves the
-- queued ones to running), the others one by one (claim_from_job). Both keep rules 1–5: priority
-- order, parallelism, budgets (a task that does not fit stops its job's claim, and the job is
-- passed by until one of its runs ends), counters; and parity: the two paths start runs with
-- identical task and shard rows.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = job_service, extensions, public;
select plan(19);

create function pg_temp.ctx() returns jsonb
language sql as $$
  select jsonb_build_object('role', 'service_role', 'user_id', null, 'request_id', 'eng12')
$$;

/**
 * A started job; p_big: the tasks (1-based) that ask for 60 MiB / 0.5 core; p_items, when given,
 * the tasks as create_job takes them instead.
 */
create function pg_temp.new_job(p_tasks integer, p_parallel integer, p_priority integer,
                                p_limits jsonb, p_big integer[] default '{}',
                                p_items jsonb default null) returns uuid
language plpgsql as $$
begin
  return (job_service_api.create_job(
    pg_temp.ctx(),
    jsonb_build_object('user_id', '00000000-0000-4000-8000-000000000012', 'product_id', 'eng12',
      'sending_group_id', 'g12', 'priority', p_priority, 'max_parallel_tasks', p_parallel,
      'start', true, 'metadata', '{}'::jsonb, 'resource_limits', p_limits,
      'retry_config', jsonb_build_object('max_attempts', 3, 'retry_interval', 1000,
        'backoff', 'fixed', 'max_retry_interval', 3600000)),
    coalesce(p_items,
      (select jsonb_agg(jsonb_build_object('payload', jsonb_build_object('n', i))
                        || case when i = any (p_big)
                             then '{"resources": {"memory": 60, "cpu": 0.5}}'::jsonb else '{}' end
                        order by i)
       from generate_series(1, p_tasks) i)),
    null, null) #>> '{job,id}')::uuid;
end
$$;

/** Claims across jobs: (job, task, lease as answered) of each claimed task, in the answer's order. */
create function pg_temp.claim(p_worker text, p_limit integer)
returns table (job_id uuid, task_id bigint, ord bigint, lease text)
language sql as $$
  select (t ->> 'job_id')::uuid, (t ->> 'task_id')::bigint, o, t ->> 'lease_expires_at'
  from json_array_elements(
    job_service_api.claim_tasks(pg_temp.ctx(), p_worker, p_limit, null, 60000) -> 'tasks')
    with ordinality as a (t, o)
$$;

-- h: priority 90, 2 at once; b: a budget of 100 MiB / 2 cores over 2 at once (fair share
-- 50 MiB), its second task asks for 60 MiB; c: priority 40, 3 at once; all three running (the
-- batch path).
-- m: priority 10, 1 000 at once (many shards): the general path.
select set_config('test.h', pg_temp.new_job(5, 2, 90, null)::text, true);
select set_config('test.b', pg_temp.new_job(4, 2, 50, '{"max_memory": 100, "max_cpu": 2}', '{2}')::text, true);
select set_config('test.c', pg_temp.new_job(3, 3, 40, null)::text, true);
select set_config('test.m', pg_temp.new_job(3, 1000, 10, null)::text, true);
select job_service.set_request_context(pg_temp.ctx());
update jobs set status = 'running'
where id in (current_setting('test.h')::uuid, current_setting('test.b')::uuid, current_setting('test.c')::uuid);

create temporary table first_claim on commit drop as select * from pg_temp.claim('w', 6);
select results_eq(
  $$ select job_id, count(*)::integer from first_claim group by job_id order by min(ord) $$,
  $$ values (current_setting('test.h')::uuid, 2), (current_setting('test.b')::uuid, 1),
            (current_setting('test.c')::uuid, 3) $$,
  'in priority order, each job within its parallelism, a budgeted job only what fits');
select results_eq(
  $$ select task_id from first_claim order by ord $$,
  $$ (select id from tasks where job_id = current_setting('test.h')::uuid order by id limit 2)
     union all (select id from tasks where job_id = current_setting('test.b')::uuid order by id limit 1)
     union all (select id from tasks where job_id = current_setting('test.c')::uuid order by id limit 3) $$,
  'older tasks first within each job, answered in the walk''s order');
select results_eq(
  $$ select status::text, worker_id::text, shard is not null, lease_expires_at > now(), attempt::integer,
            reserved_memory::numeric, reserved_cpu::numeric
     from tasks where id in (select task_id from first_claim where job_id = current_setting('test.b')::uuid) $$,
  $$ values ('running', 'w', true, true, 1, 50::numeric, 1::numeric) $$,
  'a claimed task runs, leased to the claimer, with its fair share reserved');
select is_empty($$ select * from job_service_api.invariant_violations() $$,
  'counters, shards and queue agree with the task rows');
-- (a claim's statement formats the lease once for all the tasks it starts: each answer's is its row's)
select is_empty(
  $$ select f.task_id from first_claim f join tasks t on t.id = f.task_id
     where f.lease is distinct from job_service.iso(t.lease_expires_at) $$,
  'each claimed task is answered with its own row''s lease (the batch across jobs)');

-- b's next task (60 MiB) does not fit the 50 MiB left: nothing from b, and its shard waits for an
-- end; h and c are full; m (the general path) gives its three
create temporary table second_claim on commit drop as select * from pg_temp.claim('w', 10);
select results_eq(
  $$ select job_id, count(*)::integer from second_claim group by job_id $$,
  $$ values (current_setting('test.m')::uuid, 3) $$,
  'full jobs and a budget that does not fit give nothing; a lower job gets its tasks');
select is((select unfit_at_ended from job_shards
           where job_id = current_setting('test.b')::uuid and shard = 1), 0,
  'the budgeted shard is passed by until one of its runs ends');
select is_empty(
  $$ select f.task_id from second_claim f join tasks t on t.id = f.task_id
     where f.lease is distinct from job_service.iso(t.lease_expires_at) $$,
  'each claimed task is answered with its own row''s lease (one job''s batch)');
select is_empty($$ select * from job_service_api.invariant_violations() $$, 'still no violation');

-- every claimed task completed: every job gets room again; b's big task fits now
select is((select count(*)::integer from json_array_elements(job_service_api.complete_tasks(
            pg_temp.ctx(), 'w',
            (select jsonb_agg(jsonb_build_object('task_id', task_id))
             from (select task_id from first_claim union all select task_id from second_claim) x)))
         where value ->> 'status' = 'succeeded'), 9, 'the claimer completes all nine');
select results_eq(
  $$ select job_id, count(*)::integer from pg_temp.claim('w', 3) group by job_id order by min(ord) $$,
  $$ values (current_setting('test.h')::uuid, 2), (current_setting('test.b')::uuid, 1) $$,
  'a claim of three: two of the highest job, then the big task of b, which fits alone');

-- parity: a claim of one job (the general path) and a claim across jobs (the batch path) start
-- the same runs: two identical budgeted jobs (three of their tasks fit the budget), the first
-- claimed by job id, the second across jobs (the only one above the first with room that fits)
select set_config('test.p', pg_temp.new_job(6, 4, 0, '{"max_memory": 200, "max_cpu": 2}', '{1,4}')::text, true);
select set_config('test.q', pg_temp.new_job(6, 4, 1, '{"max_memory": 200, "max_cpu": 2}', '{1,4}')::text, true);
update jobs set status = 'running' where id = current_setting('test.q')::uuid;
select job_service_api.claim_tasks(pg_temp.ctx(), 'w', 4, current_setting('test.p')::uuid, 60000);
select job_service_api.claim_tasks(pg_temp.ctx(), 'w', 3, null, 60000);
-- (created in one transaction, the jobs share created_at: priorities order them)
create function pg_temp.task_rows(p_job uuid)
returns table (pos bigint, status text, worker text, shard smallint, attempt integer,
               reserved_memory numeric, reserved_cpu numeric)
language sql as $$
  select row_number() over (order by id), status::text, worker_id::text, shard, attempt::integer,
         reserved_memory, reserved_cpu
  from job_service.tasks where job_id = p_job
$$;
select results_eq(
  $$ select * from pg_temp.task_rows(current_setting('test.p')::uuid) order by pos $$,
  $$ select * from pg_temp.task_rows(current_setting('test.q')::uuid) order by pos $$,
  'the two paths start identical runs');
select results_eq(
  $$ select shard, started, ended_seen, pending, reserved_memory, released_memory_seen, reserved_cpu,
            released_cpu_seen, unfit_at_ended
     from job_shards where job_id = current_setting('test.p')::uuid order by shard $$,
  $$ select shard, started, ended_seen, pending, reserved_memory, released_memory_seen, reserved_cpu,
            released_cpu_seen, unfit_at_ended
     from job_shards where job_id = current_setting('test.q')::uuid order by shard $$,
  'and identical shard counters');

-- queued jobs in the batch: r and s (new, queued, above all others) are claimed in one statement,
-- which moves both to running, attributed to the claim's request (audit and events)
select set_config('test.r', pg_temp.new_job(3, 2, 100, null)::text, true);
select set_config('test.s', pg_temp.new_job(3, 2, 99, null)::text, true);
select results_eq(
  $$ select (t ->> 'job_id')::uuid, count(*)::integer
     from json_array_elements(job_service_api.claim_tasks(
       pg_temp.ctx() || '{"request_id": "eng12-start"}', 'w', 4, null, 60000) -> 'tasks') t
     group by 1 order by bool_or((t ->> 'job_id')::uuid = current_setting('test.s')::uuid) $$,
  $$ values (current_setting('test.r')::uuid, 2), (current_setting('test.s')::uuid, 2) $$,
  'two queued jobs give a claim across jobs their room');
select results_eq(
  $$ select j.status::text, j.started_at is not null,
            (select count(*)::integer from job_events e
             where e.job_id = j.id and e.type = 'status_changed' and e.from_status = 'queued'
               and e.to_status = 'running' and e.request_id = 'eng12-start'),
            (select count(*)::integer from audit_log a
             where a.job_id = j.id and a.request_id = 'eng12-start'
               and a.before ->> 'status' = 'queued' and a.after ->> 'status' = 'running')
     from jobs j where j.id in (current_setting('test.r')::uuid, current_setting('test.s')::uuid) $$,
  $$ values ('running', true, 1, 1), ('running', true, 1, 1) $$,
  'both moved to running, with their event and audit rows, by the claim''s request');
select is_empty($$ select * from job_service_api.invariant_violations() $$,
  'no violation after starting queued jobs in a batch');

-- the cut at the claim's limit: u (budget 100 MiB over 2 at once, fair share 50 MiB) runs a 60 MiB
-- task, so the walk expects nothing of its budget room (40 MiB) and asks v for all the claim
-- wants; u's next task asks for only 20 MiB and fits, so the batch finds three for a claim of two
-- and keeps the first two in priority order (u's, then v's oldest)
select set_config('test.u', pg_temp.new_job(3, 2, 100, '{"max_memory": 100, "max_cpu": 2}', '{}',
  '[{"payload": {"n": 1}, "resources": {"memory": 60, "cpu": 0.5}},
    {"payload": {"n": 2}, "resources": {"memory": 20, "cpu": 0.5}},
    {"payload": {"n": 3}}]')::text, true);
select set_config('test.v', pg_temp.new_job(4, 5, 100, null)::text, true);
select job_service_api.claim_tasks(pg_temp.ctx(), 'w', 1, current_setting('test.u')::uuid, 60000);
create temporary table cut_claim on commit drop as select * from pg_temp.claim('w', 2);
select results_eq(
  $$ select job_id, task_id from cut_claim order by ord $$,
  $$ (select job_id, id from tasks where job_id = current_setting('test.u')::uuid order by id
      offset 1 limit 1)
     union all (select job_id, id from tasks where job_id = current_setting('test.v')::uuid
                order by id limit 1) $$,
  'a batch that finds more than the claim asked for keeps the first in priority order');
select is((select count(*)::integer from task_ready where job_id = current_setting('test.v')::uuid),
  3, 'the tasks past the cut stay queued');
select is_empty($$ select * from job_service_api.invariant_violations() $$,
  'no violation after a cut batch');

select * from finish();
rollback;
