// The typed SQL boundary, generated from the database catalogue: one TypeScript function per entry
// point of job_service_api (its arguments and their types, its answer, the error codes it may
// raise), written to supabase/functions/_shared/sql_api.ts by `deno task gen` and compared by
// `deno task gen --check` and the test suite, so that the functions and the SQL cannot drift apart.
//
// Error codes come from a static reading of the routines' sources: an entry point may raise what it
// raises itself, what the job_service routines it calls may raise, and what the triggers of the
// tables it writes may raise (transitively). SQL names every code as `message = 'CODE'` with an
// errcode `JSnnn` (translateDbError turns it into the HTTP status nnn); a check violation or a
// data exception raised by hand is VALIDATION_ERROR.
import type postgres from "postgres";

export const SQL_API_PATH = "supabase/functions/_shared/sql_api.ts";

interface Routine {
  schema: string;
  name: string;
  args: { name: string; type: string }[];
  /** the declared result (`jsonb`, `integer`, `TABLE(...)`) */
  result: string;
  returnsSet: boolean;
  source: string;
  /** the functions' runtime role may execute it (operator-only entry points are not) */
  runtime: boolean;
}

export interface EntryPoint {
  name: string;
  args: { name: string; type: string }[];
  result: string;
  returnsSet: boolean;
  raises: string[];
}

export interface Catalogue {
  entryPoints: EntryPoint[];
  /** every code any routine of the service raises */
  codes: string[];
}

const RAISE_RE = /raise\s+exception\s+using\s+([^;]*);/gi;

/** The codes a routine's source raises, as translateDbError (db.ts) turns them into answers. */
function codesRaised(source: string): string[] {
  const codes: string[] = [];
  for (const [, options] of source.matchAll(RAISE_RE)) {
    const errcode = /errcode\s*=\s*'([0-9A-Z]{5})'/i.exec(options)?.[1];
    const message = /message\s*=\s*'([A-Z][A-Z0-9_]+)'/.exec(options)?.[1];
    if (errcode?.startsWith("JS") && message) codes.push(message);
    else if (errcode && (errcode.startsWith("22") || errcode === "23514" || errcode === "23502")) {
      codes.push("VALIDATION_ERROR");
    }
  }
  return codes;
}
const CALL_RE = /\bjob_service(?:_api)?\.([a-z_][a-z0-9_]*)\s*\(/g;
const WRITE_RE = /\b(insert\s+into|update|delete\s+from)\s+job_service\.([a-z_][a-z0-9_]*)/gi;
/** pg_trigger.tgtype's bit for each kind of write */
const TRIGGER_BIT = { insert: 4, delete: 8, update: 16 } as const;

/** Reads the entry points and what they may raise from a migrated database. */
export async function readCatalogue(sql: postgres.Sql): Promise<Catalogue> {
  const rows = await sql<
    {
      schema: string;
      name: string;
      arg_names: string[] | null;
      arg_types: string[] | null;
      arg_modes: string[] | null;
      result: string;
      returns_set: boolean;
      source: string;
      runtime: boolean;
    }[]
  >`
    select n.nspname as schema, p.proname as name, p.proargnames as arg_names,
           array(select format_type(t, null) from unnest(p.proargtypes) t) as arg_types,
           p.proargmodes::text[] as arg_modes,
           pg_get_function_result(p.oid) as result, p.proretset as returns_set, p.prosrc as source,
           coalesce(has_function_privilege('job_service_runtime', p.oid, 'execute'), false) as runtime
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('job_service', 'job_service_api') and p.prokind = 'f'
    order by n.nspname, p.proname`;
  const triggers = await sql<{ table_name: string; function_name: string; type: number }[]>`
    select c.relname as table_name, p.proname as function_name, t.tgtype::integer as type
    from pg_trigger t
    join pg_class c on c.oid = t.tgrelid
    join pg_namespace n on n.oid = c.relnamespace
    join pg_proc p on p.oid = t.tgfoid
    where n.nspname = 'job_service' and not t.tgisinternal`;

  const routines: Routine[] = rows.map((r) => {
    const inputs = (r.arg_types ?? []).map((type, i) => ({
      // input arguments come first in proargnames; OUT/TABLE columns follow
      name: (r.arg_names?.[i] ?? `arg${i + 1}`).replace(/^p_/, ""),
      type,
    }));
    return {
      schema: r.schema,
      name: r.name,
      args: inputs,
      result: r.result,
      returnsSet: r.returns_set,
      source: r.source,
      runtime: r.runtime,
    };
  });
  const byName = new Map<string, Routine>();
  for (const r of routines) byName.set(r.name, r);
  const triggersOf = (table: string, write: string) => {
    const bit = TRIGGER_BIT[write.split(/\s/)[0].toLowerCase() as keyof typeof TRIGGER_BIT];
    return triggers.filter((t) => t.table_name === table && (t.type & bit) !== 0)
      .map((t) => t.function_name);
  };

  const memo = new Map<string, Set<string>>();
  const raisesOf = (name: string, path: Set<string>): Set<string> => {
    const done = memo.get(name);
    if (done) return done;
    const codes = new Set<string>();
    const routine = byName.get(name);
    if (!routine || path.has(name)) return codes;
    path.add(name);
    for (const c of codesRaised(routine.source)) codes.add(c);
    const callees = new Set([...routine.source.matchAll(CALL_RE)].map((m) => m[1]));
    for (const m of routine.source.matchAll(WRITE_RE)) {
      for (const f of triggersOf(m[2].toLowerCase(), m[1])) callees.add(f);
    }
    for (const callee of callees) {
      if (callee !== name) { for (const c of raisesOf(callee, path)) codes.add(c); }
    }
    path.delete(name);
    memo.set(name, codes);
    return codes;
  };

  // the functions' boundary: the entry points their role may call (not the operator's own, such as
  // schedule_maintenance)
  const entryPoints = routines.filter((r) => r.schema === "job_service_api" && r.runtime).map((
    r,
  ) => ({
    name: r.name,
    args: r.args,
    result: r.result,
    returnsSet: r.returnsSet,
    raises: [...raisesOf(r.name, new Set())].sort(),
  }));
  const codes = new Set<string>();
  for (const r of routines) for (const c of codesRaised(r.source)) codes.add(c);
  return { entryPoints, codes: [...codes].sort() };
}

const camel = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** The TypeScript type of an argument of a PostgreSQL type. */
function argType(name: string, type: string): string {
  if (name === "ctx" && type === "jsonb") return "SqlContext";
  switch (type) {
    case "uuid":
    case "text":
      return "string";
    case "integer":
    case "smallint":
    case "bigint":
    case "numeric":
      return "number";
    case "boolean":
      return "boolean";
    case "jsonb":
    case "json":
      return "unknown";
    case "uuid[]":
    case "text[]":
      return "string[]";
    case "job_service.job_status":
      return "JobStatus";
  }
  throw new Error(`no TypeScript type for ${type} (argument ${name}): extend argType`);
}

/** SQL passes NULL for any argument (the catalogue cannot say which accept it), except the caller. */
function nullable(name: string, type: string): string {
  const ts = argType(name, type);
  return ts === "SqlContext" || ts === "unknown" ? ts : `${ts} | null`;
}

/** The parameter as the statement binds it: JSON through postgres.js's serialiser, others cast. */
function param(name: string, type: string): string {
  const value = `args.${name}`;
  if (type === "jsonb" || type === "json") return `\${jsonb(sql, ${value})}`;
  return `\${${value}}::${type}`;
}

function answerType(e: EntryPoint): string {
  if (e.returnsSet) {
    const columns = /^TABLE\((.*)\)$/.exec(e.result)?.[1];
    if (!columns) throw new Error(`${e.name}: a set-returning entry point must return TABLE(...)`);
    const fields = columns.split(", ").map((c) => {
      const [name, ...type] = c.split(" ");
      return `${name}: ${argType(name, type.join(" ")).replace("SqlContext", "unknown")}`;
    });
    return `{ ${fields.join("; ")} }[]`;
  }
  switch (e.result) {
    case "jsonb":
    case "json":
      return `SqlAnswers["${e.name}"]`;
    case "void":
      return "void";
    case "bytea":
      return "Uint8Array | null";
    case "boolean":
      return "boolean | null";
    case "integer":
    case "bigint":
      return "number";
  }
  throw new Error(`no TypeScript answer type for ${e.result} (${e.name}): extend answerType`);
}

/** The generated module, formatted as `deno fmt` leaves it (so that --check compares like with like). */
export async function sqlApiModule(catalogue: Catalogue): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=ts", "--line-width=100", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(sqlApiSource(catalogue)));
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  if (!success) throw new Error(`deno fmt: ${new TextDecoder().decode(stderr)}`);
  return new TextDecoder().decode(stdout);
}

function sqlApiSource(catalogue: Catalogue): string {
  const lines = [
    "// Generated by `deno task gen` from the database catalogue (scripts/lib/sql_boundary.ts): one",
    "// typed function per entry point of job_service_api, with the error codes it may raise. Do not",
    "// edit; change the migration (and SqlAnswers in sql_answers.ts for a JSON answer), then run",
    "// `deno task gen`.",
    'import { jsonb, queryOne, withDb } from "./db.ts";',
    'import type { JobStatus } from "./job_statuses.ts";',
    'import type { SqlAnswers, SqlContext } from "./sql_answers.ts";',
    "",
    "/** Every error code the service's SQL raises (as `message` with an errcode JSnnn). */",
    "export const SQL_ERROR_CODES = [",
    ...catalogue.codes.map((c) => `  "${c}",`),
    "] as const;",
    "export type SqlErrorCode = typeof SQL_ERROR_CODES[number];",
    "",
    "/** What each entry point may raise. */",
    "export const SQL_RAISES = {",
    ...catalogue.entryPoints.map((e) =>
      `  ${e.name}: [${e.raises.map((c) => `"${c}"`).join(", ")}],`
    ),
    "} as const satisfies Record<string, readonly SqlErrorCode[]>;",
  ];
  for (const e of catalogue.entryPoints) {
    const fn = camel(e.name);
    const argsType = e.args.length === 0
      ? ""
      : `args: { ${e.args.map((a) => `${a.name}: ${nullable(a.name, a.type)}`).join("; ")} }`;
    const call = `job_service_api.${e.name}(${
      e.args.map((a) => param(a.name, a.type)).join(", ")
    })`;
    const answer = answerType(e);
    const raises = e.raises.length ? e.raises.join(", ") : "nothing of its own";
    lines.push("", `/** job_service_api.${e.name}; raises ${raises}. */`);
    if (e.returnsSet) {
      lines.push(
        `export function ${fn}(${argsType}): Promise<${answer}> {`,
        `  return withDb((sql) => sql\`select * from ${call}\`) as Promise<${answer}>;`,
        "}",
      );
    } else if (answer === "void") {
      lines.push(
        `export async function ${fn}(${argsType}): Promise<void> {`,
        `  await withDb((sql) => sql\`select ${call}\`);`,
        "}",
      );
    } else {
      lines.push(
        `export async function ${fn}(${argsType}): Promise<${answer}> {`,
        `  const row = await queryOne((sql) => sql\`select ${call} as answer\`, "answer");`,
        `  return row.answer as ${answer};`,
        "}",
      );
    }
  }
  return lines.join("\n") + "\n";
}
