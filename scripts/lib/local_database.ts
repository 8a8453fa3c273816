// Which PostgreSQL the local commands (dev, db:reset, test) use: the one SUPABASE_DB_URL names;
// else the default address when something answers there; else the embedded PostgreSQL
// (embedded_postgres.ts), started for the command and stopped when it ends.
import { DEFAULT_DB_URL, env } from "../../supabase/functions/_shared/env.ts";
import { type EmbeddedServer, startEmbeddedPostgres } from "./embedded_postgres.ts";

export interface LocalDatabase {
  /** the database of the local commands (job_operations by default) */
  url: string;
  /** the embedded server, when it is the one used */
  embedded?: EmbeddedServer;
  /** stops the embedded server unless another command runs it */
  stop(): Promise<void>;
}

/**
 * The default address: DEFAULT_DB_URL, whose port DEFAULT_DB_PORT replaces. That variable exists
 * only so that CI can prove the embedded path on a machine whose own PostgreSQL listens on 5432.
 */
export function defaultDbUrl(): string {
  const url = new URL(DEFAULT_DB_URL);
  const port = env("DEFAULT_DB_PORT");
  if (port) url.port = port;
  return url.toString();
}

/** Whether anything accepts a TCP connection at the URL's host and port. */
export async function answers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  try {
    const conn = await Deno.connect({ hostname, port: Number(port || 5432) });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * `given` is SUPABASE_DB_URL (undefined when unset); the default address `fallback` is probed
 * otherwise.
 */
export async function localDatabase(
  { given, fallback }: { given?: string; fallback: string } = {
    given: env("SUPABASE_DB_URL"),
    fallback: defaultDbUrl(),
  },
): Promise<LocalDatabase> {
  const none = async () => {};
  if (given) return { url: given, stop: none };
  if (await answers(fallback)) return { url: fallback, stop: none };
  const embedded = await startEmbeddedPostgres();
  const { hostname, port } = new URL(fallback);
  const database = decodeURIComponent(new URL(fallback).pathname.slice(1));
  const server = `embedded PostgreSQL ${embedded.installation.version.split("-")[0]} on ` +
    `127.0.0.1:${embedded.port}`;
  const what = {
    started: `started the ${server}`,
    adopted: `took over the ${server} that an ended command left running`,
    shared: `using the ${server} that another command runs`,
  }[embedded.state];
  console.log(
    `No PostgreSQL answers at ${hostname}:${port || 5432} and SUPABASE_DB_URL is unset: ${what} ` +
      `(data in .data/postgres/data)`,
  );
  return { url: embedded.url(database), embedded, stop: () => embedded.stop() };
}

const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

/**
 * Runs `cleanup` on the first Ctrl-C (SIGINT), SIGTERM or SIGHUP (the terminal closed), then exits
 * as an interrupted process does (128 + the signal's number; 1 when the cleanup failed). Later
 * signals are ignored: `deno task` forwards the one the terminal already sent to its whole process
 * group, so the command gets each Ctrl-C twice.
 */
export function onExitSignal(cleanup: () => Promise<void>): void {
  let stopping = false;
  for (const [signal, number] of Object.entries(SIGNAL_NUMBERS)) {
    Deno.addSignalListener(signal as Deno.Signal, async () => {
      if (stopping) return;
      stopping = true;
      let code = 128 + number;
      try {
        await cleanup();
      } catch (error) {
        console.error(error instanceof Error ? error.message : error);
        code = 1;
      }
      Deno.exit(code);
    });
  }
}
