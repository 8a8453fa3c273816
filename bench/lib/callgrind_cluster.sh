# shellcheck shell=bash
# Sourced by bench/instructions.sh and bench/instructions_graphile.sh: a throw-away PostgreSQL
# cluster, a snapshot of it, and the counts of a DO block of cycles run from that snapshot in a
# single-user backend (instructions under valgrind's callgrind; statements and WAL bytes with
# pg_stat_statements, without valgrind). The caller sets PORT, N1, N2 and DB (the database the
# cycles run in) and defines `cycles_sql CYCLES [stats]`, which prints the DO block: with `stats`, it
# resets pg_stat_statements and notes the WAL position after the first N1 cycles, and at the end
# raises a warning `STATS <statements> <WAL bytes>` (and `TOP …` lines, shown when TOP is set).

BIN=${PG_BIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
[ -x "$BIN/postgres" ] || BIN=/usr/lib/postgresql/15/bin
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A new cluster in WORK (/tmp/NAME.XXXXXX), started on PORT with autovacuum off; deleted at exit
# unless KEEP=1.
cluster_start() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  DATA=$WORK/data
  SNAP=$WORK/snapshot
  [ "$(id -u)" = 0 ] && chown postgres "$WORK"
  trap cluster_cleanup EXIT
  as_postgres "$BIN/initdb" -D "$DATA" -A trust -U postgres >/dev/null
  as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w start \
    -o "-p $PORT -k $WORK -c listen_addresses=127.0.0.1 -c autovacuum=off" >/dev/null
}

cluster_cleanup() {
  as_postgres "$BIN/pg_ctl" -D "$DATA" stop -m immediate >/dev/null 2>&1 || true
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK (callgrind.$N1, callgrind.$N2)"; else rm -rf "$WORK"; fi
}

# Stops the cluster and keeps its data as the snapshot every run starts from, with
# pg_stat_statements created in DB.
cluster_snapshot() {
  as_postgres "$BIN/pg_ctl" -D "$DATA" -w stop >/dev/null
  echo "create extension pg_stat_statements;" |
    as_postgres "$BIN/postgres" --single -j -D "$DATA" "$DB" >/dev/null 2>&1
  cp -a "$DATA" "$SNAP"
}

# Runs WORK/NAME.sql from a fresh copy of the snapshot in a single-user backend, with the postgres
# options given after NAME (under callgrind when CALLGRIND_OUT names its output file); fails on an
# ERROR. The backend's output is WORK/single.NAME.
single_user() {
  local name=$1
  shift
  local wrap=()
  [ -n "${CALLGRIND_OUT:-}" ] && wrap=(valgrind --tool=callgrind "--callgrind-out-file=$CALLGRIND_OUT")
  rm -rf "$DATA" && cp -a "$SNAP" "$DATA"
  [ "$(id -u)" = 0 ] && chown postgres "$WORK/$name.sql"
  as_postgres "${wrap[@]}" "$BIN/postgres" --single -j -D "$DATA" "$@" "$DB" \
    <"$WORK/$name.sql" >"$WORK/single.$name" 2>&1
  if grep -q ERROR "$WORK/single.$name"; then
    grep ERROR "$WORK/single.$name" >&2
    exit 1
  fi
}

# Instructions of `cycles` cycles (callgrind's total; the file stays in WORK as callgrind.CYCLES).
count() {
  local cycles=$1
  cycles_sql "$cycles" >"$WORK/$cycles.sql"
  CALLGRIND_OUT="$WORK/callgrind.$cycles" single_user "$cycles"
  awk '/^(summary|totals):/ { print $2; exit }' "$WORK/callgrind.$cycles"
}

# Statements and WAL bytes of cycles N1 + 1 .. N2, without valgrind.
stats() {
  cycles_sql "$N2" stats >"$WORK/stats.sql"
  single_user stats -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all
  [ -n "${TOP:-}" ] && sed -n 's/.*WARNING: *TOP /  /p' "$WORK/single.stats" >&2
  sed -n 's/.*STATS \([0-9]*\) \([0-9.]*\).*/\1 \2/p' "$WORK/single.stats"
}

# The PROF lines of `cycles_sql N2 profile`, run without valgrind under plpgsql_check's profiler
# (its extension created first, in the same run: a statement of its own before the DO block).
profile() {
  { printf 'create extension plpgsql_check;\n\n'; cycles_sql "$N2" profile; } >"$WORK/profile.sql"
  single_user profile -c shared_preload_libraries=plpgsql_check -c plpgsql_check.profiler=on
  sed -n 's/.*WARNING: *PROF /  /p' "$WORK/single.profile"
}

# Counts N1 and N2 cycles, and the statements and WAL of the cycles between: sets short, long,
# cycles, per_cycle, statements and wal.
measure() {
  short=$(count "$N1")
  long=$(count "$N2")
  read -r statements wal <<<"$(stats)"
  cycles=$((N2 - N1))
  per_cycle=$(((long - short) / cycles))
}

# The per-task line for TASKS tasks a cycle, after `measure`.
print_per_task() {
  awk -v i="$per_cycle" -v s="$statements" -v w="$wal" -v c="$cycles" -v t="$1" 'BEGIN {
    printf "per task: %d instructions, %.2f statements, %.0f WAL bytes (per cycle: %.1f statements, %.0f WAL bytes)\n",
      i / t, s / c / t, w / c / t, s / c, w / c }'
}
