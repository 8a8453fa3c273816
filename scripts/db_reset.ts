// deno task db:reset — drop and recreate the database named by SUPABASE_DB_URL, apply the local
// Supabase bootstrap and every migration (in the embedded PostgreSQL when `deno task dev` would
// use it).
import { resetDatabase } from "./lib/database.ts";
import { localDatabase } from "./lib/local_database.ts";

const db = await localDatabase();
try {
  const applied = await resetDatabase(db.url);
  console.log(
    `database ${new URL(db.url).pathname.slice(1)} reset: ${applied.length} migrations applied`,
  );
} finally {
  await db.stop();
}
