// What `deno task test` needs besides Deno and its npm packages: pgTAP in the PostgreSQL under
// test, and PostgreSQL's client tools (pg_dump, pg_restore, psql) for the backup tests. Prepared
// where this command can (the embedded server's own installation; apt-get as root on Debian),
// otherwise named in one line with the command that installs it.
import postgres from "postgres";
import { aptInstall, aptUnpack, hasApt, isRoot } from "./apt.ts";
import type { Installation } from "./embedded_postgres.ts";

/** Something the tests need that this command could not provide; the message says what and how. */
export class Missing extends Error {}

interface Server {
  major: number;
  pgtap: boolean;
  /** host:port, for messages */
  address: string;
}

async function inspect(dbUrl: string): Promise<Server> {
  const url = new URL(dbUrl);
  url.pathname = "/postgres";
  const sql = postgres(url.toString(), { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    const [row] = await sql`
      select current_setting('server_version_num')::int / 10000 as major,
             exists (select from pg_available_extensions where name = 'pgtap') as pgtap`;
    return { major: row.major, pgtap: row.pgtap, address: `${url.hostname}:${url.port || 5432}` };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function copyPgTap(from: string, to: string): Promise<void> {
  for await (const entry of Deno.readDir(from)) {
    if (entry.isFile && entry.name.startsWith("pgtap")) {
      await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
    }
  }
}

/**
 * pgTAP is plain SQL: its control and script files go into the embedded installation's extension
 * folder, taken from Debian's postgresql-<major>-pgtap (installed, or unpacked without installing,
 * since that package depends on the whole PostgreSQL server).
 */
async function addPgTap(installation: Installation): Promise<void> {
  const pkg = `postgresql-${installation.major}-pgtap`;
  const installed = `/usr/share/postgresql/${installation.major}/extension`;
  if (exists(`${installed}/pgtap.control`)) {
    return await copyPgTap(installed, installation.extensionDir);
  }
  if (!hasApt()) {
    throw new Missing(
      `missing: pgTAP for the embedded PostgreSQL, which this command takes from Debian's ${pkg} ` +
        `with apt-get (not on this system): set SUPABASE_DB_URL to a PostgreSQL ${installation.major} with pgTAP`,
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "pgtap-" });
  try {
    if (!(await aptUnpack(pkg, dir))) {
      throw new Missing(
        isRoot()
          ? `missing: pgTAP for the embedded PostgreSQL: apt has no ${pkg} even after apt-get update`
          : `missing: pgTAP for the embedded PostgreSQL: apt does not know ${pkg} yet; run: sudo apt-get update`,
      );
    }
    await copyPgTap(`${dir}/root${installed}`, installation.extensionDir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Makes `create extension pgtap` work in the server of `dbUrl`; returns its major version. */
export async function preparePgTap(dbUrl: string, embedded?: Installation): Promise<number> {
  const server = await inspect(dbUrl);
  if (server.pgtap) return server.major;
  const pkg = `postgresql-${server.major}-pgtap`;
  if (embedded) {
    console.log(`adding pgTAP (Debian's ${pkg}) to the embedded PostgreSQL`);
    await addPgTap(embedded);
  } else if (
    isRoot() && hasApt() && ["127.0.0.1", "localhost", "[::1]"].includes(new URL(dbUrl).hostname) &&
    exists(`/usr/lib/postgresql/${server.major}/bin/postgres`)
  ) {
    // the machine's own Debian PostgreSQL
    console.log(`installing ${pkg} with apt-get (pgTAP for the PostgreSQL at ${server.address})`);
    await aptInstall([pkg]);
  } else {
    throw new Missing(
      `missing: pgTAP in the PostgreSQL ${server.major} at ${server.address}; install it there: sudo apt-get install -y ${pkg}`,
    );
  }
  if (!(await inspect(dbUrl)).pgtap) {
    throw new Missing(
      `missing: pgTAP in the PostgreSQL at ${server.address} after installing ${pkg}`,
    );
  }
  return server.major;
}

/**
 * plpgsql_check, which `supabase db lint` runs (the lint test): installed with apt-get for the
 * machine's own Debian PostgreSQL where this command can; an embedded server or another machine's
 * goes without (the lint test then says what is missing; in CI it fails).
 */
export async function preparePlpgsqlCheck(dbUrl: string, embedded?: Installation): Promise<void> {
  const url = new URL(dbUrl);
  url.pathname = "/postgres";
  const available = async () => {
    const sql = postgres(url.toString(), { max: 1, onnotice: () => {}, connect_timeout: 10 });
    try {
      const [row] = await sql`
        select exists (select from pg_available_extensions where name = 'plpgsql_check') as ok,
               current_setting('server_version_num')::int / 10000 as major`;
      return row as { ok: boolean; major: number };
    } finally {
      await sql.end({ timeout: 5 });
    }
  };
  const server = await available();
  if (server.ok || embedded) return;
  if (
    isRoot() && hasApt() && ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname) &&
    exists(`/usr/lib/postgresql/${server.major}/bin/postgres`)
  ) {
    const pkg = `postgresql-${server.major}-plpgsql-check`;
    console.log(`installing ${pkg} with apt-get (plpgsql_check, for supabase db lint)`);
    await aptInstall([pkg]).catch((error) => console.log(`could not install ${pkg}: ${error}`));
  }
}

const CLIENT_TOOLS = ["pg_dump", "pg_restore", "psql"];

/** The oldest major version among the client tools, or undefined when one is not installed. */
async function clientMajor(): Promise<number | undefined> {
  let oldest = Infinity;
  for (const tool of CLIENT_TOOLS) {
    try {
      const out = await new Deno.Command(tool, { args: ["--version"], stderr: "null" }).output();
      const major = Number(/\(PostgreSQL\) (\d+)/.exec(new TextDecoder().decode(out.stdout))?.[1]);
      if (!out.success || !major) return undefined;
      oldest = Math.min(oldest, major);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }
  return oldest;
}

/** pg_dump, pg_restore and psql of at least the server's major version (scripts/backup.sh). */
export async function prepareClientTools(serverMajor: number): Promise<void> {
  const have = await clientMajor();
  if (have !== undefined && have >= serverMajor) return;
  const pkg = `postgresql-client-${serverMajor}`;
  const what = have === undefined
    ? CLIENT_TOOLS.join(", ")
    : `client tools of PostgreSQL ${serverMajor} (pg_dump is ${have})`;
  if (!(isRoot() && hasApt())) {
    throw new Missing(
      `missing: ${what} (for the backup tests); install them: sudo apt-get install -y ${pkg}`,
    );
  }
  console.log(`installing ${pkg} with apt-get (${what}, for the backup tests)`);
  await aptInstall([pkg]);
  const now = await clientMajor();
  if (now === undefined || now < serverMajor) {
    throw new Missing(`missing: ${what} after installing ${pkg}`);
  }
}

const SUPABASE_CLI_DIR = new URL("../../tools/supabase-cli/", import.meta.url).pathname;
/** The pinned Supabase CLI (tools/supabase-cli), for the migration tests that run `db push`. */
export const SUPABASE_CLI = `${SUPABASE_CLI_DIR}node_modules/.bin/supabase`;

/** Installs the pinned Supabase CLI from npm (tools/supabase-cli/package-lock.json) if missing. */
export async function prepareSupabaseCli(): Promise<void> {
  if (exists(SUPABASE_CLI)) return;
  console.log("installing the pinned Supabase CLI (npm ci in tools/supabase-cli)");
  const npm = await new Deno.Command("npm", {
    args: ["ci", "--no-audit", "--no-fund", "--loglevel=error"],
    cwd: SUPABASE_CLI_DIR,
    stdout: "inherit",
    stderr: "inherit",
  }).output().catch(() => null);
  if (!npm?.success || !exists(SUPABASE_CLI)) {
    throw new Missing(
      "missing: the Supabase CLI (for the migration tests); install it: " +
        "npm ci --prefix tools/supabase-cli",
    );
  }
}
