// A stand-in for a Supabase project's URL, for what cannot run here: Supabase Auth's password
// sign-in and logout, in its protocol (POST /auth/v1/token?grant_type=password answers a session;
// a wrong password is 400 invalid_credentials), issuing tokens the served functions verify (the
// local secret); every other path goes on to the served functions, as Supabase's gateway does.
import { signToken } from "../../../scripts/lib/tokens.ts";
import { serviceUrl } from "./service.ts";

export interface ProjectHost {
  url: string;
  close(): Promise<void>;
}

const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-headers":
    "authorization, apikey, content-type, x-client-info, x-supabase-api-version",
  "access-control-allow-methods": "GET, POST, OPTIONS",
};

/** A project with one Supabase Auth user. */
export async function projectHost(
  user: { id: string; email: string; password: string },
): Promise<ProjectHost> {
  const functions = await serviceUrl();
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (!url.pathname.startsWith("/auth/v1/")) {
      const headers = new Headers(req.headers);
      headers.delete("host");
      return await fetch(new URL(url.pathname + url.search, functions), {
        method: req.method,
        headers,
        body: req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer(),
      });
    }
    if (req.method === "OPTIONS") return new Response(null, { status: 204, headers: CORS });
    if (url.pathname === "/auth/v1/logout") {
      return new Response(null, { status: 204, headers: CORS });
    }
    if (url.pathname !== "/auth/v1/token" || url.searchParams.get("grant_type") !== "password") {
      return Response.json({ code: 404, error_code: "not_found", msg: "Not found" }, {
        status: 404,
        headers: CORS,
      });
    }
    const { email, password } = await req.json();
    if (email !== user.email || password !== user.password) {
      return Response.json(
        { code: 400, error_code: "invalid_credentials", msg: "Invalid login credentials" },
        { status: 400, headers: CORS },
      );
    }
    const expiresIn = 3600;
    return Response.json({
      access_token: await signToken({ role: "authenticated", sub: user.id, expiresIn }),
      token_type: "bearer",
      expires_in: expiresIn,
      expires_at: Math.floor(Date.now() / 1000) + expiresIn,
      refresh_token: crypto.randomUUID(),
      user: {
        id: user.id,
        aud: "authenticated",
        role: "authenticated",
        email: user.email,
        app_metadata: { provider: "email" },
        user_metadata: {},
        created_at: new Date().toISOString(),
      },
    }, { headers: CORS });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
  };
}
