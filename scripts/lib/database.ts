// Creating, bootstrapping and migrating the local database (db:reset, dev, test).
import postgres from "postgres";
import { DEFAULT_DB_URL, env } from "../../supabase/functions/_shared/env.ts";

const ROOT = new URL("../../", import.meta.url);
const MIGRATIONS_DIR = new URL("supabase/migrations/", ROOT);
const BOOTSTRAP = new URL("supabase/local/bootstrap.sql", ROOT);

export function localDbUrl(): string {
  return env("SUPABASE_DB_URL") ?? DEFAULT_DB_URL;
}

function databaseName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ""));
  if (!/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/.test(name)) {
    throw new Error(`refusing to manage database named ${JSON.stringify(name)}`);
  }
  return name;
}

function maintenanceUrl(url: string): string {
  const u = new URL(url);
  u.pathname = "/postgres";
  return u.toString();
}

function connect(url: string) {
  return postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
}

async function withConnection<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = connect(url);
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export async function databaseExists(url: string): Promise<boolean> {
  const name = databaseName(url);
  return await withConnection(maintenanceUrl(url), async (sql) => {
    const rows = await sql`select 1 from pg_database where datname = ${name}`;
    return rows.length > 0;
  });
}

export async function dropAndCreate(url: string): Promise<void> {
  const name = databaseName(url);
  await withConnection(maintenanceUrl(url), async (sql) => {
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
    await sql.unsafe(`create database "${name}"`);
  });
}

export async function dropDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  await withConnection(maintenanceUrl(url), async (sql) => {
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
  });
}

export async function createIfMissing(url: string): Promise<boolean> {
  if (await databaseExists(url)) return false;
  const name = databaseName(url);
  await withConnection(maintenanceUrl(url), (sql) => sql.unsafe(`create database "${name}"`));
  return true;
}

export async function migrationFiles(): Promise<{ version: string; name: string; path: URL }[]> {
  const files = [];
  for await (const entry of Deno.readDir(MIGRATIONS_DIR)) {
    const m = entry.isFile ? /^(\d+)_(.+)\.sql$/.exec(entry.name) : null;
    if (m) files.push({ version: m[1], name: m[2], path: new URL(entry.name, MIGRATIONS_DIR) });
  }
  return files.sort((a, b) => a.version.localeCompare(b.version));
}

/** The role the migrations run as (supabase/local/bootstrap.sql): like hosted Supabase's `postgres`. */
export const MIGRATION_ROLE = "project_owner";

/** The same database, connected as the migration role (local trust authentication). */
export function asMigrationRole(url: string): string {
  const u = new URL(url);
  u.username = MIGRATION_ROLE;
  u.password = "";
  return u.toString();
}

/** The functions' login role (20261128000990_privileges.sql): it may only call the entry points. */
export const RUNTIME_ROLE = "job_service_runtime";

/** The same database, connected as the functions' runtime role (local trust authentication). */
export function asRuntimeRole(url: string): string {
  const u = new URL(url);
  u.username = RUNTIME_ROLE;
  u.password = "";
  return u.toString();
}

/**
 * Applies the local bootstrap (as the caller, a superuser) and then, as the migration role, every
 * migration not yet recorded; returns the versions applied.
 */
export async function migrate(url: string): Promise<string[]> {
  await withConnection(url, async (sql) => {
    await sql.unsafe(await Deno.readTextFile(BOOTSTRAP));
    await checkOwnership(sql, url);
  });
  return await applyMigrations(asMigrationRole(url));
}

/** What a Supabase project has before its first migration (supabase/local/bootstrap.sql). */
export async function bootstrap(url: string): Promise<void> {
  await withConnection(url, async (sql) => {
    await sql.unsafe(await Deno.readTextFile(BOOTSTRAP));
  });
}

/** A database that an earlier version migrated as a superuser cannot be migrated further. */
async function checkOwnership(sql: postgres.Sql, url: string): Promise<void> {
  const [old] = await sql`
    select pg_get_userbyid(nspowner) as owner from pg_namespace
    where nspname = 'supabase_migrations' and pg_get_userbyid(nspowner) <> ${MIGRATION_ROLE}`;
  if (old) {
    throw new Error(
      `${databaseName(url)} was migrated as ${old.owner} by an earlier version; migrations now ` +
        `run as ${MIGRATION_ROLE}, like on a Supabase project: \`deno task db:reset\` rebuilds it ` +
        "(its data is lost)",
    );
  }
}

async function applyMigrations(url: string): Promise<string[]> {
  return await withConnection(url, async (sql) => {
    // Same bookkeeping table as the Supabase CLI, so `supabase db push` sees what was applied.
    await sql.unsafe(`
      create schema if not exists supabase_migrations;
      create table if not exists supabase_migrations.schema_migrations (
        version text primary key, statements text[], name text
      );`);
    const done = new Set(
      (await sql`select version from supabase_migrations.schema_migrations`).map((r) => r.version),
    );
    const applied: string[] = [];
    for (const file of await migrationFiles()) {
      if (done.has(file.version)) continue;
      const text = await Deno.readTextFile(file.path);
      await sql.begin(async (tx) => {
        await tx.unsafe(text);
        await tx`insert into supabase_migrations.schema_migrations (version, name, statements)
                 values (${file.version}, ${file.name}, ${[text]})`;
      });
      applied.push(file.version);
    }
    return applied;
  });
}

export async function resetDatabase(url: string): Promise<string[]> {
  await dropAndCreate(url);
  return await migrate(url);
}

/** Whether the pg_cron job that calls runMaintenance exists (never where pg_cron is missing). */
export async function maintenanceScheduled(url: string): Promise<boolean> {
  return await withConnection(url, async (sql) => {
    const [{ scheduled }] = await sql`select job_service.maintenance_scheduled() as scheduled`;
    return scheduled === true;
  });
}
