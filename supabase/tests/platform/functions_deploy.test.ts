// What the pinned Supabase CLI (tools/supabase-cli) deploys, without Docker and without a project:
// `supabase functions deploy` against a stand-in of the Management API (a profile file points the
// CLI at it), recording each upload. Without Docker the CLI bundles server-side (`--use-api`, and
// the fallback when Docker is not running): it uploads the function's import map (its own
// deno.json, per config.toml), the entry point and every module reached through relative imports,
// and never a lock file (the versions are pinned exactly in deno.json instead).
import assert from "node:assert/strict";
import { test } from "../helpers/service.ts";
import { SUPABASE_CLI } from "../../../scripts/lib/test_prerequisites.ts";
import { functionConfig, functionNames } from "../../../scripts/lib/generate.ts";

const ROOT = new URL("../../../", import.meta.url);

interface Upload {
  slug: string;
  files: string[];
  metadata: Record<string, unknown>;
}

async function copyTree(from: URL, to: string) {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const source = new URL(entry.name + (entry.isDirectory ? "/" : ""), from);
    if (entry.isDirectory) await copyTree(source, `${to}/${entry.name}`);
    else await Deno.copyFile(source, `${to}/${entry.name}`);
  }
}

test("supabase functions deploy (pinned CLI, no Docker) uploads each function's own deno.json and sources, no lock file", async () => {
  const uploads: Upload[] = [];
  const api = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    if (req.method === "POST" && url.pathname.endsWith("/functions/deploy")) {
      const form = await req.formData();
      const slug = url.searchParams.get("slug")!;
      const files = form.getAll("file").map((f) => (f as File).name).sort();
      uploads.push({ slug, files, metadata: JSON.parse(String(form.get("metadata"))) });
      return Response.json({ id: slug, slug, name: slug, status: "ACTIVE", version: 1 }, {
        status: 201,
      });
    }
    await req.body?.cancel();
    if (req.method === "GET" && url.pathname.endsWith("/functions")) return Response.json([]);
    return Response.json({});
  });
  // a copy of the project's supabase/ folder, with a lock file (Deno 2's v5) beside each
  // function's deno.json: the CLI must neither need nor send it
  const work = await Deno.makeTempDir({ prefix: "deploy-check-" });
  try {
    await copyTree(new URL("supabase/functions/", ROOT), `${work}/supabase/functions`);
    await Deno.copyFile(new URL("supabase/config.toml", ROOT), `${work}/supabase/config.toml`);
    for (const name of functionNames()) {
      await Deno.copyFile(
        new URL("deno.lock", ROOT),
        `${work}/supabase/functions/${name}/deno.lock`,
      );
    }
    await Deno.writeTextFile(
      `${work}/profile.yaml`,
      `name: stand-in\napi_url: http://127.0.0.1:${api.addr.port}\n` +
        `dashboard_url: http://127.0.0.1:${api.addr.port}/dashboard\nproject_host: example.test\n`,
    );
    const out = await new Deno.Command(SUPABASE_CLI, {
      args: [
        "functions",
        "deploy",
        "--use-api",
        "--project-ref",
        "abcdefghijklmnopqrst",
        "--profile",
        `${work}/profile.yaml`,
        "--workdir",
        work,
      ],
      cwd: work,
      env: {
        SUPABASE_ACCESS_TOKEN: `sbp_${"0123456789abcdef".repeat(3).slice(0, 40)}`,
        SUPABASE_TELEMETRY_DISABLED: "1",
        DO_NOT_TRACK: "1",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);

    assert.deepEqual(uploads.map((u) => u.slug).sort(), functionNames());
    for (const upload of uploads) {
      const dir = `supabase/functions/${upload.slug}`;
      assert.deepEqual(upload.metadata, {
        entrypoint_path: `${dir}/index.ts`,
        import_map_path: `${dir}/deno.json`,
        static_patterns: [],
        verify_jwt: false,
        name: upload.slug,
      });
      assert.ok(upload.files.includes(`${dir}/deno.json`), "the function's own deno.json");
      assert.ok(upload.files.includes(`${dir}/index.ts`));
      assert.ok(upload.files.includes("supabase/functions/_shared/db.ts"), "shared modules too");
      assert.deepEqual(upload.files.filter((f) => /lock/.test(f)), [], "no lock file is sent");
      assert.deepEqual(
        upload.files.filter((f) => !f.startsWith("supabase/functions/")),
        [],
        "nothing outside supabase/functions",
      );
      // what was sent is what `deno task gen` writes
      assert.equal(
        await Deno.readTextFile(`${work}/${dir}/deno.json`),
        functionConfig(upload.slug),
      );
    }
  } finally {
    await api.shutdown();
    await Deno.remove(work, { recursive: true });
  }
});
