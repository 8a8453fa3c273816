// `supabase db lint` (the pinned Supabase CLI running plpgsql_check) over the service's schemas at
// level warning must report nothing: an implicit cast, an unused or never-read variable or a
// reference that does not resolve fails here, so the SQL stays as clean as it is today. A finding
// that is deliberate is switched off in the function itself, with the reason beside it (an
// `@plpgsql_check_options` comment), never here.
//
// It connects as the database's superuser: the CLI creates the plpgsql_check extension, which only a
// superuser may (on a hosted project Supabase's own `postgres` role can). Where plpgsql_check is not
// installed (an embedded PostgreSQL) the test says so and is skipped, except in CI, where it fails.
import assert from "node:assert/strict";
import postgres from "postgres";
import { SUPABASE_CLI } from "../../../scripts/lib/test_prerequisites.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";

const DB_URL = Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL;
const SCHEMAS = ["job_service", "job_service_api"];

async function plpgsqlCheckAvailable(): Promise<boolean> {
  const sql = postgres(DB_URL, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`
      select exists (select from pg_available_extensions where name = 'plpgsql_check') as ok`;
    return row.ok as boolean;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

const available = await plpgsqlCheckAvailable();
if (!available && Deno.env.get("CI") !== "true") {
  console.log(
    "db lint: skipped, plpgsql_check is not installed in this PostgreSQL " +
      "(Debian: apt-get install postgresql-15-plpgsql-check)",
  );
}

Deno.test({
  name:
    "db lint: supabase db lint finds nothing at level warning in job_service and job_service_api",
  ignore: !available && Deno.env.get("CI") !== "true",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assert.ok(available, "plpgsql_check is not installed in the PostgreSQL the tests use");
    const target = new URL(DB_URL);
    target.searchParams.set("sslmode", "disable"); // the local server has no TLS
    const out = await new Deno.Command(SUPABASE_CLI, {
      args: [
        "db",
        "lint",
        "--db-url",
        target.toString(),
        ...SCHEMAS.flatMap((schema) => ["--schema", schema]),
        "--level",
        "warning",
        "--fail-on",
        "warning",
        "-o",
        "json",
      ],
      env: { SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    // the CLI prints [] (or nothing) when every function is clean
    const findings = stdout.trim()
      ? JSON.parse(stdout) as { function: string; issues: unknown[] }[]
      : [];
    assert.deepEqual(
      findings.map((f) => ({ function: f.function, issues: f.issues })),
      [],
      `supabase db lint:\n${stdout}\n${stderr}`,
    );
    assert.equal(out.code, 0, stderr);
    assert.match(stderr, /Linting schema: job_service_api/);
  },
});
