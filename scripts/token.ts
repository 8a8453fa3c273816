// deno task token --role authenticated --sub <uuid> [--expires-in seconds]
// Prints a signed local token for curl.
import { parseArgs } from "node:util";
import { signToken } from "./lib/tokens.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    role: { type: "string", default: "authenticated" },
    sub: { type: "string" },
    "expires-in": { type: "string", default: "3600" },
    aud: { type: "string" },
  },
});

const role = values.role!;
let sub = values.sub;
if (role === "authenticated" && !sub) {
  sub = crypto.randomUUID();
  console.error(`no --sub given: using ${sub}`);
}
const expiresIn = Number(values["expires-in"]);
if (!Number.isInteger(expiresIn)) {
  console.error("--expires-in must be a whole number of seconds");
  Deno.exit(2);
}
try {
  console.log(await signToken({ role, sub, expiresIn, aud: values.aud }));
} catch (error) {
  console.error((error as Error).message);
  Deno.exit(1);
}
