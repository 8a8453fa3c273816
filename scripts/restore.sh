#!/usr/bin/env bash
# scripts/restore.sh FILE DATABASE_URL — restores a backup made by scripts/backup.sh into an
# existing, empty database, all or nothing (one transaction):
#   1. refuses a target that already holds objects in the backup's schemas;
#   2. where the target lacks Supabase's API roles and auth helpers (a fresh local PostgreSQL),
#      applies supabase/local/bootstrap.sql first (a Supabase project has them already);
#   3. pg_restore of schema, data, grants and policies (objects owned by the restoring user) with
#      exactly the backup's privileges; schemas the target already has (public) keep their own
#      owner, grants and comment;
#   4. ANALYZE (statistics are not part of a dump), and where pg_cron and pg_net exist, the
#      runMaintenance schedule again (it lives in the cron schema, outside the backup).
# See docs/operations.md for what a restore does not bring back (Vault secrets, function secrets).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 FILE DATABASE_URL" >&2
  exit 2
fi
file=$1
db_url=$2
root=$(cd "$(dirname "$0")/.." && pwd)

for tool in pg_restore psql; do
  command -v "$tool" >/dev/null || { echo "restore: $tool is not installed" >&2; exit 2; }
done
[ -r "$file" ] || { echo "restore: cannot read $file" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pg_restore --list "$file" >"$work/toc" 2>"$work/err" ||
  { echo "restore: $file is not a pg_dump custom-format archive: $(cat "$work/err")" >&2; exit 2; }

q() { psql "$db_url" -X -Atq -v ON_ERROR_STOP=1 "$@"; }

# the schemas the archive creates
mapfile -t schemas < <(sed -nE 's/^[0-9]+; [0-9]+ [0-9]+ SCHEMA - ([^ ]+) .*/\1/p' "$work/toc")
[ "${#schemas[@]}" -gt 0 ] || { echo "restore: the archive holds no schema" >&2; exit 2; }
list=$(printf "'%s'," "${schemas[@]}")
list=${list%,}

# 1. the target must be empty in those schemas
objects=$(q -c "
  select (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname in ($list))
       + (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
          where n.nspname in ($list))
       + (select count(*) from pg_type t join pg_namespace n on n.oid = t.typnamespace
          where n.nspname in ($list) and t.typtype in ('e', 'd'))") ||
  { echo "restore: cannot connect to the target database" >&2; exit 1; }
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
mapfile -t existing < <(q -c "select nspname from pg_namespace where nspname in ($list)")
cp "$work/toc" "$work/list"
for schema in "${existing[@]}"; do
  [ -n "$schema" ] || continue
  grep -vE "^[0-9]+; [0-9]+ [0-9]+ (SCHEMA - $schema|COMMENT - SCHEMA $schema|ACL - SCHEMA $schema) " \
    "$work/list" >"$work/list.next" || true
  mv "$work/list.next" "$work/list"
done
grep -E '^[0-9]+; [0-9]+ [0-9]+ (ACL|DEFAULT ACL) ' "$work/list" >"$work/acl.list" || true
grep -vE '^[0-9]+; [0-9]+ [0-9]+ (ACL|DEFAULT ACL) ' "$work/list" >"$work/main.list" || true
cat >"$work/reset.sql" <<SQL
do \$\$
declare
  r record;
begin
  for r in
    select format('%s %s', case c.relkind when 'S' then 'sequence' else 'table' end,
                  c.oid::regclass) as object, a.grantee, a.privilege_type
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    cross join lateral aclexplode(c.relacl) a
    where n.nspname in ($list) and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
      and a.grantee <> c.relowner
    union all
    select format('routine %s', p.oid::regprocedure), a.grantee, a.privilege_type
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    cross join lateral aclexplode(p.proacl) a
    where n.nspname in ($list) and a.grantee <> p.proowner
    union all
    select format('type %s', t.oid::regtype), a.grantee, a.privilege_type
    from pg_type t join pg_namespace n on n.oid = t.typnamespace
    cross join lateral aclexplode(t.typacl) a
    where n.nspname in ($list) and a.grantee <> t.typowner
  loop
    execute format('revoke %s on %s from %s', r.privilege_type, r.object,
      case when r.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(r.grantee)) end);
  end loop;
  -- the built-in defaults: routines and types are usable by everyone until a grant says otherwise
  for r in
    select format('grant execute on routine %s to public', p.oid::regprocedure) as stmt
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ($list) and p.proacl is not null
    union all
    select format('grant usage on type %s to public', t.oid::regtype)
    from pg_type t join pg_namespace n on n.oid = t.typnamespace
    where n.nspname in ($list) and t.typacl is not null
  loop
    execute r.stmt;
  end loop;
end
\$\$;
SQL
set +e
{
  echo "begin;"
  pg_restore --no-owner --use-list="$work/main.list" --file=- "$file" || exit 1
  cat "$work/reset.sql"
  pg_restore --no-owner --use-list="$work/acl.list" --file=- "$file" || exit 1
  echo "commit;"
} | psql "$db_url" -X -q -v ON_ERROR_STOP=1 -f - >/dev/null 2>"$work/psql.err"
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
q -f "$(dirname "$0")/../supabase/migrations/20261128000310_realtime.sql" >/dev/null
scheduled=$(q -c "
  select exists (select from pg_available_extensions where name = 'pg_cron')
     and exists (select from pg_available_extensions where name = 'pg_net')
     and to_regprocedure('job_service.invoke_maintenance()') is not null")
if [ "$scheduled" = "t" ]; then
  q -c "create extension if not exists pg_cron" -c "create extension if not exists pg_net" \
    -c "select cron.schedule('batch-jobs-maintenance', '* * * * *', 'select job_service.invoke_maintenance()')" \
    >/dev/null && echo "restore: runMaintenance scheduled with pg_cron (set the Vault secrets, docs/operations.md)"
fi

tables=$(q -c "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where n.nspname in ($list) and c.relkind in ('r', 'p')")
echo "restore: $file -> ${schemas[*]} ($tables tables)"
