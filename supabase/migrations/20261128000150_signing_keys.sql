-- Keys the functions sign with that nobody configured, generated here once per database, so that
-- no signing key has a public default (platform.md). One today: the key of listJobs cursors (the
-- function secret CURSOR_SECRET replaces it where an operator sets one). Only the database owner,
-- which the Edge Functions connect as, can read them: RLS on, no policy, no grant to an API role.

create table job_service.signing_keys (
  name text primary key check (name ~ '^[a-z][a-z0-9_]{0,62}$'),
  key bytea not null check (octet_length(key) >= 32),
  created_at timestamptz not null default now()
);
comment on table job_service.signing_keys is
  'One random key per purpose, made by the migration; read once per function instance. Replacing a key invalidates what it signed (listJobs cursors: clients start from the first page).';

alter table job_service.signing_keys enable row level security;
revoke all on job_service.signing_keys from public, anon, authenticated, service_role;

-- 32 bytes from two version-4 uuids: 244 bits from PostgreSQL's strong random source
-- (gen_random_uuid is built in since PostgreSQL 13, so no pgcrypto is needed)
insert into job_service.signing_keys (name, key)
values ('list_cursor', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

create function job_service_api.signing_key(p_name text) returns bytea
language sql stable
as $$ select key from job_service.signing_keys where name = p_name $$;
comment on function job_service_api.signing_key(text) is
  'The key of one purpose (list_cursor), for the Edge Functions; null when there is none.';
