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

/** Applies the local bootstrap and every migration not yet recorded; returns the versions applied. */
export async function migrate(url: string): Promise<string[]> {
  return await withConnection(url, async (sql) => {
    await sql.unsafe(await Deno.readTextFile(BOOTSTRAP));
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
