// Fault injection for the tests: a function server with its own pool (so the connections a test
// kills belong to no other test), finding its backends in pg_stat_activity, killing them, and
// restarting PostgreSQL (only where the environment allows it).
import postgres from "postgres";
import { spawnServer } from "../../../scripts/lib/server_process.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";
import { testDb } from "./service.ts";

export const DB_URL = Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL;
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface FaultyServer {
  url: string;
  /** application_name of its connections */
  appName: string;
  /** its output (one JSON line per failed request, and anything it printed before dying) */
  logPath: string;
  stop(): Promise<void>;
}

/** A server process of its own; its database connections carry a unique application_name. */
export async function faultyServer(env: Record<string, string> = {}): Promise<FaultyServer> {
  const appName = `fault-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(".test-results", { recursive: true }).catch(() => {});
  const logPath = `.test-results/${appName}-server.log`;
  const server = await spawnServer({
    SUPABASE_DB_URL: DB_URL,
    LOG_LEVEL: "error",
    DB_APPLICATION_NAME: appName,
    DB_CONNECT_TIMEOUT_S: "2",
    ...env,
  }, { logPath });
  return { url: server.url, appName, logPath, stop: () => server.stop() };
}

/**
 * Waits until one of the server's backends matches (e.g. waits on a lock, or runs a statement
 * for a while) and returns its pid.
 */
export async function waitForBackend(
  appName: string,
  match: { waitingOnLock?: boolean; queryLike?: string; runningMs?: number },
  timeoutMs = 10_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const rows = await testDb()`
      select pid from pg_stat_activity
      where application_name = ${appName} and state = 'active'
        and (${!match.waitingOnLock} or wait_event_type = 'Lock')
        and (${match.queryLike ?? null}::text is null or query like ${match.queryLike ?? "%"})
        and now() - query_start >= ${match.runningMs ?? 0} * interval '1 millisecond'
      limit 1`;
    if (rows.length) return rows[0].pid;
    await sleep(2);
  }
  throw new Error(`no backend of ${appName} matched ${JSON.stringify(match)}`);
}

export async function terminate(pid: number): Promise<boolean> {
  const [{ ok }] = await testDb()`select pg_terminate_backend(${pid}) as ok`;
  return ok;
}

/**
 * Holds row locks in an open transaction until `release()`: whatever then needs those rows waits,
 * mid-transaction, where the test can kill it. `statement` runs inside the transaction.
 */
export async function holdLocks(
  statement: (tx: postgres.TransactionSql) => Promise<unknown>,
): Promise<{ release: () => Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let holding!: () => void;
  const held = new Promise<void>((resolve) => (holding = resolve));
  const done = testDb().begin(async (tx) => {
    await statement(tx);
    holding();
    await released;
  }).catch(() => {});
  await held;
  return {
    release: async () => {
      release();
      await done;
    },
  };
}

export interface KillerStats {
  kills: number;
}

/**
 * Kills, every 20–60 ms until the signal aborts, one backend of the server that is in the middle of
 * a request (active or idle in a transaction): connections die during creates, claims, reports.
 */
export async function killBackends(
  appName: string,
  signal: AbortSignal,
  stats: KillerStats,
): Promise<void> {
  const db = postgres(DB_URL, { max: 1, onnotice: () => {}, fetch_types: false });
  try {
    while (!signal.aborted) {
      await sleep(20 + Math.random() * 40);
      const rows = await db`
        select pg_terminate_backend(pid) as ok from pg_stat_activity
        where application_name = ${appName} and state in ('active', 'idle in transaction')
        order by random() limit 1`;
      stats.kills += rows.filter((r) => r.ok).length;
    }
  } finally {
    await db.end({ timeout: 2 });
  }
}

/** True when the test may restart the PostgreSQL cluster (it disturbs every other user of it). */
export const PG_RESTART_ALLOWED = Deno.env.get("ALLOW_PG_RESTART") === "1";

/** Restarts the local cluster and waits until it answers again; returns how long it was away. */
export async function restartPostgres(): Promise<number> {
  const started = Date.now();
  const cmd = Deno.env.get("PG_RESTART_COMMAND")?.split(" ") ??
    ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart", "-m", "fast"];
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(`restart failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  for (let i = 0; i < 300; i++) {
    const probe = postgres(DB_URL, { max: 1, connect_timeout: 1, onnotice: () => {} });
    try {
      await probe`select 1`;
      return Date.now() - started;
    } catch {
      await sleep(100);
    } finally {
      await probe.end({ timeout: 1 }).catch(() => {});
    }
  }
  throw new Error("PostgreSQL did not come back within 30 s");
}

/**
 * Gives runMaintenance's lease back, whoever holds it. Cleanup after a test whose server died or
 * was killed mid-run: the lease of a dead run blocks maintenance for minutes (a reported bug), and
 * later tests need maintenance.
 */
export async function releaseMaintenanceLease(): Promise<void> {
  await testDb()`update job_service.maintenance_lease set holder = null, expires_at = '-infinity'`;
}
