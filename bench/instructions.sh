#!/usr/bin/env bash
# bench/instructions.sh [LIMIT] — CPU instructions the database spends per claim-and-complete cycle
# of this checkout's engine, counted by valgrind's callgrind on a single-user PostgreSQL backend.
#
# Wall-clock figures on a shared 2-CPU machine move by up to 2x between runs; instruction counts do
# not (±3 % here), so a change to the engine's SQL worth a few per cent can be seen. Each cycle is
# what a one-at-a-time worker makes the database do: claim_tasks (LIMIT tasks, default 1, across
# jobs) then complete_tasks of what it got, one transaction each (as from a worker: in one
# transaction the completion would also pay a foreign-key check per task row that the claim
# updated), on one job of 5 000 tasks. Two
# runs of different lengths from the same snapshot; their difference divided by the extra cycles
# leaves out start-up and first-call costs. To compare with another commit, run it in a worktree of
# that commit. Needs valgrind and PostgreSQL's server binaries; runs as root (the cluster as user
# postgres) or as the postgres user; uses a throw-away cluster on PORT (default 5433), deleted at the
# end unless KEEP=1 (then `callgrind_annotate --inclusive=yes` on its callgrind files).
#
# JOBS=n spreads the tasks over n jobs of equal priority (with MAX_PARALLEL=4, a claim of 40 takes
# from 10 jobs, as in T2); each report is then made from the claim's answer. A third run, without
# valgrind and with pg_stat_statements, counts the SQL statements (nested in the entry points) and
# the WAL bytes of the same N2 - N1 cycles; all three figures are also given per task. TOP=1 also
# lists the 15 nested statements that took the most time in that run (calls, ms, rows, query).
# PROFILE=1 adds a fourth run, with plpgsql_check's profiler: the lines of the engine's PL/pgSQL
# functions that took at least 2 % of the cycle, each with how often it ran and its time per cycle
# (a line's time includes the functions it calls; the profiler's own cost inflates lines that run
# often, so compare lines of the same run).
# COMBINED=1 measures the cycle of a worker whose reports carry the next claim: one claim, then
# complete_and_claim per cycle (one transaction per cycle instead of two).
# T2=1 measures T2's steady state (implies COMBINED): T2's jobs (100 × 200 tasks, five priorities,
# max_parallel_tasks 4, a budget on every other job with every fourth of its tasks bigger), a first
# claim of 320 (the batched worker's local queue at C = 32), then per cycle the LIMIT oldest runs
# reported with a claim of LIMIT: claims walk past the jobs that are full, as in the benchmark.
# FLOOR=1 (with MAX_PARALLEL=4: a job of one shard, LIMIT 1) measures the floor of the one-task
# cycle: only the rows it must change (the job row's lock twice, the task row twice, the queue row,
# the claim shard and the end row) as bare statements in the DO block, run as the functions' owner;
# FLOOR=walk adds a walk over the jobs in priority order that locks a shard with room.
# FLOOR=lean measures a leaner layout's floor, for comparison: no queue table (the claim takes the
# task row itself through a partial index of pending tasks, made for this run only) and no job row
# locks; the task row twice, the claim shard and the end row, four bare statements a cycle.
set -euo pipefail

LIMIT=${1:-1}
# the job's resource_limits (JSON), e.g. '{"max_memory":100000,"max_cpu":1000}' for a budgeted job
RESOURCE_LIMITS=${RESOURCE_LIMITS:-null}
# the job's max_parallel_tasks, e.g. 4 for a job of T2 (one claim shard, less room than a claim of 10)
MAX_PARALLEL=${MAX_PARALLEL:-1000}
JOBS=${JOBS:-1}
if [ -n "${T2:-}" ]; then COMBINED=1 JOBS=100 MAX_PARALLEL=4; fi
ROOM=$((MAX_PARALLEL * JOBS))
TAKE=$((LIMIT < ROOM ? LIMIT : ROOM)) # tasks a claim gets
# fewer cycles for big claims, so that the runs stay short (the difference is what counts)
if [ "$TAKE" -ge 50 ]; then N1=${N1:-5} N2=${N2:-45}; else N1=${N1:-50} N2=${N2:-450}; fi
# tasks per job: enough for N2 cycles (and at least 5 000 in all)
PER_JOB=$(((N2 * TAKE + JOBS - 1) / JOBS + MAX_PARALLEL))
[ $((PER_JOB * JOBS)) -ge 5000 ] || PER_JOB=$(((5000 + JOBS - 1) / JOBS))
PORT=${PORT:-5433}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DENO=${DENO:-$(command -v deno || echo "$ROOT/.tools/node_modules/.bin/deno")}
DB=engine
# shellcheck source=bench/lib/callgrind_cluster.sh
. "$ROOT/bench/lib/callgrind_cluster.sh"

cluster_start engine-instructions
URL="postgresql://postgres@127.0.0.1:$PORT/engine"
(cd "$ROOT" && "$DENO" eval \
  "import { resetDatabase } from './scripts/lib/database.ts'; await resetDatabase('$URL');")
CTX='{"role":"service_role","user_id":null,"request_id":"instructions"}'
if [ -n "${T2:-}" ]; then
  # bench/lib/ours.ts t2Jobs
  psql "$URL" -qAt >/dev/null <<SQL
select job_service_api.create_job('$CTX',
  jsonb_build_object('user_id', '00000000-0000-4000-8000-00000000be9c', 'product_id', 'bench',
    'sending_group_id', 'bench', 'priority', 10 + (j % 5) * 20, 'max_parallel_tasks', 4,
    'retry_config', '{"max_attempts":3,"retry_interval":1000,"backoff":"fixed",
                      "max_retry_interval":3600000}'::jsonb,
    'resource_limits', case when j % 2 = 0 then '{"max_memory":1024,"max_cpu":2}'::jsonb end,
    'start', true, 'metadata', '{}'::jsonb),
  (select jsonb_agg(jsonb_build_object('payload', jsonb_build_object('n', j * 200 + g))
                    || case when j % 2 = 0 and g % 4 = 0
                         then '{"resources":{"memory":300,"cpu":0.5}}'::jsonb else '{}' end
                    order by g)
   from generate_series(0, 199) g), null, null)
from generate_series(0, 99) j;
SQL
else
psql "$URL" -qAt >/dev/null <<SQL
select job_service_api.create_job('$CTX',
  '{"user_id":"00000000-0000-4000-8000-00000000be9c","product_id":"bench",
    "sending_group_id":"bench","priority":50,"max_parallel_tasks":$MAX_PARALLEL,
    "retry_config":{"max_attempts":3,"retry_interval":1000,"backoff":"fixed",
                    "max_retry_interval":3600000},
    "resource_limits":$RESOURCE_LIMITS,"start":true,"metadata":{}}',
  (select jsonb_agg(jsonb_build_object('payload', jsonb_build_object('n', g)))
   from generate_series(1, $PER_JOB) g), null, null)
from generate_series(1, $JOBS);
SQL
fi
if [ "${FLOOR:-}" = lean ]; then
  psql "$URL" -qAt >/dev/null -c \
    "create index tasks_pending_idx on job_service.tasks (job_id, id) where status = 'pending'"
fi
psql "$URL" -qAt >/dev/null <<SQL
vacuum analyze job_service.jobs, job_service.job_shards, job_service.job_shard_ends, job_service.tasks, job_service.task_ready;
checkpoint;
SQL
cluster_snapshot

# The DO block of `cycles` cycles; with `stats`, pg_stat_statements and the WAL position are read
# after the first N1 cycles and at the end, and the differences raised as a warning; with
# `profile`, plpgsql_check's profile of the same cycles is raised as warnings (PROF lines).
cycles_sql() {
  local cycles=$1 stats="" profile=""
  [ "${2:-}" = stats ] && stats=1
  [ "${2:-}" = profile ] && profile=1
  local mark="" report
  if [ -n "$stats" ]; then
    mark="if i = $N1 + 1 then perform pg_stat_statements_reset(); wal := pg_current_wal_lsn(); end if;"
  elif [ -n "$profile" ]; then
    mark="if i = $N1 + 1 then perform plpgsql_profiler_reset_all(); end if;"
  fi
  if [ "$JOBS" = 1 ]; then
    report="reports[i]"
  else
    # the claimed tasks, from the answer (several jobs: not in id order)
    report="(select '[' || string_agg(format('{\"task_id\": %s}', t ->> 'task_id'), ', ') || ']'
               from json_array_elements(answer::json -> 'tasks') t)"
  fi
  local loop
  if [ "${FLOOR:-}" = lean ]; then
    local claim="update job_service.tasks t set status = 'running', worker_id = 'w', lease_ms = 300000,
      lease_expires_at = now() + interval '5 minutes', shard = 1, attempt = t.attempt + 1,
      started_at = now()
    where t.id = (
      select id from job_service.tasks where job_id = jid and status = 'pending' and run_after <= now()
      order by id limit 1 for update skip locked)
    returning t.id into tid;
    update job_service.job_shards set started = started + 1, ended_seen = ended_seen + 1,
      pending = pending - 1
    where job_id = jid and shard = 1;"
    loop="select id into jid from job_service.jobs limit 1;
  $claim
  commit;
  for i in 1..$cycles loop
    $mark
    update job_service.tasks set status = 'succeeded', worker_id = null, lease_expires_at = null,
      shard = null, finished_at = now(), ended_by = 'w', ended_attempt = attempt
    where id = tid and status = 'running';
    update job_service.job_shard_ends set ended = ended + 1, succeeded = succeeded + 1
    where job_id = jid and shard = 1;
    $claim
    commit;
  end loop;"
  elif [ -n "${FLOOR:-}" ]; then
    # the report of the last task, then the claim of the next, one transaction per cycle
    local claim="with taken as (
      delete from job_service.task_ready where ctid = (
        select ctid from job_service.task_ready where job_id = jid and run_after <= now()
        order by task_id limit 1 for update skip locked)
      returning task_id
    ), runs as (
      update job_service.tasks t set status = 'running', worker_id = 'w', lease_ms = 300000,
        lease_expires_at = now() + interval '5 minutes', shard = 1, attempt = t.attempt + 1,
        started_at = now()
      from taken n where t.id = n.task_id returning t.id
    ), counted as (
      update job_service.job_shards set started = started + 1, ended_seen = ended_seen + 1,
        pending = pending - 1
      where job_id = jid and shard = 1
    )
    select id into tid from runs;"
    if [ "$FLOOR" = walk ]; then
      claim="select x.job_id into jid from job_service.jobs j cross join lateral (
        select s.job_id from job_service.job_shards s
        join job_service.job_shard_ends e on e.job_id = s.job_id and e.shard = s.shard
        where s.job_id = j.id and s.started - e.ended < s.capacity
          and exists (select from job_service.task_ready r
                      where r.job_id = s.job_id and r.run_after <= now())
        order by s.shard limit 1 for update of s skip locked) x
      where j.status in ('queued', 'running') order by j.priority desc, j.created_at, j.id limit 1;
    $claim"
    fi
    loop="select id into jid from job_service.jobs limit 1;
  $claim
  commit;
  for i in 1..$cycles loop
    $mark
    perform 1 from job_service.jobs where id = jid for key share;
    update job_service.tasks set status = 'succeeded', worker_id = null, lease_expires_at = null,
      shard = null, finished_at = now(), ended_by = 'w', ended_attempt = attempt
    where id = tid and status = 'running';
    update job_service.job_shard_ends set ended = ended + 1, succeeded = succeeded + 1
    where job_id = jid and shard = 1;
    perform 1 from job_service.jobs where id = jid for key share;
    $claim
    commit;
  end loop;"
  elif [ -n "${T2:-}" ]; then
    # the oldest LIMIT runs reported, with a claim of LIMIT; the runs held in claim order
    loop="answer := job_service_api.claim_tasks(ctx, 'worker', 320, null, 300000)::text;
  held := array(select (t ->> 'task_id')::bigint from json_array_elements(answer::json -> 'tasks') t);
  commit;
  for i in 1..$cycles loop
    $mark
    answer := job_service_api.complete_and_claim(ctx, 'worker',
      (select '[' || string_agg(format('{\"task_id\": %s}', x), ', ') || ']'
       from unnest(held[1:$LIMIT]) x)::jsonb, $LIMIT, null, 300000)::text;
    held := held[$LIMIT + 1:] || array(select (t ->> 'task_id')::bigint
                                      from json_array_elements(answer::json -> 'claimed') t);
    commit;
  end loop;"
  elif [ -n "${COMBINED:-}" ]; then
    # one claim first, then each report carries the next claim (completeTasks with claim)
    # (several jobs: the report is made from the last answer's claimed tasks, the first claim's
    # `tasks` for the first cycle)
    [ "$JOBS" = 1 ] || report=$(printf '%s' "$report" | sed "s/answer::json -> 'tasks'/(case when i = 1 then answer::json -> 'tasks' else answer::json -> 'claimed' end)/")
    loop="answer := job_service_api.claim_tasks(ctx, 'worker', $LIMIT, null, 300000)::text;
  commit;
  for i in 1..$cycles loop
    $mark
    answer := job_service_api.complete_and_claim(ctx, 'worker', $report::jsonb, $LIMIT, null,
      300000)::text;
    commit;
  end loop;"
  else
    loop="for i in 1..$cycles loop
    $mark
    answer := job_service_api.claim_tasks(ctx, 'worker', $LIMIT, null, 300000)::text;
    commit;
    answer := job_service_api.complete_tasks(ctx, 'worker', $report::jsonb)::text;
    commit;
  end loop;"
  fi
  # Each call's answer is turned into text and each report parsed from text, as when a worker
  # calls over the wire. The reports are written before the loop: the queue hands out tasks in id
  # order, so cycle i completes tasks (i-1)*TAKE+1 .. i*TAKE; the count checked at the end says
  # that every report found its tasks.
  # (FLOOR: as the owner of the engine's functions, whose permission checks they pay)
  printf '%s\n' "${FLOOR:+set role project_owner;

}do \$\$
declare
  wal pg_lsn;
  statements bigint;
  top record;
  answer text;
  held bigint[];
  jid uuid;
  tid bigint;
  ctx constant jsonb := '$CTX';
  reports constant text[] := array(
    select '[' || string_agg(format('{\"task_id\": %s}', g), ', ') || ']'
    from generate_series(1, $cycles * $TAKE) g group by (g - 1) / $TAKE order by (g - 1) / $TAKE);
begin
  $loop
  if (select count(*) from job_service.tasks where status = 'succeeded') <> $cycles * $TAKE then
    raise exception 'the reports did not complete the claimed tasks';
  end if;
  ${profile:+for top in
    with lines as (
      select p.oid::regprocedure::text as fn, t.lineno, t.exec_stmts, t.total_time,
             regexp_replace(t.source, '\s+', ' ', 'g') as source
      from pg_proc p
      join pg_namespace n on n.oid = p.pronamespace
      join pg_language l on l.oid = p.prolang and l.lanname = 'plpgsql'
      cross join lateral plpgsql_profiler_function_tb(p.oid::regprocedure) t
      where n.nspname in ('job_service', 'job_service_api') and t.exec_stmts > 0
    )
    select fn, lineno, round(exec_stmts::numeric / ($cycles - $N1), 1) as runs,
           round(total_time::numeric * 1000 / ($cycles - $N1)) as us, left(trim(source), 70) as source
    from lines
    where total_time >= 0.02 * (select max(total_time) from lines)
    order by fn, lineno loop
    raise warning 'PROF % line %: % runs, % us per cycle: %', top.fn, top.lineno, top.runs, top.us,
      top.source;
  end loop;}
  ${stats:+select sum(calls) into statements from pg_stat_statements
    where not toplevel and query not like '%json_array_elements(answer%';
  raise warning 'STATS % %', statements, pg_current_wal_lsn() - wal;
  for top in select calls, round(total_exec_time::numeric, 1) as ms, rows,
                    left(regexp_replace(query, '\s+', ' ', 'g'), 110) as query
             from pg_stat_statements where not toplevel order by total_exec_time desc limit 15 loop
    raise warning 'TOP % calls, % ms, % rows: %', top.calls, top.ms, top.rows, top.query;
  end loop;}
end \$\$;"
}

# Instructions inside the engine's entry points (SECURITY DEFINER functions, called from the DO
# block): the cycle without the harness's own work (building reports, reading the answers: with
# JOBS > 1 and T2 the answer's JSON is parsed again to find the claimed tasks, which a worker does in
# its own process). Empty for FLOOR, which calls no entry point.
inside() {
  callgrind_annotate --inclusive=yes --threshold=100 "$WORK/callgrind.$1" 2>/dev/null |
    awk 'NF >= 2 && $(NF - 1) ~ /:fmgr_security_definer$/ && !n++ { gsub(",", "", $1); print $1 }'
}

measure
echo "claim $LIMIT + complete ($JOBS job(s), max_parallel_tasks $MAX_PARALLEL, $TAKE tasks a" \
  "cycle): $per_cycle instructions per cycle ($N1 and $N2 cycles: $short / $long)"
print_per_task "$TAKE"
if [ -n "${PROFILE:-}" ]; then
  echo "plpgsql_check's profile of the $cycles cycles (lines of at least 2 % of a cycle):"
  profile
fi
inside_short=$(inside "$N1")
inside_long=$(inside "$N2")
if [ -n "$inside_short" ] && [ -n "$inside_long" ]; then
  awk -v a="$inside_short" -v b="$inside_long" -v c="$cycles" -v t="$TAKE" 'BEGIN {
    printf "inside the entry points (without the harness): %d instructions per task (per cycle: %d)\n",
      (b - a) / c / t, (b - a) / c }'
fi
