// One source for limits: every bound of supabase/functions/_shared/limits.ts that the database also
// enforces is read back from the catalogue (the CHECK of the column, or the domain) and must carry
// the same numbers; the zod schemas take their ranges from the same object, checked here on the
// schema by trying the bounds and one step past them.
import assert from "node:assert/strict";
import { test, testDb } from "../helpers/service.ts";
import { type Bound, BOUNDS, type SqlRule } from "../../functions/_shared/limits.ts";
import { CreateJobData } from "../../functions/_shared/job_schemas.ts";

async function definitions(rule: SqlRule): Promise<string[]> {
  const sql = testDb();
  const rows = "domain" in rule
    ? await sql<{ def: string }[]>`
        select pg_get_constraintdef(c.oid) as def
        from pg_constraint c join pg_type t on t.oid = c.contypid
        join pg_namespace n on n.oid = t.typnamespace
        where n.nspname = 'job_service' and t.typname = ${rule.domain} and c.contype = 'c'`
    : await sql<{ def: string }[]>`
        select pg_get_constraintdef(c.oid) as def
        from pg_constraint c
        join pg_class r on r.oid = c.conrelid
        join pg_namespace n on n.oid = r.relnamespace
        join pg_attribute a on a.attrelid = r.oid and a.attnum = any (c.conkey)
        where n.nspname = 'job_service' and r.relname = ${rule.table}
          and a.attname = ${rule.column} and c.contype = 'c'`;
  return rows.map((r) => r.def);
}

/** The number as PostgreSQL prints it in a constraint (0.001, 1048576, (2 * 16384) is not used). */
const printed = (n: number) => String(n);

function mentions(def: string, op: ">=" | "<=", n: number): boolean {
  // (x >= 1) AND (x <= 128), or a domain's (VALUE >= 0); numerics may be printed as 0.001 or
  // with a cast: (0.001)::numeric
  const number = printed(n).replace(".", "\\.");
  return new RegExp(`${op} \\(?${number}\\)?(::[a-z ]+)?\\)`).test(def);
}

test("every bound the database enforces has the numbers of limits.ts", async () => {
  const problems: string[] = [];
  for (const [name, b] of Object.entries(BOUNDS) as [string, Bound][]) {
    for (const rule of b.sql) {
      const where = "domain" in rule ? `domain ${rule.domain}` : `${rule.table}.${rule.column}`;
      const defs = await definitions(rule);
      if (defs.length === 0) {
        problems.push(`${name}: no CHECK on ${where}`);
        continue;
      }
      const text = defs.join(" AND ");
      if (rule.only !== "max" && !mentions(text, ">=", b.min)) {
        problems.push(`${name}: ${where} does not check >= ${b.min}: ${text}`);
      }
      if (rule.only !== "min" && !mentions(text, "<=", b.max)) {
        problems.push(`${name}: ${where} does not check <= ${b.max}: ${text}`);
      }
    }
  }
  assert.deepEqual(problems, []);
});

test("the zod schemas take their ranges from limits.ts (createJob at, and one step past, each bound)", async () => {
  await Promise.resolve();
  const base = { product_id: "p", sending_group_id: "g" };
  const cases: [Record<string, unknown>, Bound][] = [
    [{ priority: 0 }, BOUNDS.priority],
    [{ max_parallel_tasks: 0 }, BOUNDS.maxParallelTasks],
  ];
  for (const [field, b] of cases) {
    const key = Object.keys(field)[0];
    assert.ok(CreateJobData.safeParse({ ...base, [key]: b.min }).success, `${key} = ${b.min}`);
    assert.ok(CreateJobData.safeParse({ ...base, [key]: b.max }).success, `${key} = ${b.max}`);
    assert.equal(CreateJobData.safeParse({ ...base, [key]: b.min - 1 }).success, false);
    assert.equal(CreateJobData.safeParse({ ...base, [key]: b.max + 1 }).success, false);
  }
  const text = (n: number) => "x".repeat(n);
  for (const key of ["product_id", "sending_group_id"] as const) {
    const b = key === "product_id" ? BOUNDS.productId : BOUNDS.sendingGroupId;
    assert.ok(CreateJobData.safeParse({ ...base, [key]: text(b.max) }).success);
    assert.equal(CreateJobData.safeParse({ ...base, [key]: text(b.max + 1) }).success, false);
  }
  const limits = (max_memory: number, max_cpu: number) =>
    CreateJobData.safeParse({ ...base, resource_limits: { max_memory, max_cpu } }).success;
  assert.ok(limits(BOUNDS.maxMemoryMiB.max, BOUNDS.maxCpu.min));
  assert.equal(limits(BOUNDS.maxMemoryMiB.max + 1, 1), false);
  assert.equal(limits(1, BOUNDS.maxCpu.min / 2), false);
});
