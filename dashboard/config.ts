/// <reference lib="dom" />
// The page's configuration: config.json next to index.html. The local server writes it on the fly;
// `deno task dashboard:build` writes it into the static build, where an operator may edit it.
import type { DashboardConfig } from "../scripts/lib/dashboard.ts";

export type { DashboardConfig };

export async function loadConfig(): Promise<DashboardConfig> {
  const response = await fetch(new URL("config.json", document.baseURI), { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  const raw = await response.json() as Partial<DashboardConfig>;
  return {
    supabase_url: raw.supabase_url || null,
    publishable_key: raw.publishable_key || null,
    dev_sign_in: raw.dev_sign_in === true,
    realtime: raw.realtime ?? null,
  };
}

/** The base URL of the functions (without /functions/v1). */
export function serviceUrl(config: DashboardConfig): string {
  return (config.supabase_url ?? location.origin).replace(/\/+$/, "");
}
