/// <reference lib="dom" />
// Keeps a view current: it refreshes every POLL_MS while the tab is visible and, where the config
// names the job table for Supabase Realtime, at once when a job row changes. Task counters live in
// rows of their own (not on the job row), so progress still comes from the polling.
import type { DashboardConfig } from "./config.ts";
import type { Session } from "./session.ts";

export const POLL_MS = 2000;

/** Channel names of this page (crypto.randomUUID needs a secure context, an http host has none). */
let channels = 0;

/** Calls `refresh` now and then on every tick until the returned function is called. */
export function keepLive(
  refresh: () => Promise<void>,
  session: Session,
  config: DashboardConfig,
): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;

  const tick = async () => {
    clearTimeout(timer);
    if (stopped) return;
    if (!document.hidden) {
      running ??= refresh().finally(() => (running = undefined));
      await running;
    }
    clearTimeout(timer); // a tick that overlapped this one may have set it
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };
  const onVisible = () => {
    if (!document.hidden) tick();
  };
  document.addEventListener("visibilitychange", onVisible);

  const channel = config.realtime
    ? session.supabase.channel(`jobs-${++channels}`).on(
      "postgres_changes",
      { event: "*", schema: config.realtime.schema, table: config.realtime.table },
      () => tick(),
    ).subscribe()
    : undefined;

  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisible);
    if (channel) session.supabase.removeChannel(channel);
  };
}
