// Configuration read from the environment. Names match what Supabase sets for deployed Edge
// Functions (SUPABASE_DB_URL, SUPABASE_URL, …); the credentials are read in auth_config.ts. No
// secret has a default here: the local commands supply theirs (scripts/lib/local_auth.ts).

/** Database of `deno task dev` when SUPABASE_DB_URL is not set. */
export const DEFAULT_DB_URL = "postgresql://postgres@127.0.0.1:5432/job_operations";

export function env(name: string): string | undefined {
  const value = Deno.env.get(name);
  return value === undefined || value === "" ? undefined : value;
}

/**
 * The database the functions use. A transaction-mode pooler URL (custom secret DB_POOLER_URL) wins;
 * it cannot keep prepared statements. Else JOB_SERVICE_DB_URL, the URL of the functions' own
 * least-privilege role job_service_runtime (docs/operations.md#least-privilege), and only where
 * that is unset the direct SUPABASE_DB_URL Supabase provides (its `postgres` role owns every table).
 */
export function databaseConfig(): { url: string; prepare: boolean } {
  const pooler = env("DB_POOLER_URL");
  if (pooler) return { url: pooler, prepare: false };
  return {
    url: env("JOB_SERVICE_DB_URL") ?? env("SUPABASE_DB_URL") ?? DEFAULT_DB_URL,
    prepare: true,
  };
}

export function intEnv(name: string, fallback: number): number {
  const raw = env(name);
  const value = raw === undefined ? NaN : Number(raw);
  return Number.isInteger(value) && value >= 0 ? value : fallback;
}
