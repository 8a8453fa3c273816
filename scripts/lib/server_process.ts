// Runs `scripts/serve.ts` in a child process and waits for its "ready <url>" line: what the test
// command uses, and what tests use for a server with its own pool or configuration.
import { asRuntimeRole } from "./database.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

export interface ServerProcess {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * A local server connects as the functions' runtime role, as a deployed project should
 * (docs/operations.md#least-privilege): JOB_SERVICE_DB_URL from SUPABASE_DB_URL unless given.
 */
function runtimeDatabase(env: Record<string, string>): Record<string, string> {
  return env.SUPABASE_DB_URL && !env.JOB_SERVICE_DB_URL
    ? { JOB_SERVICE_DB_URL: asRuntimeRole(env.SUPABASE_DB_URL) }
    : {};
}

export async function spawnServer(
  env: Record<string, string>,
  options: { logPath?: string; /** arguments of scripts/serve.ts */ args?: string[] } = {},
): Promise<ServerProcess> {
  const log = options.logPath
    ? await Deno.open(options.logPath, { write: true, create: true, truncate: true })
    : undefined;
  const write = async (chunk: Uint8Array) => {
    await log?.write(chunk);
  };
  const child = new Deno.Command(Deno.execPath(), {
    // the heap caps of `deno task serve`: like the Edge Runtime's memory limit, they make V8 collect
    // instead of growing heaps it has no need for (the young generation's default semi-spaces alone
    // took the peak RSS past 150 MiB; docs/performance.md, finding 14)
    args: [
      "run",
      "--unstable-bundle",
      "--v8-flags=--max-old-space-size=96,--max-semi-space-size=4",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-sys",
      "scripts/serve.ts",
      ...(options.args ?? []),
    ],
    cwd: ROOT,
    env: { PORT: "0", ...runtimeDatabase(env), ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  child.stderr.pipeTo(new WritableStream({ write })).catch(() => {});

  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let seen = "";
  const timeout = setTimeout(() => child.kill("SIGKILL"), 60_000);
  let url: string | undefined;
  try {
    while (!url) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`server exited before it was ready:\n${seen}`);
      await write(value);
      seen += decoder.decode(value, { stream: true });
      url = /^ready (\S+)$/m.exec(seen)?.[1];
    }
  } finally {
    clearTimeout(timeout);
  }
  // keep draining stdout so the server never blocks on a full pipe
  (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      await write(value);
    }
  })().catch(() => {});

  return {
    url,
    pid: child.pid,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
      log?.close();
    },
  };
}
