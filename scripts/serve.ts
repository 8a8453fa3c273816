// deno task serve — serve both functions and the dashboard against an already migrated database.
// `--no-local-secret`: never fall back to the Supabase CLI's local secret, as a deployed function.
import { FUNCTIONS, startLocalServer } from "./lib/local_server.ts";
import { useLocalAuth } from "./lib/local_auth.ts";
import { intEnv } from "../supabase/functions/_shared/env.ts";
import { guardProcess } from "../supabase/functions/_shared/process_guard.ts";

export function serve(
  onReady?: (url: string) => void,
  options: { localSecret?: boolean } = {},
): Deno.HttpServer<Deno.NetAddr> {
  const auth = options.localSecret === false
    ? "auth: verified as a deployed function verifies (--no-local-secret)"
    : useLocalAuth();
  return startLocalServer({
    hostname: Deno.env.get("HOST") ?? "127.0.0.1",
    port: intEnv("PORT", 54321),
    onListen(url) {
      for (const name of Object.keys(FUNCTIONS)) {
        console.log(`Serving ${name} at ${url}/functions/v1/${name}`);
      }
      console.log(auth);
      console.log(`Serving the dashboard at ${url}/dashboard`);
      onReady?.(url);
      console.log(`ready ${url}`);
    },
  });
}

if (import.meta.main) {
  guardProcess();
  serve(undefined, { localSecret: !Deno.args.includes("--no-local-secret") });
}
