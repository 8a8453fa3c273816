// Asks Supabase Auth whether a legacy HS256 user token is valid, where the function has no secret
// to check it with (hosted projects do not give functions their JWT secret): `GET /auth/v1/user`
// with the token, through supabase-js's own Auth client (`auth.getUser(jwt)`). Answers are kept at
// most 60 s (never past the token's expiry) in a bounded cache, so a busy user costs Auth one call
// a minute per instance; concurrent requests with one token share one call.
import {
  AuthClient,
  isAuthApiError,
  isAuthSessionMissingError,
  type User,
} from "@supabase/auth-js";
import { LRUCache } from "lru-cache";

export const USER_ANSWER_TTL_MS = 60_000;
export const USER_ANSWER_MAX = 1_000;
/** How long a call to Auth may take before the request is answered 503. */
export const AUTH_TIMEOUT_MS = 5_000;

/** What Auth said about a token: its user, or why it refused it. */
export type AuthAnswer = { user: User } | { refused: string };

/** Auth could not be asked (unreachable, timed out, overloaded, an answer that is not its own). */
export class AuthUnavailable extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "AuthUnavailable";
  }
}

export interface UserLookupOptions {
  /** the project URL (SUPABASE_URL) */
  url: string;
  /** sent as `apikey`, as supabase-js does; the API gateway in front of Auth wants one */
  apikey: string | null;
  max?: number;
  /** the cache's clock (tests) */
  perf?: { now(): number };
}

/** Looks a token up: `expiresAt` (ms since the epoch, from its `exp`) caps how long the answer is kept. */
export type UserLookup = (token: string, expiresAt: number) => Promise<AuthAnswer>;

export function createUserLookup(options: UserLookupOptions): UserLookup {
  const auth = new AuthClient({
    url: `${options.url}/auth/v1`,
    headers: options.apikey ? { apikey: options.apikey } : {},
    fetch: (input, init) => fetch(input, { ...init, signal: AbortSignal.timeout(AUTH_TIMEOUT_MS) }),
    persistSession: false,
    autoRefreshToken: false,
    detectSessionInUrl: false,
  });
  const cache = new LRUCache<string, AuthAnswer, number>({
    max: options.max ?? USER_ANSWER_MAX,
    ttl: USER_ANSWER_TTL_MS,
    // no timer per look-up (lru-cache otherwise caches its clock for ttlResolution ms)
    ttlResolution: 0,
    perf: options.perf,
    fetchMethod: async (token, _stale, { options: entry, context: expiresAt }) => {
      const answer = await ask(auth, token);
      const untilExpiry = expiresAt - Date.now();
      entry.ttl = Math.max(1, Math.min(USER_ANSWER_TTL_MS, untilExpiry));
      return answer;
    },
  });
  return async (token, expiresAt) => {
    const answer = await cache.fetch(token, { context: expiresAt });
    if (answer === undefined) throw new AuthUnavailable("Supabase Auth gave no answer.");
    return answer;
  };
}

async function ask(auth: InstanceType<typeof AuthClient>, token: string): Promise<AuthAnswer> {
  const { data, error } = await auth.getUser(token);
  if (!error) return { user: data.user };
  // Auth's own refusals, which carry its error code: a bad or expired JWT (403 bad_jwt), no such
  // user or session (403), a malformed claim (400). Anything else, such as the API gateway refusing
  // our apikey (401 without a code), says nothing about the token.
  if (isAuthSessionMissingError(error)) return { refused: error.message };
  if (isAuthApiError(error) && error.code && [400, 401, 403].includes(error.status)) {
    return { refused: `${error.code}: ${error.message}` };
  }
  throw new AuthUnavailable(`Supabase Auth did not answer: ${error.message}`, error);
}
