// Local tokens signed with the HS256 secret the functions verify (JWT_SECRET, or the Supabase
// CLI's local secret where the local commands use it), shaped like Supabase Auth's.
import { SignJWT } from "jose";
import { signingSecret } from "./local_auth.ts";

export interface TokenOptions {
  role: string;
  sub?: string;
  /** lifetime in seconds (negative: already expired) */
  expiresIn?: number;
  aud?: string | null;
  secret?: string;
}

export async function signToken(options: TokenOptions): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = { role: options.role, iss: "supabase-local" };
  const aud = options.aud === undefined
    ? (options.role === "authenticated" ? "authenticated" : undefined)
    : options.aud;
  if (aud !== null && aud !== undefined) claims.aud = aud;
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresIn ?? 3600));
  if (options.sub) jwt.setSubject(options.sub);
  const secret = options.secret ?? signingSecret();
  if (secret === null) {
    throw new Error(
      "No secret to sign a local token with: the functions verify as deployed (SUPABASE_URL or " +
        "SUPABASE_JWKS is set) and JWT_SECRET is not. Use a token from Supabase Auth, or set " +
        "JWT_SECRET to the project's legacy JWT secret.",
    );
  }
  return await jwt.sign(new TextEncoder().encode(secret));
}
