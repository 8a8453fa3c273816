// deno task gen [--check] — writes every file that generatedFiles() (scripts/lib/generate.ts) lists:
// the status machine's migration and diagram, the OpenAPI document and the API reference, each from
// its one source; with --check, changes nothing and fails when a committed file differs.
import { generatedFiles } from "./lib/generate.ts";

const ROOT = new URL("../", import.meta.url);
const check = Deno.args.includes("--check");
let stale = 0;
for (const file of generatedFiles()) {
  const url = new URL(file.path, ROOT);
  const current = await Deno.readTextFile(url).catch(() => null);
  if (current === file.content) continue;
  if (check) {
    console.error(`out of date: ${file.path}`);
    stale++;
  } else {
    await Deno.writeTextFile(url, file.content);
    console.log(`wrote ${file.path}`);
  }
}
if (check && stale > 0) {
  console.error("run `deno task gen` and commit the result");
  Deno.exit(1);
}
