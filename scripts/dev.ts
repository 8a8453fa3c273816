// deno task dev — create and migrate the database named by SUPABASE_DB_URL (pending migrations
// only; `deno task db:reset` starts over), then serve both functions and print how to call them.
// Without SUPABASE_DB_URL and with nothing at the default address, the database lives in an
// embedded PostgreSQL that stops with the command (Ctrl-C).
import { asRuntimeRole, createIfMissing, maintenanceScheduled, migrate } from "./lib/database.ts";
import { localDatabase, onExitSignal } from "./lib/local_database.ts";
import { signToken } from "./lib/tokens.ts";
import { signingSecret } from "./lib/local_auth.ts";
import { serve } from "./serve.ts";
import { guardProcess } from "../supabase/functions/_shared/process_guard.ts";

const DEV_USER = "00000000-0000-4000-8000-000000000001";

const starting = localDatabase();
const serving: { server?: Deno.HttpServer } = {};
onExitSignal(async () => {
  await serving.server?.shutdown();
  // a signal while the embedded server starts stops it once it has
  const db = await starting;
  await db.stop();
  if (db.embedded && db.embedded.state !== "shared") console.log("embedded PostgreSQL stopped");
});
const db = await starting;
const url = db.url;
// the functions served in this process read them: they connect as their least-privilege role
Deno.env.set("SUPABASE_DB_URL", url);
Deno.env.set("JOB_SERVICE_DB_URL", asRuntimeRole(url));
try {
  const created = await createIfMissing(url);
  const applied = await migrate(url);
  console.log(
    `database ${new URL(url).pathname.slice(1)}: ${
      created ? "created, " : ""
    }${applied.length} migrations applied`,
  );
  if (!await maintenanceScheduled(url)) {
    console.log(
      "maintenance: not scheduled here (no pg_cron job; deno task maintenance:schedule on a project): " +
        "claims run the overdue timers, notifications and retention wait for runMaintenance",
    );
  }
} catch (error) {
  await db.stop();
  throw error;
}

guardProcess();
// With SUPABASE_URL (or SUPABASE_JWKS) set and no JWT_SECRET, the functions verify as deployed:
// there is no local token then.
const userToken = signingSecret() === null
  ? null
  : await signToken({ role: "authenticated", sub: DEV_USER, expiresIn: 24 * 3600 });
serving.server = serve((base) => {
  if (userToken === null) {
    console.log(`
No local token: SUPABASE_URL (or SUPABASE_JWKS) is set and JWT_SECRET is not, so calls need a
token from that project's Supabase Auth, or one of its secret keys in the apikey header. Try:

curl -s ${base}/functions/v1/job-operations \\
  -H "Authorization: Bearer $ACCESS_TOKEN" \\
  -H 'Content-Type: application/json' \\
  -d '{"action":"listJobs","data":{}}'
`);
    return;
  }
  console.log(`
Local user ${DEV_USER}; token valid 24 h (more: deno task token --role authenticated --sub <uuid>).
Try:

curl -s ${base}/functions/v1/job-operations \\
  -H 'Authorization: Bearer ${userToken}' \\
  -H 'Content-Type: application/json' \\
  -d '{"action":"createJob","data":{"product_id":"newsletter","sending_group_id":"group-1","tasks":[{"payload":{"to":"a@example.com"}}]}}'
`);
});
