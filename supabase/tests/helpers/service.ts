// What the integration tests talk to: the served functions (JOB_SERVICE_URL, set by
// `deno task test`; or a server started in this process when run with plain `deno test`), the
// real supabase-js client, tokens, and a direct connection to the same database for checking state.
import { createClient, FunctionsHttpError, type SupabaseClient } from "@supabase/supabase-js";
import postgres from "postgres";
import { signToken, type TokenOptions } from "../../../scripts/lib/tokens.ts";
import { startLocalServer } from "../../../scripts/lib/local_server.ts";
import { useLocalAuth } from "../../../scripts/lib/local_auth.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";

let baseUrl: Promise<string> | undefined;

/** Base URL of the served functions (without /functions/v1). */
export function serviceUrl(): Promise<string> {
  baseUrl ??= (() => {
    const given = Deno.env.get("JOB_SERVICE_URL");
    if (given) return Promise.resolve(given);
    useLocalAuth();
    return new Promise<string>((resolve) => {
      const server = startLocalServer({ port: 0, onListen: resolve });
      addEventListener("unload", () => server.shutdown());
    });
  })();
  return baseUrl;
}

/** Deno.test without the leak sanitizers: the pool and the server outlive single tests by design. */
export function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
}

export function newUserId(): string {
  return crypto.randomUUID();
}

export function token(options: TokenOptions): Promise<string> {
  return signToken(options);
}

export const userToken = (sub: string) => signToken({ role: "authenticated", sub });
export const serviceToken = () => signToken({ role: "service_role" });

/** A supabase-js client that calls the functions with the given bearer token. */
export async function clientWith(bearer: string): Promise<SupabaseClient> {
  return createClient(await serviceUrl(), bearer, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
}

export interface Answer<T = unknown> {
  status: number;
  headers: Headers;
  /** the `data` of a success */
  data: T;
  /** the `error` of a failure */
  error?: {
    code: string;
    message: string;
    details?: unknown;
    request_id: string;
  };
}

/** Calls a function through supabase-js and returns status, headers and the parsed body. */
export async function invoke<T = unknown>(
  client: SupabaseClient,
  fn: "job-operations" | "task-operations",
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Answer<T>> {
  const { data, error, response } = await client.functions.invoke(fn, {
    body: body as Record<string, unknown>,
    headers,
  });
  if (error) {
    if (!(error instanceof FunctionsHttpError)) throw error;
    const res = error.context as Response;
    const parsed = await res.json();
    return { status: res.status, headers: res.headers, data: undefined as T, error: parsed.error };
  }
  return { status: response!.status, headers: response!.headers, data: (data as { data: T }).data };
}

/** A caller: a supabase-js client for one identity and a shortcut to call an action. */
export interface Caller {
  userId: string | null;
  client: SupabaseClient;
  call<T = unknown>(
    action: string,
    data: unknown,
    headers?: Record<string, string>,
  ): Promise<Answer<T>>;
  task<T = unknown>(action: string, data: unknown): Promise<Answer<T>>;
}

async function callerFor(bearer: string, userId: string | null): Promise<Caller> {
  const client = await clientWith(bearer);
  return {
    userId,
    client,
    call: (action, data, headers) => invoke(client, "job-operations", { action, data }, headers),
    task: (action, data) => invoke(client, "task-operations", { action, data }),
  };
}

export async function asUser(userId = newUserId()): Promise<Caller> {
  return await callerFor(await userToken(userId), userId);
}

export async function asService(): Promise<Caller> {
  return await callerFor(await serviceToken(), null);
}

/** Raw HTTP for what supabase-js cannot send (wrong methods, content types, broken JSON). */
export async function rawFetch(
  fn: string,
  init: RequestInit & { headers?: Record<string, string> },
): Promise<Response> {
  return await fetch(`${await serviceUrl()}/functions/v1/${fn}`, init);
}

let sqlClient: postgres.Sql | undefined;

/**
 * Startup settings of the tests' own connections: the service's schema first, so that checks can
 * name its tables as the engine does without repeating the schema in every query.
 */
export const TEST_CONNECTION = { search_path: "job_service, public" };

/** Direct connection to the database the server uses, for checking state. */
export function testDb(): postgres.Sql {
  sqlClient ??= postgres(Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL, {
    max: 4,
    onnotice: () => {},
    fetch_types: false,
    connection: TEST_CONNECTION,
  });
  return sqlClient;
}

export async function closeTestDb(): Promise<void> {
  await sqlClient?.end({ timeout: 5 });
  sqlClient = undefined;
}

/** Minimal valid createJob data. */
export function jobData(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { product_id: "product-1", sending_group_id: "group-1", ...overrides };
}
