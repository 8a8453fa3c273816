// A local stand-in for the two endpoints of Supabase Auth (GoTrue) that the functions call, which
// these machines cannot run. It speaks GoTrue's protocol (internal/api/auth.go, user.go, errors.go):
// - GET /auth/v1/.well-known/jwks.json: the project's public signing keys;
// - GET /auth/v1/user: 200 with the user object of a valid token; for a bad one GoTrue's error
//   JSON (`{ code, message }` when the request sends X-Supabase-Api-Version 2024-01-01, which it
//   then echoes; else `{ code: status, error_code, msg }`) and the x-sb-error-code header:
//   401 no_authorization without a bearer, 403 bad_jwt for a token it cannot verify or without
//   `sub`, 400 bad_jwt for a non-uuid `sub`, 403 user_not_found, 400 validation_failed for another
//   audience.
// Like GoTrue, it signs new tokens with its asymmetric key (ES256, with `kid`) and still accepts
// legacy HS256 tokens signed with the project's JWT secret.
import { exportJWK, generateKeyPair, type JWTPayload, jwtVerify, SignJWT } from "jose";

export interface StandInUser {
  id: string;
  aud: string;
  role: string;
  email: string;
}

export interface AuthStandIn {
  /** the project URL, as SUPABASE_URL */
  url: string;
  /** the legacy HS256 secret of the project (never given to the functions on hosted Supabase) */
  legacySecret: string;
  /** SUPABASE_JWKS as Supabase sets it */
  jwksJson: string;
  /** requests per endpoint */
  hits: { user: number; jwks: number };
  /** headers of the last GET /auth/v1/user */
  lastUserRequest: Headers | null;
  /** while true, every endpoint answers 500 as an Auth in trouble does */
  failing: boolean;
  addUser(): StandInUser;
  /** a user access token as a project on legacy keys issues it (HS256, no kid) */
  legacyToken(
    claims: JWTPayload,
    options?: { secret?: string; expiresIn?: number },
  ): Promise<string>;
  /** a user access token as a project with signing keys issues it (ES256, with kid) */
  asymmetricToken(
    claims: JWTPayload,
    options?: { expiresIn?: number; kid?: string },
  ): Promise<string>;
  close(): Promise<void>;
}

const API_VERSION = "2024-01-01";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function startAuthStandIn(): Promise<AuthStandIn> {
  const legacySecret = `stand-in-${crypto.randomUUID()}-${crypto.randomUUID()}`;
  const kid = crypto.randomUUID();
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" }] };
  const users = new Map<string, StandInUser & { created_at: string }>();

  const sign = (claims: JWTPayload, header: { alg: string; kid?: string }, expiresIn = 3600) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ aud: "authenticated", role: "authenticated", ...claims })
      .setProtectedHeader({ ...header, typ: "JWT" })
      .setIssuedAt(now)
      .setExpirationTime(now + expiresIn);
  };

  const standIn: AuthStandIn = {
    url: "",
    legacySecret,
    jwksJson: JSON.stringify(jwks),
    hits: { user: 0, jwks: 0 },
    lastUserRequest: null,
    failing: false,
    addUser() {
      const user = {
        id: crypto.randomUUID(),
        aud: "authenticated",
        role: "authenticated",
        email: `user-${users.size}@example.com`,
        created_at: new Date().toISOString(),
      };
      users.set(user.id, user);
      return user;
    },
    legacyToken: (claims, options = {}) =>
      sign(claims, { alg: "HS256" }, options.expiresIn)
        .sign(new TextEncoder().encode(options.secret ?? legacySecret)),
    asymmetricToken: (claims, options = {}) =>
      sign(claims, { alg: "ES256", kid: options.kid ?? kid }, options.expiresIn).sign(privateKey),
    close: () => server.shutdown(),
  };

  async function getUser(req: Request): Promise<Response> {
    standIn.hits.user++;
    standIn.lastUserRequest = req.headers;
    const versioned = req.headers.get("x-supabase-api-version") === API_VERSION;
    const fail = (status: number, code: string, message: string) =>
      Response.json(
        versioned ? { code, message } : { code: status, error_code: code, msg: message },
        {
          status,
          headers: {
            "x-sb-error-code": code,
            ...(versioned ? { "x-supabase-api-version": API_VERSION } : {}),
          },
        },
      );
    const bearer = /^Bearer (\S+)$/.exec(req.headers.get("authorization") ?? "")?.[1];
    if (!bearer) {
      return fail(401, "no_authorization", "This endpoint requires a valid Bearer token");
    }
    let claims: JWTPayload;
    try {
      claims = (await jwtVerify(bearer, (header) => {
        if (header.kid === kid) return publicKey;
        if (header.alg === "HS256") return new TextEncoder().encode(legacySecret);
        throw new Error(`unrecognized JWT kid ${header.kid} for algorithm ${header.alg}`);
      })).payload;
    } catch (error) {
      return fail(
        403,
        "bad_jwt",
        `invalid JWT: unable to parse or verify signature, ${(error as Error).message}`,
      );
    }
    if (!claims.sub) return fail(403, "bad_jwt", "invalid claim: missing sub claim");
    if (!UUID.test(claims.sub)) {
      return fail(400, "bad_jwt", "invalid claim: sub claim must be a UUID");
    }
    const user = users.get(claims.sub);
    if (!user) return fail(403, "user_not_found", "User from sub claim in JWT does not exist");
    const aud = Array.isArray(claims.aud) ? claims.aud[0] : claims.aud;
    if (aud !== user.aud) {
      return fail(400, "validation_failed", "Token audience doesn't match request audience");
    }
    return Response.json({
      ...user,
      phone: "",
      app_metadata: { provider: "email", providers: ["email"] },
      user_metadata: {},
      identities: [],
      updated_at: user.created_at,
      is_anonymous: false,
    });
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (standIn.failing) {
      return Response.json({
        code: 500,
        error_code: "unexpected_failure",
        msg: "Unexpected failure",
      }, {
        status: 500,
      });
    }
    if (req.method === "GET" && path === "/auth/v1/.well-known/jwks.json") {
      standIn.hits.jwks++;
      return Response.json(jwks);
    }
    if (req.method === "GET" && path === "/auth/v1/user") return getUser(req);
    return Response.json({ message: "no Route matched with those values" }, { status: 404 });
  });
  standIn.url = `http://127.0.0.1:${server.addr.port}`;
  return standIn;
}

/** A loopback URL where nothing listens: Auth unreachable. */
export function unreachableUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return `http://127.0.0.1:${port}`;
}
