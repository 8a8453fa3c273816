// deno task db:reset — drop and recreate the database named by SUPABASE_DB_URL, apply the local
// Supabase bootstrap and every migration.
import { localDbUrl, resetDatabase } from "./lib/database.ts";

const url = localDbUrl();
const applied = await resetDatabase(url);
console.log(
  `database ${new URL(url).pathname.slice(1)} reset: ${applied.length} migrations applied`,
);
