#!/usr/bin/env bash
# scripts/backup.sh DATABASE_URL FILE — a logical backup (pg_dump, custom format) of everything the
# service's migrations create: the schemas job_service, job_service_api and supabase_migrations
# (the migration history), schema and data, with grants, policies and comments. Consistent: one
# snapshot of the whole database. FILE is written atomically (a partial file never replaces it).
#
# Restore with scripts/restore.sh FILE DATABASE_URL (docs/operations.md). BACKUP_SCHEMAS overrides
# the list of schemas (space-separated). pg_dump must be at least the server's major version.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 DATABASE_URL FILE" >&2
  exit 2
fi
db_url=$1
file=$2
schemas=${BACKUP_SCHEMAS:-"job_service job_service_api supabase_migrations"}

for tool in pg_dump pg_restore psql; do
  command -v "$tool" >/dev/null || { echo "backup: $tool is not installed" >&2; exit 2; }
done

args=()
for schema in $schemas; do
  [[ $schema =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "backup: bad schema name $schema" >&2; exit 2; }
  # a schema that is absent (supabase_migrations where no migration tool ran) is skipped
  present=$(psql "$db_url" -X -Atq -v ON_ERROR_STOP=1 \
    -c "select count(*) from pg_namespace where nspname = '$schema'" 2>&1) || {
    echo "backup: cannot connect: $present" >&2
    exit 1
  }
  if [ "$present" = "1" ]; then
    args+=("--schema=$schema")
  elif [ "$schema" != "supabase_migrations" ]; then
    echo "backup: schema $schema does not exist: is this the service's database?" >&2
    exit 1
  fi
done

tmp="$file.partial.$$"
trap 'rm -f "$tmp"' EXIT
pg_dump --dbname="$db_url" --format=custom --compress=6 --no-publications --no-subscriptions \
  "${args[@]}" --file="$tmp"
# the archive must be readable before it replaces FILE
entries=$(pg_restore --list "$tmp" | grep -c '^[0-9]')
mv "$tmp" "$file"
trap - EXIT
echo "backup: ${args[*]//--schema=/} -> $file ($(wc -c <"$file") bytes, $entries archive entries)"
