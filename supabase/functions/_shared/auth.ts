// Who is calling (platform.md, "Credentials the functions accept"), from the request's headers
// alone, so that a request without a valid credential is answered before its body is read. Always
// verified in the function, never trusting a gateway:
// - a JWT signed with an asymmetric key: the project's JWKS, by @supabase/server;
// - a legacy HS256 JWT: the operator's JWT_SECRET, else Supabase Auth is asked (supabase_auth.ts);
// - an `sb_secret_…` key or the legacy service_role key: a constant-time match, by @supabase/server;
// - a publishable or anon key: role `anon`, which may use nothing here.
// A credential that nothing configured can verify is 503 AUTH_NOT_CONFIGURED, never accepted.
import { verifyCredentials } from "@supabase/server/core";
import { decodeJwt, decodeProtectedHeader, type JWTPayload, jwtVerify } from "jose";
import { ApiError, RETRY_AFTER_SECONDS } from "./errors.ts";
import { type AuthConfig, authConfig, type KeySets } from "./auth_config.ts";
import { AuthUnavailable, createUserLookup, type UserLookup } from "./supabase_auth.ts";

export type Role = "authenticated" | "service_role" | "anon";

export interface Caller {
  role: Role;
  /** The JWT `sub` of an `authenticated` caller; null for the service and anon. */
  userId: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const KNOWN_ROLES = new Set<string>(["authenticated", "service_role", "anon"]);
const ASYMMETRIC_ALGS = new Set(["ES256", "RS256", "EdDSA", "ES384", "RS384", "ES512", "RS512"]);
const CLOCK_TOLERANCE_S = 5;
/** Three base64url parts: the shape of a JWT. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/**
 * @supabase/server wants a project URL even when it is handed every value it would derive from
 * one (keys, JWKS), as here; it reads nothing from this one.
 */
const NO_PROJECT_URL = "http://localhost";

let userLookup: UserLookup | undefined;

/** Authenticates a request: 401 for a missing or bad credential, 403 for a role this service doesn't know. */
export async function authenticate(req: Request): Promise<Caller> {
  const credential = credentialOf(req.headers);
  const config = authConfig();
  if (credential.startsWith("sb_")) return await byApiKey(credential, config);
  if (!JWT_SHAPE.test(credential)) {
    throw unauthorized("The credential is neither a JWT nor a Supabase API key.");
  }
  return await byJwt(credential, config);
}

/** The bearer token, else the `apikey` header (what supabase-js sends for an `sb_` key). */
function credentialOf(headers: Headers): string {
  const authorization = headers.get("authorization")?.trim();
  if (authorization) {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization);
    if (!match) throw unauthorized("The Authorization header must be 'Bearer <token>'.");
    return match[1];
  }
  const apikey = headers.get("apikey")?.trim();
  if (apikey) return apikey;
  throw unauthorized("Missing bearer token.");
}

async function byApiKey(key: string, config: AuthConfig): Promise<Caller> {
  const role = await matchKey(key, config.apiKeys);
  if (role) return { role, userId: null };
  if (isEmpty(config.apiKeys)) {
    throw notConfigured("an sb_ API key arrived, but SUPABASE_SECRET_KEYS is not set");
  }
  throw unauthorized("The API key is not one of this project's keys.");
}

async function byJwt(token: string, config: AuthConfig): Promise<Caller> {
  let alg: string | undefined;
  let claims: JWTPayload;
  try {
    alg = decodeProtectedHeader(token).alg;
    claims = decodeJwt(token);
  } catch {
    throw unauthorized("The bearer token is not a valid JWT.");
  }
  // The legacy keys carry no `sub`: a token with one is a user's and never needs the comparison.
  if (claims.sub === undefined) {
    const legacyKeyRole = await matchKey(token, config.legacyKeys);
    if (legacyKeyRole) return { role: legacyKeyRole, userId: null };
  }
  if (alg === "HS256") return callerOf(await verifyLegacy(token, claims, config));
  if (alg !== undefined && ASYMMETRIC_ALGS.has(alg)) {
    return callerOf(await verifyWithJwks(token, config));
  }
  throw unauthorized("The bearer token's algorithm is not accepted.");
}

/** Constant-time match of a credential against key sets: the role it acts as, or null. */
async function matchKey(value: string, keys: KeySets): Promise<Role | null> {
  const modes: ("secret:*" | "publishable:*")[] = [];
  if (Object.keys(keys.secret).length > 0) modes.push("secret:*");
  if (Object.keys(keys.publishable).length > 0) modes.push("publishable:*");
  if (modes.length === 0) return null;
  const { data } = await verifyCredentials({ token: null, apikey: value }, {
    auth: modes,
    env: {
      url: NO_PROJECT_URL,
      secretKeys: keys.secret,
      publishableKeys: keys.publishable,
      jwks: null,
    },
  });
  if (data?.authMode === "secret") return "service_role";
  if (data?.authMode === "publishable") return "anon";
  return null;
}

/**
 * A legacy HS256 token: with the operator's secret, else as Supabase Auth judges it (`claims`:
 * the token's, unverified, to decide whether and how long to ask).
 */
async function verifyLegacy(
  token: string,
  claims: JWTPayload,
  config: AuthConfig,
): Promise<JWTPayload> {
  if (config.jwtSecret) {
    try {
      const { payload } = await jwtVerify(token, config.jwtSecret, {
        algorithms: ["HS256"],
        requiredClaims: ["exp"],
        clockTolerance: CLOCK_TOLERANCE_S,
      });
      return payload;
    } catch (error) {
      throw invalidToken(error);
    }
  }
  if (!config.supabaseUrl) {
    throw notConfigured(
      "a legacy HS256 token arrived, but neither JWT_SECRET (or SUPABASE_JWT_SECRET) nor " +
        "SUPABASE_URL (to ask Supabase Auth) is set",
    );
  }
  if (typeof claims.exp !== "number") throw unauthorized("The bearer token has no expiry.");
  if ((claims.exp + CLOCK_TOLERANCE_S) * 1000 <= Date.now()) {
    throw unauthorized("The bearer token has expired.");
  }
  // Auth judges user tokens only (GoTrue refuses a token without `sub`): a legacy service_role
  // token is accepted as the project's own key (SUPABASE_SERVICE_ROLE_KEY) or with JWT_SECRET.
  if (typeof claims.sub !== "string") throw unauthorized("The bearer token is invalid.");
  userLookup ??= createUserLookup({ url: config.supabaseUrl, apikey: config.authApiKey });
  let answer;
  try {
    answer = await userLookup(token, claims.exp * 1000);
  } catch (error) {
    if (error instanceof AuthUnavailable) throw authUnavailable(error);
    throw error;
  }
  if ("refused" in answer) throw unauthorized("The bearer token is invalid.");
  return {
    role: answer.user.role || claims.role,
    aud: answer.user.aud,
    sub: answer.user.id,
    exp: claims.exp,
  };
}

/** A token signed with an asymmetric key: with SUPABASE_JWKS, else the JWKS Auth publishes. */
async function verifyWithJwks(token: string, config: AuthConfig): Promise<JWTPayload> {
  if (!config.jwks) {
    throw notConfigured(
      "a token signed with an asymmetric key arrived, but neither SUPABASE_JWKS nor SUPABASE_URL " +
        "(to fetch the JWKS) is set",
    );
  }
  const { data, error } = await verifyCredentials({ token, apikey: null }, {
    auth: "user",
    env: {
      url: config.supabaseUrl ?? NO_PROJECT_URL,
      jwks: config.jwks,
      secretKeys: {},
      publishableKeys: {},
    },
  });
  if (data?.jwtClaims) {
    if (typeof data.jwtClaims.exp !== "number") {
      throw unauthorized("The bearer token has no expiry.");
    }
    return data.jwtClaims as JWTPayload;
  }
  if (error?.code === "JWKS_FETCH_FAILED") throw authUnavailable(error);
  throw invalidToken(error?.cause ?? error);
}

function callerOf(claims: JWTPayload): Caller {
  const role = claims.role;
  if (typeof role !== "string") throw unauthorized("The token has no role.");
  if (!KNOWN_ROLES.has(role)) {
    throw new ApiError(403, "FORBIDDEN", "The token's role may not use this service.");
  }
  if (role === "authenticated") {
    const aud = claims.aud;
    const audiences = Array.isArray(aud) ? aud : [aud];
    if (!audiences.includes("authenticated")) {
      throw unauthorized("A user token must have the audience 'authenticated'.");
    }
    if (typeof claims.sub !== "string" || !UUID.test(claims.sub)) {
      throw unauthorized("A user token must have a uuid subject.");
    }
    return { role, userId: claims.sub.toLowerCase() };
  }
  return { role: role as Role, userId: null };
}

function isEmpty(keys: KeySets): boolean {
  return Object.keys(keys.secret).length === 0 && Object.keys(keys.publishable).length === 0;
}

function unauthorized(message: string): ApiError {
  return new ApiError(401, "UNAUTHORIZED", message);
}

function invalidToken(cause: unknown): ApiError {
  const expired = (cause as { code?: string } | undefined)?.code === "ERR_JWT_EXPIRED";
  return new ApiError(
    401,
    "UNAUTHORIZED",
    expired ? "The bearer token has expired." : "The bearer token is invalid.",
    undefined,
    {},
    cause,
  );
}

/** No configured means can verify this credential: the operator's problem, named in the log line. */
function notConfigured(missing: string): ApiError {
  return new ApiError(
    503,
    "AUTH_NOT_CONFIGURED",
    "This server has no means to verify the credential; its log says what is missing.",
    undefined,
    {},
    new Error(`authentication not configured: ${missing}`),
  );
}

function authUnavailable(cause: unknown): ApiError {
  return new ApiError(
    503,
    "SERVICE_UNAVAILABLE",
    "Supabase Auth could not be reached to check the token; retry shortly.",
    undefined,
    { "Retry-After": String(RETRY_AFTER_SECONDS) },
    cause,
  );
}
