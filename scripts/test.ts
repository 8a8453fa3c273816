// deno task test — every test: pgTAP database tests, then unit and integration tests (deno test)
// against the functions served from a separate process, all on a freshly reset test database.
// Prepares what it needs first (scripts/lib/test_prerequisites.ts) or stops with one line naming
// what is missing. Ends with one line "N passed, M failed".
//
// Environment: TEST_DB_URL (default: the database of `deno task dev` with "_test" appended to its
// name, in the embedded PostgreSQL when dev would use it). Arguments are passed on to `deno test`
// (e.g. a filter).
import { resetDatabase } from "./lib/database.ts";
import { type LocalDatabase, localDatabase, onExitSignal } from "./lib/local_database.ts";
import { runTapFiles } from "./lib/pgtap.ts";
import { type ServerProcess, spawnServer } from "./lib/server_process.ts";
import {
  Missing,
  prepareClientTools,
  preparePgTap,
  preparePlpgsqlCheck,
  prepareSupabaseCli,
} from "./lib/test_prerequisites.ts";
import { env } from "../supabase/functions/_shared/env.ts";
import { signingSecret } from "./lib/local_auth.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** A project secret key the test server accepts, as Supabase passes them (name → key). */
const SECRET_KEYS = JSON.stringify({ default: "sb_secret_local_test_key" });
const RESULTS_DIR = `${ROOT}.test-results`;

async function testDatabase(): Promise<LocalDatabase> {
  const given = env("TEST_DB_URL");
  if (given) return { url: given, stop: async () => {} };
  const db = await localDatabase();
  const url = new URL(db.url);
  url.pathname = `${url.pathname}_test`;
  return { ...db, url: url.toString() };
}

interface Counts {
  passed: number;
  failed: number;
  /** run neither way (ignored, or left out by a filter); not in "N passed, M failed" */
  skipped?: number;
}

async function runPgTap(dbUrl: string): Promise<Counts> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}supabase/tests/database`)) {
    if (entry.isFile && entry.name.endsWith(".sql")) {
      files.push(`supabase/tests/database/${entry.name}`);
    }
  }
  files.sort();
  return await runTapFiles(dbUrl, files.map((file) => `${ROOT}${file}`));
}

async function runDenoTests(serverUrl: string, dbUrl: string): Promise<Counts> {
  const junit = `${RESULTS_DIR}/deno-junit.xml`;
  await Deno.remove(junit).catch(() => {});
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "--allow-all",
      `--junit-path=${junit}`,
      "supabase/tests/",
      ...Deno.args,
    ],
    cwd: ROOT,
    env: {
      JOB_SERVICE_URL: serverUrl,
      SUPABASE_DB_URL: dbUrl,
      TEST_DB_URL: dbUrl,
      SUPABASE_SECRET_KEYS: SECRET_KEYS,
    },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  try {
    const xml = await Deno.readTextFile(junit);
    const head = /<testsuites\b[^>]*>/.exec(xml)?.[0] ?? "";
    const attr = (name: string) => Number(new RegExp(`${name}="(\\d+)"`).exec(head)?.[1] ?? 0);
    const total = attr("tests");
    const failed = attr("failures") + attr("errors");
    // Deno lists ignored tests, and those a filter left out, as <skipped/> test cases without
    // counting them apart in the header: they neither passed nor failed
    const skipped = (xml.match(/<skipped\b/g) ?? []).length;
    return {
      passed: total - failed - skipped,
      failed: failed || (output.success ? 0 : 1),
      skipped,
    };
  } catch {
    return { passed: 0, failed: 1 };
  }
}

// The tests sign their tokens with the secret the test server checks them with.
if (signingSecret() === null) {
  console.log(
    "deno task test signs its tokens: set JWT_SECRET, or unset SUPABASE_URL and SUPABASE_JWKS " +
      "(the test server then uses the Supabase CLI's local secret)",
  );
  console.log("0 passed, 1 failed");
  Deno.exit(1);
}
const starting = testDatabase();
let server: ServerProcess | undefined;
onExitSignal(async () => {
  await server?.stop();
  await (await starting).stop();
});
const db = await starting;

async function run(): Promise<Counts> {
  const dbUrl = db.url;
  const major = await preparePgTap(dbUrl, db.embedded?.installation);
  await prepareClientTools(major);
  await prepareSupabaseCli();
  await preparePlpgsqlCheck(dbUrl, db.embedded?.installation);

  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  console.log(`test database: ${new URL(dbUrl).pathname.slice(1)}`);
  await resetDatabase(dbUrl);

  const sql = await runPgTap(dbUrl);
  console.log(`pgTAP: ${sql.passed} passed, ${sql.failed} failed`);

  server = await spawnServer({
    SUPABASE_DB_URL: dbUrl,
    LOG_LEVEL: Deno.env.get("LOG_LEVEL") ?? "error",
    SUPABASE_SECRET_KEYS: SECRET_KEYS,
  }, { logPath: `${RESULTS_DIR}/server.log` });
  let deno: Counts;
  try {
    deno = await runDenoTests(server.url, dbUrl);
  } finally {
    await server.stop();
  }
  console.log(
    `deno test: ${deno.passed} passed, ${deno.failed} failed` +
      (deno.skipped ? `, ${deno.skipped} skipped (ignored or filtered out)` : ""),
  );
  return { passed: sql.passed + deno.passed, failed: sql.failed + deno.failed };
}

let result: Counts | undefined;
try {
  result = await run();
} catch (error) {
  if (!(error instanceof Missing)) throw error;
  console.error(error.message);
} finally {
  await db.stop();
}
if (!result) Deno.exit(1);
console.log(`${result.passed} passed, ${result.failed} failed`);
Deno.exit(result.failed === 0 ? 0 : 1);
