// The pgTAP runner of `deno task test` (scripts/lib/pgtap.ts) judges a file as pg_prove does:
// passing and failing assertions counted, a file that runs fewer tests than it planned or stops on
// an error fails, and psql meta-commands are refused rather than sent as SQL. Real pgTAP, on the
// test database.
import assert from "node:assert/strict";
import { runTapFile } from "../../../scripts/lib/pgtap.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";

const DB_URL = Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL;

async function runSql(body: string) {
  const path = await Deno.makeTempFile({ suffix: ".test.sql" });
  try {
    await Deno.writeTextFile(
      path,
      `begin;\ncreate extension if not exists pgtap with schema extensions;\n${body}\nrollback;\n`,
    );
    return await runTapFile(DB_URL, path);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test({
  name: "pgTAP runner: counts passing and failing assertions and prints pgTAP's diagnostics",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const passing = await runSql(`select plan(2);
      select ok(true, 'first');
      select is(1 + 1, 2, 'second');
      select * from finish();`);
    assert.deepEqual({ passed: passing.passed, failed: passing.failed }, { passed: 2, failed: 0 });
    assert.match(passing.output, /^1\.\.2$/m);
    assert.match(passing.output, /^ok 2 - second$/m);

    const failing = await runSql(`select plan(3);
      select ok(true, 'holds');
      select is(1, 2, 'one is two');
      select ok(false, 'false');
      select * from finish();`);
    assert.deepEqual({ passed: failing.passed, failed: failing.failed }, { passed: 1, failed: 2 });
    assert.match(failing.output, /^not ok 2 - one is two$/m);
    assert.match(failing.output, /^#\s+have: 1$/m);
  },
});

Deno.test({
  name: "pgTAP runner: tests planned but not run fail, and so does a file stopped by an error",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const short = await runSql(`select plan(3); select ok(true, 'only one');`);
    assert.deepEqual({ passed: short.passed, failed: short.failed }, { passed: 1, failed: 2 });
    assert.match(short.output, /planned 3 tests but ran 1/);

    const stopped = await runSql(`select plan(2); select ok(true, 'before'); select 1 / 0;`);
    assert.equal(stopped.failed >= 1, true, JSON.stringify(stopped));
    assert.match(stopped.output, /stopped by an error: division by zero/);

    const noPlan = await runSql(`select 1 / 0;`);
    assert.deepEqual({ passed: noPlan.passed, failed: noPlan.failed }, { passed: 0, failed: 1 });
  },
});

Deno.test("pgTAP runner: a psql meta-command fails the file instead of reaching the server", async () => {
  const result = await runSql(`\\set answer 42\nselect plan(1); select ok(true);`);
  assert.deepEqual({ passed: result.passed, failed: result.failed }, { passed: 0, failed: 1 });
  assert.match(result.output, /psql meta-commands/);
});
