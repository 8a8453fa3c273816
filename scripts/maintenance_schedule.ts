// deno task maintenance:schedule --url https://<ref>.supabase.co
// The one step that schedules runMaintenance every minute on a Supabase project: runs
// job_service_api.schedule_maintenance(url, key) against DATABASE_URL, else SUPABASE_DB_URL (the
// project's database as its `postgres` role), which stores the URL and the key in Vault and creates the pg_cron job
// that calls the function through pg_net. Running it again updates both and leaves one schedule.
//
// The key (a secret key sb_secret_… or the legacy service_role key) comes from MAINTENANCE_KEY or
// from standard input, never from the command line (it would stay in the shell's history and be
// visible to every user of the machine in the process list). The URL comes from --url, else
// MAINTENANCE_URL, else SUPABASE_URL.
import { parseArgs } from "node:util";
import postgres from "postgres";
import { DEFAULT_DB_URL, env } from "../supabase/functions/_shared/env.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { url: { type: "string" }, key: { type: "string" }, help: { type: "boolean" } },
});

const USAGE =
  `usage: MAINTENANCE_KEY=… deno task maintenance:schedule --url https://<ref>.supabase.co
   or: deno task maintenance:schedule --url https://<ref>.supabase.co < key-file
The database is DATABASE_URL, else SUPABASE_DB_URL (Dashboard > Connect: the session pooler or
direct connection, user postgres).`;

if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
if (values.key !== undefined) {
  console.error(
    "maintenance:schedule: the key is not taken from the command line (shell history, process " +
      "list): set MAINTENANCE_KEY or pipe it on standard input",
  );
  Deno.exit(2);
}

const url = values.url ?? env("MAINTENANCE_URL") ?? env("SUPABASE_URL");
if (!url) {
  console.error(`maintenance:schedule: no project URL\n${USAGE}`);
  Deno.exit(2);
}

async function readKey(): Promise<string> {
  const given = env("MAINTENANCE_KEY");
  if (given) return given.trim();
  if (Deno.stdin.isTerminal()) {
    // typed by hand: not echoed
    await Deno.stdout.write(new TextEncoder().encode("secret key (not shown): "));
    Deno.stdin.setRaw(true);
    const bytes: number[] = [];
    const buffer = new Uint8Array(1);
    try {
      for (;;) {
        const n = await Deno.stdin.read(buffer);
        if (n === null || buffer[0] === 13 || buffer[0] === 10) break;
        if (buffer[0] === 3) Deno.exit(130); // Ctrl-C
        if (buffer[0] === 127 || buffer[0] === 8) bytes.pop();
        else bytes.push(buffer[0]);
      }
    } finally {
      Deno.stdin.setRaw(false);
      await Deno.stdout.write(new TextEncoder().encode("\n"));
    }
    return new TextDecoder().decode(new Uint8Array(bytes)).trim();
  }
  return (await new Response(Deno.stdin.readable).text()).trim();
}

const key = await readKey();
if (!key) {
  console.error(`maintenance:schedule: no key\n${USAGE}`);
  Deno.exit(2);
}

const dbUrl = env("DATABASE_URL") ?? env("SUPABASE_DB_URL") ?? DEFAULT_DB_URL;
const sql = postgres(dbUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
try {
  const [{ result }] = await sql`
    select job_service_api.schedule_maintenance(${url}, ${key}) as result`;
  console.log(
    `maintenance scheduled: ${result.cron_job} (${result.schedule}) posts runMaintenance to ` +
      `${result.url}; Vault secrets ${result.secrets.join(", ")}`,
  );
} catch (error) {
  if (error instanceof postgres.PostgresError) {
    console.error(`maintenance:schedule: ${error.message}${error.hint ? `\n${error.hint}` : ""}`);
    Deno.exitCode = 1;
  } else {
    throw error;
  }
} finally {
  await sql.end({ timeout: 5 });
}
