// The dashboard's files (dashboard/): the page bundled for the browser with Deno.bundle (esbuild;
// needs --unstable-bundle), its configuration, and the local server's routes under /dashboard/,
// including the development sign-in that mints local tokens (only while the server runs with the
// Supabase CLI's published local secret, so it grants nothing that secret does not already).
import { env } from "../../supabase/functions/_shared/env.ts";
import { LOCAL_JWT_SECRET, signingSecret } from "./local_auth.ts";
import { signToken } from "./tokens.ts";

const SOURCE = new URL("../../dashboard/", import.meta.url);

/** What the page reads from config.json next to its index.html. */
export interface DashboardConfig {
  /** the project (or local server) whose functions the page calls; null: the page's own origin */
  supabase_url: string | null;
  /** the project's publishable (or anon) key; when set, email and password sign-in is offered */
  publishable_key: string | null;
  /** the local server mints local tokens (only with the local development secret) */
  dev_sign_in: boolean;
  /** the job table to subscribe to with Supabase Realtime; null: polling only */
  realtime: { schema: string; table: string } | null;
}

export interface DashboardFile {
  name: string;
  type: string;
  body: Uint8Array<ArrayBuffer>;
}

/** index.html, style.css and app.js (the bundle of dashboard/main.ts and what it imports). */
export async function buildDashboard(options: { minify?: boolean } = {}): Promise<DashboardFile[]> {
  const result = await Deno.bundle({
    entrypoints: [new URL("main.ts", SOURCE).pathname],
    platform: "browser",
    format: "esm",
    minify: options.minify ?? true,
    write: false,
  });
  const app = result.outputFiles?.[0]?.contents;
  if (!result.success || !app) {
    throw new Error(`the dashboard does not bundle:\n${JSON.stringify(result.errors, null, 2)}`);
  }
  return [
    { name: "index.html", type: "text/html; charset=utf-8", body: await read("index.html") },
    { name: "style.css", type: "text/css; charset=utf-8", body: await read("style.css") },
    { name: "app.js", type: "text/javascript; charset=utf-8", body: app },
  ];
}

function read(name: string): Promise<Uint8Array<ArrayBuffer>> {
  return Deno.readFile(new URL(name, SOURCE));
}

/**
 * The local development sign-in is offered only when the functions verify tokens with the
 * Supabase CLI's local secret and nothing else (no other secret, no JWKS, no project URL).
 */
export function devSignInAvailable(): boolean {
  return signingSecret() === LOCAL_JWT_SECRET && !env("SUPABASE_JWKS") && !env("SUPABASE_URL");
}

const DEV_TOKEN_SECONDS = 8 * 3600;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; " +
    "script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

let files: Promise<Map<string, DashboardFile>> | undefined;

/** The routes of the local server under /dashboard (the page is built on its first request). */
export async function serveDashboard(req: Request): Promise<Response> {
  const path = new URL(req.url).pathname;
  if (path === "/dashboard") {
    return new Response(null, { status: 308, headers: { location: "/dashboard/" } });
  }
  const name = path.slice("/dashboard/".length) || "index.html";
  if (name === "dev-token") return await devToken(req);
  if (req.method !== "GET" && req.method !== "HEAD") {
    return text(405, "Only GET here.", { allow: "GET, HEAD" });
  }
  if (name === "config.json") {
    const config: DashboardConfig = {
      supabase_url: null,
      publishable_key: null,
      dev_sign_in: devSignInAvailable(),
      realtime: null,
    };
    return new Response(JSON.stringify(config), {
      headers: { ...SECURITY_HEADERS, "content-type": "application/json" },
    });
  }
  files ??= buildDashboard().then((built) => new Map(built.map((f) => [f.name, f])));
  let file: DashboardFile | undefined;
  try {
    file = (await files).get(name);
  } catch (error) {
    files = undefined; // a later request tries again (e.g. after the source is fixed)
    console.error(error);
    return text(500, "The dashboard could not be built; see the server's log.");
  }
  if (!file) return text(404, "Not found.");
  return new Response(req.method === "HEAD" ? null : file.body, {
    headers: { ...SECURITY_HEADERS, "content-type": file.type },
  });
}

/** POST { role: "authenticated", sub } or { role: "service_role" } → { token, expires_in }. */
async function devToken(req: Request): Promise<Response> {
  if (!devSignInAvailable()) return text(404, "Not found.");
  if (req.method !== "POST") return text(405, "Only POST here.", { allow: "POST" });
  let body: { role?: unknown; sub?: unknown };
  try {
    body = await req.json();
  } catch {
    return text(400, "The body must be JSON.");
  }
  const role = body?.role;
  if (role === "authenticated") {
    if (typeof body.sub !== "string" || !UUID.test(body.sub)) {
      return text(400, "A user sign-in needs a uuid user id.");
    }
  } else if (role !== "service_role") {
    return text(400, "role must be authenticated or service_role.");
  }
  const token = await signToken({
    role,
    sub: role === "authenticated" ? (body.sub as string).toLowerCase() : undefined,
    expiresIn: DEV_TOKEN_SECONDS,
  });
  return new Response(JSON.stringify({ token, expires_in: DEV_TOKEN_SECONDS }), {
    headers: { ...SECURITY_HEADERS, "content-type": "application/json" },
  });
}

function text(status: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(message, {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", ...headers },
  });
}
