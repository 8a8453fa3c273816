#!/usr/bin/env bash
# scripts/restore.sh FILE DATABASE_URL — restores a backup made by scripts/backup.sh into an
# existing, empty database, all or nothing (one transaction):
#   0. checks the archive first: a private copy of FILE must match the checksum in FILE.sha256
#      (written by backup.sh); a damaged or altered archive, or none, changes nothing anywhere;
#   1. refuses a target that already holds objects in the backup's schemas;
#   2. where the target lacks Supabase's API roles and auth helpers (a fresh local PostgreSQL),
#      applies supabase/local/bootstrap.sql first (a Supabase project has them already);
#   3. pg_restore of schema, data, grants and policies (objects owned by the restoring user) with
#      exactly the backup's privileges; schemas the target already has (public) keep their own
#      owner, grants and comment;
#   4. ANALYZE (statistics are not part of a dump), and the maintenance schedule again where the
#      project's Vault still holds its URL and key (the schedule lives in the cron schema, outside
#      the backup); else a line naming `deno task maintenance:schedule`.
# See docs/operations.md for what a restore does not bring back (Vault secrets, function secrets).
# The URL's password never appears on a command line (a private PGPASSFILE); files it writes are
# private (umask 077, mktemp); schema names read from the archive reach SQL only quoted.
set -euo pipefail
umask 077

if [ $# -ne 2 ]; then
  echo "usage: $0 FILE DATABASE_URL" >&2
  exit 2
fi
file=$1
root=$(cd "$(dirname "$0")/.." && pwd)

for tool in pg_restore psql sha256sum; do
  command -v "$tool" >/dev/null || { echo "restore: $tool is not installed" >&2; exit 2; }
done
[ -r "$file" ] || { echo "restore: cannot read $file" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=lib/pg_password.sh
. "$(dirname "$0")/lib/pg_password.sh"
private_url "$2" "$work"

# 0. The archive is checked before anything else happens: a private copy of it (what is checked is
#    what is restored, whoever can write FILE meanwhile) must match the checksum backup.sh wrote.
[ -r "$file.sha256" ] || {
  echo "restore: no checksum $file.sha256 beside the archive (scripts/backup.sh writes one);" \
    "nothing was restored. For an archive you trust: sha256sum FILE > FILE.sha256" >&2
  exit 2
}
expected=$(head -c 64 -- "$file.sha256")
[[ $expected =~ ^[0-9a-f]{64}$ ]] || {
  echo "restore: $file.sha256 is not a sha256sum line; nothing was restored" >&2
  exit 2
}
cp -- "$file" "$work/archive"
actual=$(sha256sum <"$work/archive")
actual=${actual%% *}
if [ "$actual" != "$expected" ]; then
  echo "restore: $file does not match its checksum in $file.sha256 (sha256 $actual, expected" \
    "$expected): the archive is damaged or was altered; nothing was restored" >&2
  exit 1
fi
archive=$work/archive

pg_restore --list "$archive" >"$work/toc" 2>"$work/err" ||
  { echo "restore: $file is not a pg_dump custom-format archive: $(cat "$work/err")" >&2; exit 2; }

# the schemas the archive creates ("<id>; <oid> <oid> SCHEMA - <name> <owner>"). They reach SQL only
# as data, one per line: in the psql variable restore_schemas (which psql quotes as a literal in
# :'restore_schemas') and, in the restore's transaction, in the setting restore.schemas; every
# identifier is formed by the server (regclass, regprocedure, quote_ident, %I), never pasted.
sed -nE 's/^[0-9]+; [0-9]+ [0-9]+ SCHEMA - (.+) [^ ]+$/\1/p' "$work/toc" >"$work/schemas"
[ -s "$work/schemas" ] || { echo "restore: the archive holds no schema" >&2; exit 2; }
mapfile -t schemas <"$work/schemas"
names=$(cat "$work/schemas")
# shellcheck disable=SC2016 # psql, not bash, expands :'restore_schemas'
in_archive="n.nspname = any (string_to_array(:'restore_schemas', E'\n'))"

q() { psql "$db_url" -X -Atq -v ON_ERROR_STOP=1 -v restore_schemas="$names" "$@"; }

# 1. the target must be empty in those schemas
objects=$(q <<SQL
select (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where $in_archive)
     + (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where $in_archive)
     + (select count(*) from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where $in_archive and t.typtype in ('e', 'd'));
SQL
) || { echo "restore: cannot connect to the target database" >&2; exit 1; }
if [ "$objects" != "0" ]; then
  echo "restore: the target is not empty ($objects objects in ${schemas[*]}); restore into an" \
    "empty database" >&2
  exit 1
fi

# 2. Supabase's roles and auth helpers
ready=$(q -c "
  select (select count(*) from pg_roles where rolname in ('anon', 'authenticated', 'service_role')) = 3
     and to_regprocedure('auth.uid()') is not null and to_regprocedure('auth.role()') is not null
     and to_regprocedure('auth.jwt()') is not null")
if [ "$ready" != "t" ]; then
  echo "restore: no Supabase roles or auth helpers in the target: applying supabase/local/bootstrap.sql"
  PGOPTIONS="-c client_min_messages=warning" q -f "$root/supabase/local/bootstrap.sql" >/dev/null
fi

# 3. the restore, as one transaction (psql reads the SQL pg_restore writes; a producer that fails
#    stops the stream before COMMIT, and the transaction is rolled back when psql disconnects).
#    A schema the target has (public) keeps its own definition, grants and comment. Grants are
#    applied last, on objects reset to PostgreSQL's built-in privileges first: pg_dump records
#    grants relative to those, while new objects in the target also receive the target's default
#    privileges (Supabase, like the local bootstrap, grants everything in public to anon,
#    authenticated and service_role by default), which would otherwise survive the restore.
q -o "$work/existing" <<SQL
select nspname from pg_namespace n where $in_archive;
SQL
# the archive's entries for those schemas themselves (not their contents), matched as text
awk -v existing="$work/existing" '
  BEGIN { while ((getline name < existing) > 0) if (name != "") have[name] = 1 }
  {
    entry = $0
    if (!sub(/^[0-9]+; [0-9]+ [0-9]+ /, "", entry)) { print; next }
    skip = 0
    for (name in have) {
      quoted = name
      gsub(/"/, "\"\"", quoted)
      quoted = "\"" quoted "\""
      for (k = 1; k <= 5; k++) {
        prefix = (k == 1 ? "SCHEMA - " name : k == 2 ? "COMMENT - SCHEMA " name \
          : k == 3 ? "COMMENT - SCHEMA " quoted : k == 4 ? "ACL - SCHEMA " name \
          : "ACL - SCHEMA " quoted) " "
        if (substr(entry, 1, length(prefix)) == prefix) skip = 1
      }
    }
    if (!skip) print
  }' "$work/toc" >"$work/list"
grep -E '^[0-9]+; [0-9]+ [0-9]+ (ACL|DEFAULT ACL) ' "$work/list" >"$work/acl.list" || true
grep -vE '^[0-9]+; [0-9]+ [0-9]+ (ACL|DEFAULT ACL) ' "$work/list" >"$work/main.list" || true
cat >"$work/reset.sql" <<'SQL'
do $$
declare
  r record;
  v_schemas text[] := string_to_array(current_setting('restore.schemas'), E'\n');
begin
  for r in
    select format('%s %s', case c.relkind when 'S' then 'sequence' else 'table' end,
                  c.oid::regclass) as object, a.grantee, a.privilege_type
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    cross join lateral aclexplode(c.relacl) a
    where n.nspname = any (v_schemas) and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
      and a.grantee <> c.relowner
    union all
    select format('routine %s', p.oid::regprocedure), a.grantee, a.privilege_type
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    cross join lateral aclexplode(p.proacl) a
    where n.nspname = any (v_schemas) and a.grantee <> p.proowner
    union all
    select format('type %s', t.oid::regtype), a.grantee, a.privilege_type
    from pg_type t join pg_namespace n on n.oid = t.typnamespace
    cross join lateral aclexplode(t.typacl) a
    where n.nspname = any (v_schemas) and a.grantee <> t.typowner
  loop
    execute format('revoke %s on %s from %s', r.privilege_type, r.object,
      case when r.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(r.grantee)) end);
  end loop;
  -- the built-in defaults: routines and types are usable by everyone until a grant says otherwise
  for r in
    select format('grant execute on routine %s to public', p.oid::regprocedure) as stmt
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = any (v_schemas) and p.proacl is not null
    union all
    select format('grant usage on type %s to public', t.oid::regtype)
    from pg_type t join pg_namespace n on n.oid = t.typnamespace
    where n.nspname = any (v_schemas) and t.typacl is not null
  loop
    execute r.stmt;
  end loop;
end
$$;
SQL
set +e
{
  echo "begin;"
  # the schema list for reset.sql, then the variable is gone before any SQL of the archive is read
  # shellcheck disable=SC2016
  echo "select set_config('restore.schemas', :'restore_schemas', true);"
  echo '\unset restore_schemas'
  pg_restore --no-owner --use-list="$work/main.list" --file=- "$archive" || exit 1
  cat "$work/reset.sql"
  pg_restore --no-owner --use-list="$work/acl.list" --file=- "$archive" || exit 1
  echo "commit;"
} | q -f - >/dev/null 2>"$work/psql.err"
status=("${PIPESTATUS[@]}")
set -e
if [ "${status[0]}" != "0" ] || [ "${status[1]}" != "0" ]; then
  echo "restore: failed; nothing was restored (the transaction was rolled back):" >&2
  grep -E 'ERROR|FATAL|CONTEXT' "$work/psql.err" | cut -c1-300 | head -10 >&2
  exit 1
fi

# 4. statistics; Realtime's publication (publications are not in a backup: the migration that adds
#    the job table to it is idempotent and does nothing where the publication does not exist)
q -c "analyze" >/dev/null
if [ "$(q -c "select to_regclass('job_service.jobs') is not null")" = "t" ]; then
  q -f "$root/supabase/migrations/20261128000310_realtime.sql" >/dev/null
fi
# the maintenance schedule lives in the cron schema, outside the backup: where the project's Vault
# still holds its URL and key, the one maintenance step runs again with them; else it is named
if [ "$(q -c "select to_regprocedure('job_service.maintenance_secret(text)') is not null")" = "t" ] &&
  [ "$(q -c "select job_service.maintenance_secret('batch_jobs_project_url') is not null
                and job_service.maintenance_secret('batch_jobs_service_key') is not null")" = "t" ] &&
  q -c "select job_service_api.schedule_maintenance(
          job_service.maintenance_secret('batch_jobs_project_url'),
          job_service.maintenance_secret('batch_jobs_service_key'))" >/dev/null 2>&1; then
  echo "restore: runMaintenance scheduled again with pg_cron (URL and key from Vault)"
else
  echo "restore: maintenance is not scheduled here; run deno task maintenance:schedule (docs/operations.md)"
fi

tables=$(q <<SQL
select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
where $in_archive and c.relkind in ('r', 'p');
SQL
)
echo "restore: $file -> ${schemas[*]} ($tables tables)"
