// Who is calling: verifies the bearer token in the function itself (never trusting a gateway),
// with the project's JWKS when SUPABASE_JWKS is set, else the HS256 secret; or recognises one of
// the project's non-JWT secret keys (SUPABASE_SECRET_KEYS) as the service.
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
} from "jose";
import { ApiError } from "./errors.ts";
import { env, jwtSecret } from "./env.ts";

export type Role = "authenticated" | "service_role" | "anon";

export interface Caller {
  role: Role;
  /** The JWT `sub` of an `authenticated` caller; null for the service and anon. */
  userId: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const KNOWN_ROLES = new Set<string>(["authenticated", "service_role", "anon"]);
const ASYMMETRIC_ALGS = ["ES256", "RS256", "EdDSA", "ES384", "RS384", "ES512", "RS512"];
const CLOCK_TOLERANCE_S = 5;

let jwks: JWTVerifyGetKey | null | undefined;
let hmacKey: Uint8Array | undefined;

function projectJwks(): JWTVerifyGetKey | null {
  if (jwks === undefined) {
    const raw = env("SUPABASE_JWKS");
    if (!raw) jwks = null;
    else if (raw.trim().startsWith("{")) jwks = createLocalJWKSet(JSON.parse(raw));
    else jwks = createRemoteJWKSet(new URL(raw));
  }
  return jwks;
}

function hs256Key(): Uint8Array {
  hmacKey ??= new TextEncoder().encode(jwtSecret());
  return hmacKey;
}

function unauthorized(message: string): ApiError {
  return new ApiError(401, "UNAUTHORIZED", message);
}

/** Project secret keys (`sb_secret_…`): a JSON object of name → key, or a comma-separated list. */
function secretKeys(): string[] {
  const raw = env("SUPABASE_SECRET_KEYS");
  if (!raw) return [];
  try {
    const parsed = JSON.parse(raw);
    if (parsed && typeof parsed === "object") {
      return Object.values(parsed).filter((v): v is string => typeof v === "string" && v !== "");
    }
  } catch {
    // not JSON: a plain list
  }
  return raw.split(",").map((k) => k.trim()).filter(Boolean);
}

function constantTimeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ (y[i] ?? 0);
  return diff === 0;
}

function isSecretKey(value: string | null): boolean {
  return value !== null && value !== "" &&
    secretKeys().some((key) => constantTimeEqual(value, key));
}

async function verifyJwt(token: string): Promise<JWTPayload> {
  let alg: string | undefined;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw unauthorized("The bearer token is not a valid JWT.");
  }
  const set = projectJwks();
  // Legacy HS256 tokens stay valid while the project still has (and configures) its JWT secret.
  const useSecret = alg === "HS256" && (set === null || env("SUPABASE_JWT_SECRET") !== undefined);
  try {
    const { payload } = useSecret
      ? await jwtVerify(token, hs256Key(), {
        algorithms: ["HS256"],
        requiredClaims: ["exp"],
        clockTolerance: CLOCK_TOLERANCE_S,
      })
      : set
      ? await jwtVerify(token, set, {
        algorithms: ASYMMETRIC_ALGS,
        requiredClaims: ["exp"],
        clockTolerance: CLOCK_TOLERANCE_S,
      })
      : (() => {
        throw new Error("no key");
      })();
    return payload;
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw unauthorized(
      code === "ERR_JWT_EXPIRED" ? "The bearer token has expired." : "The bearer token is invalid.",
    );
  }
}

/** Authenticates a request: 401 for a missing or bad token, 403 for a role this service doesn't know. */
export async function authenticate(req: Request): Promise<Caller> {
  const header = req.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  const bearer = match ? match[1] : null;

  if (isSecretKey(bearer) || (bearer === null && isSecretKey(req.headers.get("apikey")))) {
    return { role: "service_role", userId: null };
  }
  if (bearer === null) throw unauthorized("Missing bearer token.");

  const claims = await verifyJwt(bearer);
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
