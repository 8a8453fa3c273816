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

/** Whether a URL names this machine (unset counts as local: the local commands). */
export function isLoopbackUrl(url: string | undefined): boolean {
  if (url === undefined) return true;
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    return host === "localhost" || host === "::1" || /^127\./.test(host);
  } catch {
    return false;
  }
}

/** Connections per instance where SUPABASE_URL names a project (not this machine). */
export const DEPLOYED_POOL_MAX = 3;
/** Connections per instance of the local server (one long-lived process takes all the load). */
export const LOCAL_POOL_MAX = 10;

/**
 * The pool size of one function instance: DB_POOL_MAX, else small when deployed. The Edge Runtime
 * runs many short-lived instances, each with its own pool, against one database (or pooler) whose
 * connections are few; locally one process serves everything.
 */
export function poolMax(): number {
  const fallback = isLoopbackUrl(env("SUPABASE_URL")) ? LOCAL_POOL_MAX : DEPLOYED_POOL_MAX;
  const max = intEnv("DB_POOL_MAX", fallback);
  return max >= 1 ? max : fallback;
}
