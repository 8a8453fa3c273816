#!/usr/bin/env bash
# bench/instructions_graphile.sh [LIMIT] — CPU instructions PostgreSQL spends per task in
# graphile-worker 0.18's own SQL, counted by valgrind's callgrind on a single-user backend the way
# bench/instructions.sh counts this engine's, so that the two figures can be set side by side.
#
# Each cycle is what a graphile worker makes the database do for LIMIT jobs (default 1): its "get
# job" statement (dist/sql/getJobs.js constructQuery: batch size LIMIT, named-queue strategy 2, no
# flags, now() rather than node time; `limit LIMIT` written in, as graphile does) in a transaction
# of its own, then its "complete job" statement (dist/sql/completeJobs.js: `delete ... where id =
# $1::bigint` for one job, `delete ... using unnest($1::bigint[])` for several) in another: two
# statements and two transactions a cycle. LIMIT 1 is the one-at-a-time worker; LIMIT 320 the
# batched one of the benchmark at C = 32 (a local queue of 10·C filled by one get, its completions
# then reported in one batch). The statements are static SQL in a DO block: PL/pgSQL prepares and
# keeps their plans as graphile's named prepared statements are kept (custom plans first, then a
# generic one), with the worker id and the task ids as typed variables where graphile binds $1 and
# $2 (their parse from text at Bind, a few hundred instructions, is left out), and each returned
# row (`returning *`) is read through a cursor and turned into text, as its output functions run
# for the wire; the completion deletes the ids the get returned. The jobs, max(5 000, N2 × LIMIT +
# LIMIT) of one task identifier with payload {"n": i}, are added by graphile's add_jobs as its
# addJobs does (JSON specs, 1 000 a call); the schema is installed by graphile-worker's own
# runMigrations, through Deno (npm:graphile-worker@0.18.0, pinned as bench/lib/graphile.ts pins it).
# What graphile does in Node (and this engine in its worker) is not counted, only the database.
# At these sizes the batched get's `update ... from j` is planned as a hash join over a sequential
# scan of the whole jobs table, so its cost per task grows with the number of jobs queued.
#
# As in instructions.sh: a throw-away cluster on PORT (default 5433) with autovacuum off, deleted at
# the end unless KEEP=1; a snapshot after VACUUM ANALYZE and CHECKPOINT; two runs of N1 and N2
# cycles from it (5 and 45 when LIMIT >= 50, else 50 and 450), whose difference divided by N2 - N1
# leaves out start-up and first-call costs; a third run, without valgrind and with
# pg_stat_statements, counts the SQL statements and the WAL bytes of the same N2 - N1 cycles. Needs
# valgrind and PostgreSQL's server binaries; runs as root (the cluster as user postgres) or as the
# postgres user.
set -euo pipefail

LIMIT=${1:-1}
# fewer cycles for big batches, so that the runs stay short (the difference is what counts)
if [ "$LIMIT" -ge 50 ]; then N1=${N1:-5} N2=${N2:-45}; else N1=${N1:-50} N2=${N2:-450}; fi
# jobs: enough for N2 full batches (and at least 5 000)
TOTAL=$((N2 * LIMIT + LIMIT))
[ "$TOTAL" -ge 5000 ] || TOTAL=5000
PORT=${PORT:-5433}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DENO=${DENO:-$(command -v deno || echo "$ROOT/.tools/node_modules/.bin/deno")}
# graphile's pool id: "worker-" and 9 random bytes in hex
POOL_ID=worker-0123456789abcdef012345
DB=graphile
# shellcheck source=bench/lib/callgrind_cluster.sh
. "$ROOT/bench/lib/callgrind_cluster.sh"

cluster_start graphile-instructions
psql "postgresql://postgres@127.0.0.1:$PORT/postgres" -qAt -c "create database graphile" >/dev/null
URL="postgresql://postgres@127.0.0.1:$PORT/graphile"
# graphile-worker's schema, by its own migrations (as bench/lib/graphile.ts install())
(cd "$ROOT" && "$DENO" eval "
// deno-lint-ignore no-import-prefix
import { Logger, runMigrations } from 'npm:graphile-worker@0.18.0';
await runMigrations({ connectionString: '$URL', logger: new Logger(() => () => {}) });")
# the jobs, by graphile's add_jobs as makeAddJobs calls it (specs as JSON.stringify writes them)
psql "$URL" -qAt -v ON_ERROR_STOP=1 >/dev/null <<SQL
select count(*)
from generate_series(0, ($TOTAL - 1) / 1000) k
cross join lateral graphile_worker.add_jobs(array(
  select json_populate_recordset(null::graphile_worker.job_spec, (
    select '[' || string_agg(format('{"identifier":"bench","payload":{"n":%s}}', g), ',' order by g)
             || ']'
    from generate_series(k * 1000 + 1, least(k * 1000 + 1000, $TOTAL)) g)::json)
), false);
SQL
psql "$URL" -qAt >/dev/null <<SQL
vacuum analyze graphile_worker._private_jobs, graphile_worker._private_tasks,
  graphile_worker._private_job_queues;
checkpoint;
SQL
cluster_snapshot

# getJobs.js constructQuery(LIMIT, no flags, no node time), $1 and $2 as PL/pgSQL variables
if [ "$LIMIT" = 1 ]; then
  get_from="with j as ("
  dedupe=""
else
  get_from="with j_raw as ("
  dedupe=",
j as (
  select distinct on (job_queue_id, case when job_queue_id is null then id end)
      job_queue_id, priority, run_at, id
    from j_raw
    order by job_queue_id, case when job_queue_id is null then id end, priority asc, run_at asc
)"
fi
GET_JOBS="$get_from
  select jobs.job_queue_id, jobs.priority, jobs.run_at, jobs.id
    from graphile_worker._private_jobs as jobs
    where jobs.is_available = true
    and run_at <= now()
    and task_id = any(task_ids::int[])
    and (
      jobs.job_queue_id is null
      or
      jobs.job_queue_id in (
        select id
        from graphile_worker._private_job_queues as job_queues
        where job_queues.is_available = true
        for update
        skip locked
      )
    )
    
    order by priority asc, run_at asc
    limit $LIMIT
    for update
    skip locked
)$dedupe,
q as (
  update graphile_worker._private_job_queues as job_queues
    set
      locked_by = pool_id::text,
      locked_at = now()
    from j
    where job_queues.id = j.job_queue_id
)
  update graphile_worker._private_jobs as jobs
    set
      attempts = jobs.attempts + 1,
      locked_by = pool_id::text,
      locked_at = now()
    from j
    where jobs.id = j.id
    returning *"
# completeJobs.js batchCompleteJobs, for jobs without a queue (one job: the row the get returned)
if [ "$LIMIT" = 1 ]; then
  COMPLETE_JOBS="delete from graphile_worker._private_jobs as jobs
where id = job.id::bigint"
else
  COMPLETE_JOBS="delete from graphile_worker._private_jobs as jobs
using unnest(job_ids::bigint[]) n(n)
where id = n"
fi

# The DO block of `cycles` cycles; with `stats`, pg_stat_statements and the WAL position are read
# after the first N1 cycles and at the end, and the differences raised as a warning.
cycles_sql() {
  local cycles=$1 stats=${2:-}
  local mark=""
  if [ -n "$stats" ]; then
    mark="if i = $N1 + 1 then perform pg_stat_statements_reset(); wal := pg_current_wal_lsn(); end if;"
  fi
  printf '%s\n' "do \$\$
declare
  wal pg_lsn;
  statements bigint;
  pool_id constant text := '$POOL_ID';
  task_ids constant int[] := array(
    select id from graphile_worker._private_tasks where identifier = 'bench');
  job record;
  answer text;
  job_ids bigint[];
  taken bigint := 0;
begin
  for i in 1..$cycles loop
    $mark
    job_ids := '{}';
    for job in $GET_JOBS loop
      answer := job::text;
      job_ids := job_ids || job.id;
    end loop;
    commit;
    if cardinality(job_ids) <> $LIMIT then
      raise exception 'get % returned % jobs', $LIMIT, cardinality(job_ids);
    end if;
    taken := taken + cardinality(job_ids);
    $COMPLETE_JOBS;
    commit;
  end loop;
  ${stats:+select sum(calls) into statements from pg_stat_statements
    where not toplevel and query not like '%pg_stat_statements_reset%';
  raise warning 'STATS % %', statements, pg_current_wal_lsn() - wal;}
  if taken <> $cycles * $LIMIT
     or (select count(*) from graphile_worker._private_jobs) <> $TOTAL - $cycles * $LIMIT then
    raise exception 'the completions did not delete the jobs got';
  end if;
end \$\$;"
}

measure
echo "graphile-worker 0.18 get $LIMIT + complete ($TOTAL jobs, $LIMIT a cycle): $per_cycle" \
  "instructions per cycle ($N1 and $N2 cycles: $short / $long)"
print_per_task "$LIMIT"
