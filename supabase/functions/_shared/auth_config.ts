// What this instance can verify credentials with (platform.md, "Credentials the functions
// accept"): the variables Supabase sets in every deployed function (SUPABASE_URL, SUPABASE_JWKS,
// SUPABASE_SECRET_KEYS, SUPABASE_PUBLISHABLE_KEYS, and on projects with legacy keys
// SUPABASE_SERVICE_ROLE_KEY and SUPABASE_ANON_KEY) and the legacy HS256 secret an operator may set
// (JWT_SECRET, as self-hosted Supabase passes it; SUPABASE_JWT_SECRET where that name can be set).
// Read once per instance: a function's environment does not change while it runs.
import type { JSONWebKeySet } from "jose";
import { env } from "./env.ts";

/** name → key, the shape of SUPABASE_SECRET_KEYS and SUPABASE_PUBLISHABLE_KEYS */
export type KeySet = Record<string, string>;

export interface KeySets {
  /** keys that act as `service_role` */
  secret: KeySet;
  /** keys that act as `anon` (and so grant nothing here) */
  publishable: KeySet;
}

export interface AuthConfig {
  /** SUPABASE_URL without a trailing slash */
  supabaseUrl: string | null;
  /** the legacy HS256 secret, when the operator set one */
  jwtSecret: Uint8Array | null;
  /** SUPABASE_JWKS, else the JWKS that Supabase Auth publishes under SUPABASE_URL */
  jwks: JSONWebKeySet | URL | null;
  /** the `sb_secret_…` and `sb_publishable_…` keys */
  apiKeys: KeySets;
  /** the legacy keys, which are JWTs: SUPABASE_SERVICE_ROLE_KEY and SUPABASE_ANON_KEY */
  legacyKeys: KeySets;
  /** the `apikey` sent when Supabase Auth is asked: a publishable (or anon) key where there is one */
  authApiKey: string | null;
}

let config: AuthConfig | undefined;

export function authConfig(): AuthConfig {
  config ??= readAuthConfig();
  return config;
}

export function readAuthConfig(read: (name: string) => string | undefined = env): AuthConfig {
  const supabaseUrl = read("SUPABASE_URL")?.trim().replace(/\/+$/, "") || null;
  const secret = read("JWT_SECRET") ?? read("SUPABASE_JWT_SECRET");
  const apiKeys = {
    secret: parseKeySet(read("SUPABASE_SECRET_KEYS")),
    publishable: parseKeySet(read("SUPABASE_PUBLISHABLE_KEYS")),
  };
  const serviceRoleKey = read("SUPABASE_SERVICE_ROLE_KEY");
  const anonKey = read("SUPABASE_ANON_KEY");
  const legacyKeys: KeySets = {
    secret: serviceRoleKey ? { service_role: serviceRoleKey } : {},
    publishable: anonKey ? { anon: anonKey } : {},
  };
  return {
    supabaseUrl,
    jwtSecret: secret ? new TextEncoder().encode(secret) : null,
    jwks: parseJwks(read("SUPABASE_JWKS")) ??
      (supabaseUrl ? new URL(`${supabaseUrl}/auth/v1/.well-known/jwks.json`) : null),
    apiKeys,
    legacyKeys,
    authApiKey: firstOf(apiKeys.publishable) ?? anonKey ?? firstOf(apiKeys.secret) ??
      serviceRoleKey ?? null,
  };
}

/** A JSON object of name → key as Supabase sets it; a comma-separated list is tolerated. */
export function parseKeySet(raw: string | undefined): KeySet {
  if (!raw) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = raw.split(",");
  }
  const entries = Array.isArray(parsed)
    ? parsed.map((key, i) => [String(i), key] as const)
    : parsed !== null && typeof parsed === "object"
    ? Object.entries(parsed)
    : [["0", parsed] as const];
  const keys: KeySet = {};
  for (const [name, key] of entries) {
    if (typeof key === "string" && key.trim() !== "") keys[name] = key.trim();
  }
  return keys;
}

/** `{ keys: [...] }` or a bare array of keys; anything else is no JWKS. */
function parseJwks(raw: string | undefined): JSONWebKeySet | null {
  if (!raw) return null;
  try {
    const parsed = JSON.parse(raw);
    if (Array.isArray(parsed)) return { keys: parsed };
    return Array.isArray(parsed?.keys) ? parsed : null;
  } catch {
    return null;
  }
}

function firstOf(keys: KeySet): string | undefined {
  return keys.default ?? Object.values(keys)[0];
}
