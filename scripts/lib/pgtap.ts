// Runs pgTAP test files (plain SQL, no psql meta-commands) the way pg_prove does: each file in a
// session of its own, its rows printed as TAP and judged by a TAP parser (tap-parser). A file that
// stops on an error, or runs fewer tests than it planned, fails. Why not pg_prove: docs/decisions.md.
import postgres from "postgres";
import { type FinalResults, Parser } from "tap-parser";

export interface TapCounts {
  passed: number;
  failed: number;
}

interface FileResult extends TapCounts {
  /** the TAP the file printed, and the error that stopped it */
  output: string;
}

function parse(
  tap: string,
): Promise<{ pass: number; notOk: number; count: number; plan?: number }> {
  return new Promise((resolve) => {
    const parser = new Parser();
    parser.on("complete", (results: FinalResults) => {
      const { start, end } = results.plan;
      const plan = start === null || end === null ? undefined : end - start + 1;
      // the parser adds failures of its own for a missing or unmet plan: counted below instead
      const notOk = results.failures.filter((failure) => !failure.tapError).length;
      resolve({ pass: results.pass, notOk, count: results.count, plan });
    });
    parser.end(tap.endsWith("\n") ? tap : `${tap}\n`);
  });
}

/** Every row of every statement, columns joined by "|" (psql's unaligned, tuples-only output). */
function rowsAsText(results: unknown): string {
  // one statement gives one result; several give a list of them
  const list = (Array.isArray(results) && results.length > 0 && Array.isArray(results[0]))
    ? results as Record<string, unknown>[][]
    : [results as Record<string, unknown>[]];
  const show = (value: unknown) =>
    typeof value === "object" && value !== null && !(value instanceof Date)
      ? JSON.stringify(value)
      : String(value ?? "");
  return list.flatMap((rows) => rows.map((row) => Object.values(row).map(show).join("|")))
    .filter((line) => line !== "").join("\n");
}

export async function runTapFile(dbUrl: string, path: string): Promise<FileResult> {
  const text = await Deno.readTextFile(path);
  if (/^\s*\\/m.test(text)) {
    return { passed: 0, failed: 1, output: `# ${path}: psql meta-commands (\\...) are not run` };
  }
  const sql = postgres(dbUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  let output = "";
  let error: string | undefined;
  try {
    output = rowsAsText(await sql.unsafe(text).simple());
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  } finally {
    await sql.end({ timeout: 5 });
  }
  const tap = await parse(output);
  // tests it planned but never ran failed (pg_prove: "Bad plan"); so did a file without a plan
  const missing = tap.plan === undefined ? 1 : Math.max(0, tap.plan - tap.count);
  const failed = tap.notOk + (error ? Math.max(missing, 1) : missing);
  if (error) output += `\n# stopped by an error: ${error}`;
  if (tap.plan !== undefined && tap.count !== tap.plan) {
    output += `\n# planned ${tap.plan} tests but ran ${tap.count}`;
  }
  return { passed: tap.pass, failed, output };
}

/** Runs the files one after another, printing each one's TAP like `pg_prove --verbose`. */
export async function runTapFiles(dbUrl: string, paths: string[]): Promise<TapCounts> {
  const total = { passed: 0, failed: 0 };
  for (const path of paths) {
    const result = await runTapFile(dbUrl, path);
    console.log(`${path} ..\n${result.output}\n${result.failed ? "Failed" : "ok"}`);
    total.passed += result.passed;
    total.failed += result.failed;
  }
  return total;
}
