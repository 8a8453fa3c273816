// Configuration read from the environment. Names match what Supabase sets for deployed Edge
// Functions (SUPABASE_DB_URL, SUPABASE_JWT_SECRET, SUPABASE_JWKS, SUPABASE_SECRET_KEYS); the
// defaults are the local development values of the spec.

/** Database of `deno task dev` when SUPABASE_DB_URL is not set. */
export const DEFAULT_DB_URL = "postgresql://postgres@127.0.0.1:5432/job_operations";

/** The Supabase CLI's well-known local development JWT secret. */
export const LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

export function env(name: string): string | undefined {
  const value = Deno.env.get(name);
  return value === undefined || value === "" ? undefined : value;
}

/**
 * The database the functions use. A transaction-mode pooler URL (custom secret DB_POOLER_URL) wins
 * over the direct SUPABASE_DB_URL; it cannot keep prepared statements.
 */
export function databaseConfig(): { url: string; prepare: boolean } {
  const pooler = env("DB_POOLER_URL");
  if (pooler) return { url: pooler, prepare: false };
  return { url: env("SUPABASE_DB_URL") ?? DEFAULT_DB_URL, prepare: true };
}

export function jwtSecret(): string {
  return env("SUPABASE_JWT_SECRET") ?? LOCAL_JWT_SECRET;
}

export function intEnv(name: string, fallback: number): number {
  const raw = env(name);
  const value = raw === undefined ? NaN : Number(raw);
  return Number.isInteger(value) && value >= 0 ? value : fallback;
}
