// deno task dashboard:build [--out dist/dashboard] [--url https://<ref>.supabase.co]
//   [--key <publishable key>] [--realtime <schema>.<table>]
// Writes the dashboard as static files for any host: index.html, style.css, app.js and config.json
// (which an operator may edit later instead of building again). Without --url the page calls the
// functions on its own origin; with --key it offers Supabase Auth's email and password sign-in.
import { parseArgs } from "node:util";
import { buildDashboard, type DashboardConfig } from "./lib/dashboard.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    out: { type: "string", default: "dist/dashboard" },
    url: { type: "string" },
    key: { type: "string" },
    realtime: { type: "string" },
  },
});

function fail(message: string): never {
  console.error(message);
  Deno.exit(2);
}

if (values.url !== undefined && !URL.canParse(values.url)) {
  fail(`--url is not a URL: ${values.url}`);
}
const realtime = values.realtime?.split(".");
if (realtime && (realtime.length !== 2 || !realtime[0] || !realtime[1])) {
  fail("--realtime takes <schema>.<table>, e.g. job_service.jobs");
}

const config: DashboardConfig = {
  supabase_url: values.url ?? null,
  publishable_key: values.key ?? null,
  dev_sign_in: false,
  realtime: realtime ? { schema: realtime[0], table: realtime[1] } : null,
};

const out = values.out!;
await Deno.mkdir(out, { recursive: true });
for (const file of await buildDashboard()) {
  await Deno.writeFile(`${out}/${file.name}`, file.body);
  console.log(`wrote ${out}/${file.name} (${file.body.byteLength} bytes)`);
}
await Deno.writeTextFile(`${out}/config.json`, JSON.stringify(config, null, 2) + "\n");
console.log(`wrote ${out}/config.json`);
