// deno task test — every test: pgTAP database tests (pg_prove), then unit and integration tests
// (deno test) against the functions served from a separate process, all on a freshly reset test
// database. Ends with one line "N passed, M failed".
//
// Environment: TEST_DB_URL (default: the SUPABASE_DB_URL database with "_test" appended to its
// name), PG_PROVE (default "pg_prove"). Arguments are passed on to `deno test` (e.g. a filter).
import { localDbUrl, resetDatabase } from "./lib/database.ts";
import { spawnServer } from "./lib/server_process.ts";
import { signingSecret } from "./lib/local_auth.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** A project secret key the test server accepts, as Supabase passes them (name → key). */
const SECRET_KEYS = JSON.stringify({ default: "sb_secret_local_test_key" });
const RESULTS_DIR = `${ROOT}.test-results`;

function testDbUrl(): string {
  const given = Deno.env.get("TEST_DB_URL");
  if (given) return given;
  const url = new URL(localDbUrl());
  url.pathname = `${url.pathname}_test`;
  return url.toString();
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
  if (files.length === 0) return { passed: 0, failed: 0 };
  const url = new URL(dbUrl);
  const env: Record<string, string> = {};
  if (url.password) env.PGPASSWORD = decodeURIComponent(url.password);
  const output = await new Deno.Command(Deno.env.get("PG_PROVE") ?? "pg_prove", {
    args: [
      "--verbose",
      "--host",
      url.hostname,
      "--port",
      url.port || "5432",
      "--username",
      decodeURIComponent(url.username || "postgres"),
      "--dbname",
      decodeURIComponent(url.pathname.slice(1)),
      ...files,
    ],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const errors = new TextDecoder().decode(output.stderr);
  await Deno.stdout.write(output.stdout);
  await Deno.stderr.write(output.stderr);
  const passed = (text.match(/^ok \d+/gm) ?? []).length;
  let failed = (text.match(/^not ok \d+/gm) ?? []).length;
  // A file that dies before its plan is complete fails without a "not ok" line.
  if (!output.success && failed === 0) failed = 1;
  if (!output.success && /Connection refused|could not connect/i.test(errors)) {
    failed = Math.max(failed, 1);
  }
  return { passed, failed };
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
const dbUrl = testDbUrl();
await Deno.mkdir(RESULTS_DIR, { recursive: true });
console.log(`test database: ${new URL(dbUrl).pathname.slice(1)}`);
await resetDatabase(dbUrl);

const sql = await runPgTap(dbUrl);
console.log(`pgTAP: ${sql.passed} passed, ${sql.failed} failed`);

const server = await spawnServer({
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

const passed = sql.passed + deno.passed;
const failed = sql.failed + deno.failed;
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 ? 0 : 1);
