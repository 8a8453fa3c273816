#!/usr/bin/env bash
# scripts/backup.sh DATABASE_URL FILE — a logical backup (pg_dump, custom format) of everything the
# service's migrations create: the schemas job_service, job_service_api and supabase_migrations
# (the migration history), schema and data, with grants, policies and comments. Consistent: one
# snapshot of the whole database. FILE is written atomically (a partial file never replaces it),
# private to its owner (umask 077), with its checksum beside it in FILE.sha256 (sha256sum's format),
# which scripts/restore.sh checks before it restores anything. The URL's password never appears on
# a command line (it goes to libpq through a private PGPASSFILE).
#
# Restore with scripts/restore.sh FILE DATABASE_URL (docs/operations.md). BACKUP_SCHEMAS overrides
# the list of schemas (space-separated). pg_dump must be at least the server's major version.
set -euo pipefail
umask 077

if [ $# -ne 2 ]; then
  echo "usage: $0 DATABASE_URL FILE" >&2
  exit 2
fi
file=$2
schemas=${BACKUP_SCHEMAS:-"job_service job_service_api supabase_migrations"}

for tool in pg_dump pg_restore psql sha256sum; do
  command -v "$tool" >/dev/null || { echo "backup: $tool is not installed" >&2; exit 2; }
done

work=$(mktemp -d)
tmp=""
manifest_tmp=""
trap 'rm -rf "$work"; rm -f "$tmp" "$manifest_tmp"' EXIT
# shellcheck source=lib/pg_password.sh
. "$(dirname "$0")/lib/pg_password.sh"
private_url "$1" "$work"

args=()
for schema in $schemas; do
  [[ $schema =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "backup: bad schema name $schema" >&2; exit 2; }
  # a schema that is absent (supabase_migrations where no migration tool ran) is skipped; the name
  # reaches SQL as a psql variable (:'schema' quotes it), never pasted into the statement
  present=$(psql "$db_url" -X -Atq -v ON_ERROR_STOP=1 -v schema="$schema" 2>&1 <<'SQL'
select count(*) from pg_namespace where nspname = :'schema';
SQL
  ) || {
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

# unpredictable temporary names beside FILE (same file system, so the final mv is atomic)
dir=$(dirname -- "$file")
base=$(basename -- "$file")
tmp=$(mktemp "$dir/.$base.partial.XXXXXXXX")
manifest_tmp=$(mktemp "$dir/.$base.sha256.partial.XXXXXXXX")
pg_dump --dbname="$db_url" --format=custom --compress=6 --no-publications --no-subscriptions \
  "${args[@]}" --file="$tmp"
# the archive must be readable before it replaces FILE
entries=$(pg_restore --list "$tmp" | grep -c '^[0-9]')
checksum=$(sha256sum <"$tmp")
checksum=${checksum%% *}
printf '%s  %s\n' "$checksum" "$base" >"$manifest_tmp"
mv -f -- "$tmp" "$file"
tmp=""
mv -f -- "$manifest_tmp" "$file.sha256"
manifest_tmp=""
echo "backup: ${args[*]//--schema=/} -> $file ($(wc -c <"$file") bytes, $entries archive entries," \
  "sha256 $checksum in $file.sha256)"
