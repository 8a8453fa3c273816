// The typed SQL boundary (supabase/functions/_shared/sql_api.ts) is what the migrated database's
// catalogue says: the same entry points, arguments, answers and error codes (what
// `deno task gen --check` also checks, here on the test database), and the functions call SQL only
// through it.
import assert from "node:assert/strict";
import postgres from "postgres";
import { test } from "../helpers/service.ts";
import { readCatalogue, SQL_API_PATH, sqlApiModule } from "../../../scripts/lib/sql_boundary.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";
import { SQL_ERROR_CODES, SQL_RAISES } from "../../functions/_shared/sql_api.ts";
import { ERROR_STATUS } from "../../../scripts/lib/openapi.ts";

const ROOT = new URL("../../../", import.meta.url);

async function catalogue() {
  const sql = postgres(Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL, {
    max: 1,
    onnotice: () => {},
  });
  try {
    return await readCatalogue(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

test("sql_api.ts is what the catalogue of the migrated database generates (deno task gen)", async () => {
  const committed = await Deno.readTextFile(new URL(SQL_API_PATH, ROOT));
  const generated = await sqlApiModule(await catalogue());
  assert.equal(committed, generated, "run `deno task gen` and commit the result");
});

test("the catalogue reading finds what the SQL raises, through calls and triggers", async () => {
  const { entryPoints, codes } = await catalogue();
  const raises = Object.fromEntries(entryPoints.map((e) => [e.name, e.raises]));
  // raised by the entry point itself
  assert.ok(raises.create_job.includes("IDEMPOTENCY_CONFLICT"));
  // through job_service.raise_not_found
  assert.ok(raises.get_job.includes("JOB_NOT_FOUND"));
  // through the status trigger on jobs, which apply_job_update writes
  assert.ok(raises.apply_job_update.includes("INVALID_TRANSITION"));
  // a read-only entry point raises nothing
  assert.deepEqual(raises.get_stats, []);
  assert.deepEqual([...SQL_ERROR_CODES], codes);
  assert.deepEqual(Object.keys(SQL_RAISES).sort(), entryPoints.map((e) => e.name).sort());
});

test("every code an entry point may raise that reaches callers has a documented status", async () => {
  await Promise.resolve();
  const internal = new Set(["STALE_DECISION", "AUDIT_LOG_APPEND_ONLY"]);
  for (const code of SQL_ERROR_CODES) {
    if (internal.has(code)) continue;
    assert.ok(code in ERROR_STATUS, `${code} is not in the API's error table`);
  }
});

test("the functions reach SQL entry points only through sql_api.ts", async () => {
  const offenders: string[] = [];
  const walk = async (dir: URL) => {
    for await (const entry of Deno.readDir(dir)) {
      const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
      if (entry.isDirectory) await walk(url);
      else if (entry.name.endsWith(".ts") && !url.pathname.endsWith("/_shared/sql_api.ts")) {
        const text = await Deno.readTextFile(url);
        // a statement naming an entry point (comments may name them)
        if (/sql`[^`]*job_service_api\./.test(text)) offenders.push(url.pathname);
      }
    }
  };
  await walk(new URL("supabase/functions/", ROOT));
  assert.deepEqual(offenders, []);
});
