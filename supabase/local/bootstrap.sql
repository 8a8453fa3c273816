-- Local stand-in for what Supabase's Postgres image provides before any migration runs:
-- the API roles, the `auth` helpers that policies call, the `extensions` schema and the default
-- privileges Supabase grants on `public`. Applied by `deno task db:reset` / `dev` / `test` only;
-- never part of supabase/migrations (a real project already has all of this).
-- Idempotent: roles are cluster-wide and survive a dropped database.

do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;

create schema if not exists extensions;
grant usage on schema extensions to public;

-- Supabase puts `extensions` on the search path (pgTAP, pgcrypto and friends live there).
do $$
begin
  execute format('alter database %I set search_path = "$user", public, extensions', current_database());
end
$$;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

-- Same bodies as Supabase's: claims come from the request.jwt.claim(s) settings PostgREST sets.
create or replace function auth.uid() returns uuid
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

grant execute on function auth.uid(), auth.role(), auth.jwt() to anon, authenticated, service_role;

grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;

-- The role the migrations run as, like hosted Supabase's `postgres`: not a superuser; it owns the
-- database (so `public` too: PostgreSQL 15's pg_database_owner) and may create roles and bypass
-- row-level security. `supabase db push` and `deno task db:reset` apply the migrations as this
-- role, so that a migration needing a superuser fails here as it would on a project.
do $$
begin
  if not exists (select from pg_roles where rolname = 'project_owner') then
    create role project_owner login nosuperuser createrole createdb bypassrls inherit;
  end if;
end
$$;
grant anon, authenticated, service_role, authenticator to project_owner with admin option;
grant all on schema extensions to project_owner;
grant all on schema auth to project_owner;
do $$
begin
  execute format('alter database %I owner to project_owner', current_database());
end
$$;

-- Supabase Realtime's publication (every Supabase project has it, owned by `postgres`).
do $$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;
alter publication supabase_realtime owner to project_owner;
