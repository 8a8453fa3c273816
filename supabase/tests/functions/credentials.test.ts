// Every row of platform.md's "Credentials the functions accept", each against a function server
// of its own (scripts/serve.ts in a child process, as `deno task serve` runs it) configured as one
// kind of Supabase project configures its functions, with a local stand-in for Supabase Auth.
import assert from "node:assert/strict";
import { createClient, FunctionsHttpError } from "@supabase/supabase-js";
import { SignJWT } from "jose";
import { spawnServer } from "../../../scripts/lib/server_process.ts";
import { LOCAL_JWT_SECRET } from "../../../scripts/lib/local_auth.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";
import { type AuthStandIn, startAuthStandIn, unreachableUrl } from "../helpers/auth_stand_in.ts";
import { jobData, test } from "../helpers/service.ts";

const RESULTS_DIR = new URL("../../../.test-results/", import.meta.url).pathname;

/** Every variable a credential can come from, unset (an empty value is unset): each server names its own. */
const NO_CREDENTIALS = Object.fromEntries(
  [
    "SUPABASE_URL",
    "SUPABASE_JWKS",
    "SUPABASE_SECRET_KEYS",
    "SUPABASE_PUBLISHABLE_KEYS",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_ANON_KEY",
    "JWT_SECRET",
    "SUPABASE_JWT_SECRET",
  ].map((name) => [name, ""]),
);

interface Answer {
  status: number;
  headers: Headers;
  body: { data?: Record<string, unknown>; error?: { code: string; message: string } };
}

/** A function server with exactly these credentials; `stop` also ends the stand-in's use. */
async function serverWith(
  name: string,
  credentials: Record<string, string>,
  args: string[] = [],
) {
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const logPath = `${RESULTS_DIR}credentials-${name}.log`;
  const server = await spawnServer({
    SUPABASE_DB_URL: Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL,
    LOG_LEVEL: "error",
    ...NO_CREDENTIALS,
    ...credentials,
  }, { logPath, args });
  const call = async (
    headers: Record<string, string>,
    action: string,
    data: unknown = {},
    fn = "job-operations",
  ): Promise<Answer> => {
    const res = await fetch(`${server.url}/functions/v1/${fn}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ action, data }),
    });
    return { status: res.status, headers: res.headers, body: await res.json() };
  };
  return { ...server, logPath, call };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Creates a job with the credential and says whose it became: proof of the identity it acts as. */
async function ownerOfNewJob(
  call: (h: Record<string, string>, a: string, d?: unknown) => Promise<Answer>,
  headers: Record<string, string>,
): Promise<string> {
  const res = await call(headers, "createJob", jobData());
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.data!.user_id as string;
}

async function legacyKey(standIn: AuthStandIn, role: string): Promise<string> {
  // the legacy anon and service_role keys: ten-year HS256 JWTs without sub, signed with the secret
  return await standIn.legacyToken({ role, aud: undefined }, { expiresIn: 10 * 365 * 86400 });
}

Deno.test({
  name: "hosted project: user JWTs by the JWKS at SUPABASE_URL or by Supabase Auth, keys by match",
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const standIn = await startAuthStandIn();
  const secretKey = `sb_secret_${crypto.randomUUID()}`;
  const publishableKey = `sb_publishable_${crypto.randomUUID()}`;
  const serviceRoleKey = await legacyKey(standIn, "service_role");
  const anonKey = await legacyKey(standIn, "anon");
  const server = await serverWith("hosted", {
    SUPABASE_URL: standIn.url,
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: secretKey }),
    SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: publishableKey }),
    SUPABASE_SERVICE_ROLE_KEY: serviceRoleKey,
    SUPABASE_ANON_KEY: anonKey,
  });
  const { call } = server;
  try {
    await t.step(
      "a user JWT signed with the project's ES256 key: the JWKS fetched once",
      async () => {
        const user = crypto.randomUUID();
        const token = await standIn.asymmetricToken({ sub: user });
        assert.equal(await ownerOfNewJob(call, bearer(token)), user);
        assert.equal((await call(bearer(token), "listJobs", {})).status, 200);
        assert.equal(standIn.hits.jwks, 1);
        assert.equal(standIn.hits.user, 0, "a JWKS-verified token does not ask Auth");
        const notService = await call(bearer(token), "listJobs", { user_id: user });
        assert.equal(notService.status, 403, "a user token acts as that user, not as the service");
        // signed by a key pair the project does not have: refused
        const otherProject = await startAuthStandIn();
        try {
          const foreign = await otherProject.asymmetricToken({ sub: user });
          const refused = await call(bearer(foreign), "listJobs", {});
          assert.equal(refused.status, 401);
          assert.equal(refused.body.error?.code, "UNAUTHORIZED");
          const pathKid = await otherProject.asymmetricToken({ sub: user }, {
            kid: "../../etc/passwd",
          });
          assert.equal((await call(bearer(pathKid), "listJobs", {})).status, 401);
        } finally {
          await otherProject.close();
        }
        const expired = await standIn.asymmetricToken({ sub: user }, { expiresIn: -60 });
        const late = await call(bearer(expired), "listJobs", {});
        assert.equal(late.status, 401);
        assert.match(late.body.error!.message, /expired/);
      },
    );

    await t.step("a legacy HS256 user token: Supabase Auth is asked, its answer kept", async () => {
      const user = standIn.addUser();
      const token = await standIn.legacyToken({ sub: user.id, email: user.email });
      const before = standIn.hits.user;
      assert.equal(await ownerOfNewJob(call, bearer(token)), user.id);
      assert.equal(standIn.hits.user, before + 1);
      // what supabase-js auth.getUser(jwt) sends
      assert.equal(standIn.lastUserRequest?.get("authorization"), `Bearer ${token}`);
      assert.equal(standIn.lastUserRequest?.get("apikey"), publishableKey);
      assert.equal(standIn.lastUserRequest?.get("x-supabase-api-version"), "2024-01-01");
      assert.equal((await call(bearer(token), "listJobs", {})).status, 200);
      assert.equal(standIn.hits.user, before + 1, "a second call within 60 s does not ask Auth");
      // Auth's refusals (403 user_not_found, 403 bad_jwt) are 401, and kept as well
      const stranger = await standIn.legacyToken({ sub: crypto.randomUUID() });
      for (let i = 0; i < 2; i++) {
        const res = await call(bearer(stranger), "listJobs", {});
        assert.equal(res.status, 401);
        assert.equal(res.body.error?.code, "UNAUTHORIZED");
      }
      assert.equal(standIn.hits.user, before + 2);
      const badSignature = await standIn.legacyToken({ sub: user.id }, {
        secret: LOCAL_JWT_SECRET,
      });
      assert.equal((await call(bearer(badSignature), "listJobs", {})).status, 401);
      assert.equal(standIn.hits.user, before + 3);
    });

    await t.step("an sb_secret_ key, in apikey or as bearer, is the service", async () => {
      for (const headers of [{ apikey: secretKey }, bearer(secretKey)]) {
        const stats = await call(headers, "getStats", {});
        assert.equal(stats.status, 200, JSON.stringify(headers));
      }
      // supabase-js sends an sb_ key in apikey alone
      const { data, error } = await createClient(server.url, secretKey).functions.invoke(
        "job-operations",
        { body: { action: "getStats", data: {} } },
      );
      assert.equal(error, null);
      assert.ok((data as { data: unknown }).data);
      const unknown = await call({ apikey: `sb_secret_${crypto.randomUUID()}` }, "getStats");
      assert.equal(unknown.status, 401);
    });

    await t.step(
      "the legacy service_role key, in bearer or apikey, by constant-time match",
      async () => {
        const before = standIn.hits.user;
        for (const headers of [bearer(serviceRoleKey), { apikey: serviceRoleKey }]) {
          assert.equal((await call(headers, "getStats", {})).status, 200, JSON.stringify(headers));
        }
        assert.equal(standIn.hits.user, before, "the key is matched, never sent to Auth");
        // a service_role token that is not the project's key: nothing here can verify it
        const other = await standIn.legacyToken({ role: "service_role", aud: undefined });
        assert.equal((await call(bearer(other), "getStats", {})).status, 401);
      },
    );

    await t.step("a publishable or anon key alone is anon: 403", async () => {
      for (const headers of [{ apikey: publishableKey }, { apikey: anonKey }, bearer(anonKey)]) {
        const res = await call(headers, "listJobs", {});
        assert.equal(res.status, 403, JSON.stringify(headers));
        assert.equal(res.body.error?.code, "FORBIDDEN");
      }
      const { error } = await createClient(server.url, publishableKey).functions.invoke(
        "job-operations",
        { body: { action: "listJobs", data: {} } },
      );
      assert.ok(error instanceof FunctionsHttpError);
      assert.equal((error.context as Response).status, 403);
      await (error.context as Response).body?.cancel();
    });
  } finally {
    await server.stop();
    await standIn.close();
  }
});

test("self-hosted: the JWKS inline in SUPABASE_JWKS, legacy tokens with JWT_SECRET", async () => {
  const standIn = await startAuthStandIn();
  const jwtSecret = `self-hosted-${crypto.randomUUID()}`;
  const server = await serverWith("self-hosted", {
    SUPABASE_JWKS: standIn.jwksJson,
    JWT_SECRET: jwtSecret,
  });
  try {
    const { call } = server;
    const esUser = crypto.randomUUID();
    assert.equal(
      await ownerOfNewJob(call, bearer(await standIn.asymmetricToken({ sub: esUser }))),
      esUser,
    );
    const hsUser = crypto.randomUUID();
    const hsToken = await standIn.legacyToken({ sub: hsUser }, { secret: jwtSecret });
    assert.equal(await ownerOfNewJob(call, bearer(hsToken)), hsUser);
    const service = await standIn.legacyToken({ role: "service_role", aud: undefined }, {
      secret: jwtSecret,
    });
    assert.equal((await call(bearer(service), "getStats", {})).status, 200);
    // a service_role JWT in apikey alone is verified as a JWT too
    assert.equal((await call({ apikey: service }, "getStats", {})).status, 200);
    // the operator's secret is set: the public local secret is worth nothing
    const forged = await standIn.legacyToken({ role: "service_role" }, {
      secret: LOCAL_JWT_SECRET,
    });
    assert.equal((await call(bearer(forged), "getStats", {})).status, 401);
    assert.deepEqual(standIn.hits, { user: 0, jwks: 0 }, "nothing fetched, nothing asked");
  } finally {
    await server.stop();
    await standIn.close();
  }
});

test("deno task serve with SUPABASE_URL set and no verifier refuses a token signed with the public local secret", async () => {
  const standIn = await startAuthStandIn();
  const server = await serverWith("forged", { SUPABASE_URL: standIn.url });
  try {
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setIssuedAt().setExpirationTime("1h")
        .sign(new TextEncoder().encode(LOCAL_JWT_SECRET));
    const forgedService = await sign({ role: "service_role" });
    const stats = await server.call(bearer(forgedService), "getStats", {});
    assert.notEqual(stats.status, 200);
    assert.equal(stats.status, 401);
    // a forged user token reaches Auth, which refuses it
    const forgedUser = await sign({
      role: "authenticated",
      aud: "authenticated",
      sub: standIn.addUser().id,
    });
    const list = await server.call(bearer(forgedUser), "listJobs", {});
    assert.equal(list.status, 401);
    assert.equal(standIn.hits.user, 1);
  } finally {
    await server.stop();
    await standIn.close();
  }
});

test("Supabase Auth unreachable when it must be asked: 503 SERVICE_UNAVAILABLE with Retry-After", async () => {
  const standIn = await startAuthStandIn();
  const server = await serverWith("unreachable", { SUPABASE_URL: unreachableUrl() });
  try {
    const legacy = await standIn.legacyToken({ sub: standIn.addUser().id });
    const asymmetric = await standIn.asymmetricToken({ sub: crypto.randomUUID() });
    for (const token of [legacy, asymmetric]) {
      const res = await server.call(bearer(token), "listJobs", {});
      assert.equal(res.status, 503);
      assert.equal(res.body.error?.code, "SERVICE_UNAVAILABLE");
      assert.ok(Number(res.headers.get("retry-after")) >= 1);
    }
  } finally {
    await server.stop();
    await standIn.close();
  }
});

test("nothing configured (as deployed, --no-local-secret): 503 AUTH_NOT_CONFIGURED, the log names what is missing", async () => {
  const standIn = await startAuthStandIn();
  const server = await serverWith("unconfigured", {}, ["--no-local-secret"]);
  try {
    const credentials = [
      bearer(await standIn.legacyToken({ sub: crypto.randomUUID() })),
      bearer(await standIn.asymmetricToken({ sub: crypto.randomUUID() })),
      { apikey: `sb_secret_${crypto.randomUUID()}` },
      bearer(await standIn.legacyToken({ role: "service_role" }, { secret: LOCAL_JWT_SECRET })),
    ];
    for (const headers of credentials) {
      const res = await server.call(headers, "getStats", {});
      assert.equal(res.status, 503, JSON.stringify(headers));
      assert.equal(res.body.error?.code, "AUTH_NOT_CONFIGURED");
      assert.equal(res.headers.get("retry-after"), null);
    }
    // no credential at all is still the caller's fault
    assert.equal((await server.call({}, "getStats", {})).status, 401);
  } finally {
    await server.stop();
    await standIn.close();
  }
  const lines = (await Deno.readTextFile(server.logPath)).split("\n")
    .filter((line) => line.includes("AUTH_NOT_CONFIGURED"));
  assert.equal(lines.length, 4, "one log line per refused request");
  const log = lines.join("\n");
  assert.match(log, /JWT_SECRET .*SUPABASE_URL/);
  assert.match(log, /SUPABASE_JWKS nor SUPABASE_URL/);
  assert.match(log, /SUPABASE_SECRET_KEYS is not set/);
});
