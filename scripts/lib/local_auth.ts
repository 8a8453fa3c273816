// The local commands' credentials (platform.md): the Supabase CLI's published local JWT secret,
// used only when no verifier is configured (no JWT_SECRET or SUPABASE_JWT_SECRET, no SUPABASE_JWKS)
// and SUPABASE_URL is unset. With SUPABASE_URL set, a local server verifies exactly as a deployed
// function does. The function code itself never holds a secret.
import { env } from "../../supabase/functions/_shared/env.ts";

/** The Supabase CLI's well-known local development JWT secret: public, never for a real project. */
export const LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

/** What a server started by a local command gets on top of its environment. */
export function localAuthEnv(): Record<string, string> {
  const configured = ["JWT_SECRET", "SUPABASE_JWT_SECRET", "SUPABASE_JWKS", "SUPABASE_URL"]
    .some((name) => env(name) !== undefined);
  return configured ? {} : { JWT_SECRET: LOCAL_JWT_SECRET };
}

/** Applies localAuthEnv() to this process, for a server that runs in it; says which applies. */
export function useLocalAuth(): string {
  const extra = localAuthEnv();
  for (const [name, value] of Object.entries(extra)) Deno.env.set(name, value);
  return extra.JWT_SECRET
    ? "auth: HS256 tokens are checked with the Supabase CLI's public local secret (no verifier configured, SUPABASE_URL unset)"
    : "auth: credentials are verified as a deployed function verifies them";
}

/** The HS256 secret local tokens are signed with, or null when the functions have none. */
export function signingSecret(): string | null {
  return env("JWT_SECRET") ?? env("SUPABASE_JWT_SECRET") ?? localAuthEnv().JWT_SECRET ?? null;
}
