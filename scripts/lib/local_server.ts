// Serves both Edge Functions at Supabase's paths (/functions/v1/<name>) with Deno.serve, for local
// use and the tests (supabase functions serve needs Docker, which these machines lack), and the
// dashboard at /dashboard/ on the same port.
import { handler as jobOperations } from "../../supabase/functions/job-operations/handler.ts";
import { handler as taskOperations } from "../../supabase/functions/task-operations/handler.ts";
import { errorResponse, requestIdsOf } from "../../supabase/functions/_shared/request.ts";
import { ApiError } from "../../supabase/functions/_shared/errors.ts";
import { serveDashboard } from "./dashboard.ts";

export const FUNCTIONS: Record<string, (req: Request) => Promise<Response>> = {
  "job-operations": jobOperations,
  "task-operations": taskOperations,
};

export function route(req: Request): Promise<Response> {
  const path = new URL(req.url).pathname;
  if (path === "/dashboard" || path.startsWith("/dashboard/")) return serveDashboard(req);
  const match = /^\/functions\/v1\/([^/]+)(?:\/.*)?$/.exec(path);
  const fn = match ? FUNCTIONS[match[1]] : undefined;
  if (fn) return fn(req);
  return Promise.resolve(errorResponse(
    new ApiError(404, "NOT_FOUND", "No function at this path."),
    requestIdsOf(req).id,
  ));
}

export function startLocalServer(
  options: { hostname?: string; port?: number; onListen?: (url: string) => void } = {},
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 54321,
    onListen: ({ hostname, port }) => options.onListen?.(`http://${hostname}:${port}`),
  }, route);
}
