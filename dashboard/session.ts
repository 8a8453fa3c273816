/// <reference lib="dom" />
// Who the page acts as, and the clients it calls the service with. Two ways in:
// - a token (a user's or the service's JWT, or a secret key): pasted, or minted by the local
//   server's development sign-in; kept in sessionStorage for this tab only;
// - Supabase Auth's email and password (when the config names a publishable key): supabase-js
//   keeps and refreshes that session itself.
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { JobServiceClient } from "../client/job_service.ts";
import { type DashboardConfig, serviceUrl } from "./config.ts";

export interface Identity {
  kind: "user" | "service";
  /** the user's id (JWT sub); null for the service */
  userId: string | null;
  label: string;
}

export interface Session {
  identity: Identity;
  supabase: SupabaseClient;
  jobs: JobServiceClient;
  signOut(): Promise<void>;
}

const TOKEN_KEY = "job-dashboard.token";
const NO_BROWSER_SESSION = {
  persistSession: false,
  autoRefreshToken: false,
  detectSessionInUrl: false,
};

/** A sign-in the page refuses before asking the service (the message says why). */
export class SignInError extends Error {}

function decodeClaims(token: string): Record<string, unknown> | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(json);
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** What a token says about its holder; the service still verifies it on every call. */
export function identityOf(token: string): Identity {
  if (token.startsWith("sb_secret_")) return { kind: "service", userId: null, label: "Service" };
  const claims = decodeClaims(token);
  if (!claims) throw new SignInError("This is neither a JWT nor a secret key.");
  if (typeof claims.exp === "number" && claims.exp * 1000 < Date.now()) {
    throw new SignInError("This token has expired.");
  }
  if (claims.role === "service_role") return { kind: "service", userId: null, label: "Service" };
  if (claims.role === "authenticated" && typeof claims.sub === "string") {
    return { kind: "user", userId: claims.sub, label: `User ${claims.sub}` };
  }
  throw new SignInError(
    `A token of role ${JSON.stringify(claims.role ?? null)} cannot use the service.`,
  );
}

function tokenSession(config: DashboardConfig, token: string): Session {
  const identity = identityOf(token);
  const supabase = createClient(serviceUrl(config), config.publishable_key ?? token, {
    accessToken: () => Promise.resolve(token),
    auth: NO_BROWSER_SESSION,
  });
  return {
    identity,
    supabase,
    jobs: new JobServiceClient(supabase),
    signOut() {
      sessionStorage.removeItem(TOKEN_KEY);
      return Promise.resolve();
    },
  };
}

let authClient: SupabaseClient | undefined;

/** The supabase-js client with Supabase Auth (one per page: it owns the stored session). */
function withAuth(config: DashboardConfig): SupabaseClient {
  // no OAuth redirects come back to this page: its hash holds routes, not tokens
  authClient ??= createClient(serviceUrl(config), config.publishable_key!, {
    auth: { detectSessionInUrl: false },
  });
  return authClient;
}

function authSession(supabase: SupabaseClient, userId: string): Session {
  return {
    identity: { kind: "user", userId, label: `User ${userId}` },
    supabase,
    jobs: new JobServiceClient(supabase),
    async signOut() {
      await supabase.auth.signOut();
    },
  };
}

/** The session this tab had, if any. */
export async function restoreSession(config: DashboardConfig): Promise<Session | null> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    try {
      return tokenSession(config, token);
    } catch {
      sessionStorage.removeItem(TOKEN_KEY);
    }
  }
  if (config.publishable_key) {
    const supabase = withAuth(config);
    const { data } = await supabase.auth.getSession();
    if (data.session) return authSession(supabase, data.session.user.id);
  }
  return null;
}

/** Signs in with a token; a first call checks that the service accepts it. */
export async function signInWithToken(config: DashboardConfig, token: string): Promise<Session> {
  const session = tokenSession(config, token.trim());
  await session.jobs.listJobs({ limit: 1 });
  sessionStorage.setItem(TOKEN_KEY, token.trim());
  return session;
}

/** The local server's development sign-in: it mints a local token for a user or the service. */
export async function signInDev(
  config: DashboardConfig,
  who: { role: "authenticated"; sub: string } | { role: "service_role" },
): Promise<Session> {
  const response = await fetch(new URL("dev-token", document.baseURI), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(who),
  });
  if (!response.ok) throw new SignInError(await response.text());
  const { token } = await response.json() as { token: string };
  return await signInWithToken(config, token);
}

export async function signInWithPassword(
  config: DashboardConfig,
  email: string,
  password: string,
): Promise<Session> {
  const supabase = withAuth(config);
  const { data, error } = await supabase.auth.signInWithPassword({ email, password });
  if (error) throw new SignInError(error.message);
  return authSession(supabase, data.user.id);
}
