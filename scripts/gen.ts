// deno task gen [--check] — writes every generated file, each from its one source:
// - generatedFiles() (scripts/lib/generate.ts): the status machine's migration and diagram, the
//   OpenAPI document and the API reference;
// - the typed SQL boundary (scripts/lib/sql_boundary.ts), read from the catalogue of a scratch
//   database that the migrations are applied to (on the PostgreSQL of `deno task dev`, then
//   dropped).
// With --check, changes nothing and fails when a committed file differs from what it would write.
import postgres from "postgres";
import { generatedFiles } from "./lib/generate.ts";
import { readCatalogue, SQL_API_PATH, sqlApiModule } from "./lib/sql_boundary.ts";
import { dropDatabase, resetDatabase } from "./lib/database.ts";
import { localDatabase } from "./lib/local_database.ts";

const ROOT = new URL("../", import.meta.url);
const check = Deno.args.includes("--check");

async function sqlBoundaryFile(): Promise<{ path: string; content: string }> {
  const db = await localDatabase();
  const url = new URL(db.url);
  url.pathname = `/${decodeURIComponent(url.pathname.slice(1))}_gen`;
  const scratch = url.toString();
  try {
    await resetDatabase(scratch);
    const sql = postgres(scratch, { max: 1, onnotice: () => {} });
    try {
      return { path: SQL_API_PATH, content: await sqlApiModule(await readCatalogue(sql)) };
    } finally {
      await sql.end({ timeout: 5 });
    }
  } finally {
    await dropDatabase(scratch).catch(() => {});
    await db.stop();
  }
}

let stale = 0;
for (const file of [...generatedFiles(), await sqlBoundaryFile()]) {
  const url = new URL(file.path, ROOT);
  const current = await Deno.readTextFile(url).catch(() => null);
  if (current === file.content) continue;
  if (check) {
    console.error(`out of date: ${file.path}`);
    stale++;
  } else {
    await Deno.writeTextFile(url, file.content);
    console.log(`wrote ${file.path}`);
  }
}
if (check && stale > 0) {
  console.error("run `deno task gen` and commit the result");
  Deno.exit(1);
}
