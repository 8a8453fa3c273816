#!/usr/bin/env bash
# The README's two commands as a fresh machine runs them (called by .ci/run): Deno only through
# npx (every folder holding a `deno` is taken off PATH), SUPABASE_DB_URL and TEST_DB_URL unset, and
# nothing answering at the default address: DEFAULT_DB_PORT moves it to a port where nothing
# listens, so the machine's own PostgreSQL on 5432 stays out of the way. The commands are read from
# the README's quick start, so what CI runs is what the README says.
#
# 1. The test command on the embedded PostgreSQL: pgTAP (added to the embedded server), and the
#    deno tests of createJob, claimTasks, completeTasks and backup/restore.
# 2. The dev command: it serves on the embedded PostgreSQL (reusing the data of step 1), a
#    createJob -> claimTasks -> completeTasks round trip goes through it (deno task smoke), and a
#    Ctrl-C (SIGINT to its process group, as a terminal sends it) stops it and the embedded server.
set -uo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "fresh machine: $*"
  exit 1
}

dev_cmd=$(grep -m1 -E '^npx -y deno@[0-9.]+ task dev' README.md | sed 's/ *#.*//')
test_cmd=$(grep -m1 -E '^npx -y deno@[0-9.]+ task test' README.md | sed 's/ *#.*//')
[ -n "$dev_cmd" ] && [ -n "$test_cmd" ] || fail "the README's quick start has no npx commands"
npx_deno=${dev_cmd% task dev}

clean_path=
IFS=: read -ra dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  [ -n "$dir" ] && [ ! -x "$dir/deno" ] && clean_path="$clean_path${clean_path:+:}$dir"
done
export PATH=$clean_path
! command -v deno >/dev/null || fail "deno is still on PATH"
command -v npx >/dev/null || fail "npx is not on PATH without deno"
unset SUPABASE_DB_URL TEST_DB_URL DB_POOLER_URL ALLOW_PG_RESTART

port=15432
while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
export DEFAULT_DB_PORT=$port
echo "nothing answers at 127.0.0.1:$port (DEFAULT_DB_PORT); deno is not on PATH"

echo "\$ $test_cmd --filter '/^(createJob|claimTasks|completeTasks|backup)/'"
$test_cmd --filter '/^(createJob|claimTasks|completeTasks|backup)/' 2>&1 | tee .ci/fresh-test.log |
  grep -aE '^(No PostgreSQL answers|adding pgTAP|installing|missing|pgTAP:|deno test:|[0-9]+ passed, [0-9]+ failed$)'
grep -aq 'embedded PostgreSQL' .ci/fresh-test.log || fail "the test command did not use the embedded PostgreSQL"
summary=$(grep -aE '^[0-9]+ passed, [0-9]+ failed$' .ci/fresh-test.log | tail -1)
if ! [[ $summary =~ ^[1-9][0-9]*\ passed,\ 0\ failed$ ]]; then
  # the log stays on the CI machine: print what failed and why
  sed 's/\x1b\[[0-9;]*m//g' .ci/fresh-test.log | grep -aE -A30 '^ ERRORS|^not ok|Failed [0-9]+/[0-9]+ subtests' | head -120
  fail "the test command did not pass (.ci/fresh-test.log)"
fi

echo "\$ PORT=0 $dev_cmd"
PORT=0 setsid $dev_cmd >.ci/fresh-dev.log 2>&1 &
dev=$!
url=
for _ in $(seq 1 600); do
  url=$(sed -n 's/^ready //p' .ci/fresh-dev.log)
  [ -n "$url" ] || ! kill -0 "$dev" 2>/dev/null && break
  sleep 0.2
done
grep -a '^No PostgreSQL answers' .ci/fresh-dev.log
embedded=$(sed -n 's/^No PostgreSQL answers.* on 127\.0\.0\.1:\([0-9]*\).*/\1/p' .ci/fresh-dev.log)
if [ -z "$url" ] || [ -z "$embedded" ]; then
  kill -INT -- "-$dev" 2>/dev/null
  cat .ci/fresh-dev.log
  fail "deno task dev did not serve on the embedded PostgreSQL"
fi

$npx_deno task smoke "$url"
smoke=$?

kill -INT -- "-$dev"
for _ in $(seq 1 150); do kill -0 "$dev" 2>/dev/null || break; sleep 0.2; done
kill -0 "$dev" 2>/dev/null && fail "deno task dev still runs 30 s after Ctrl-C"
tail -1 .ci/fresh-dev.log
[ "$smoke" -eq 0 ] || fail "the round trip failed"
grep -aq '^embedded PostgreSQL stopped$' .ci/fresh-dev.log || fail "Ctrl-C did not stop the embedded PostgreSQL"
! (echo >"/dev/tcp/127.0.0.1/$embedded") 2>/dev/null || fail "the embedded PostgreSQL still answers"
echo "fresh machine: ok"
