// What the functions read from their environment to verify credentials, and how they keep Supabase
// Auth's answers: at most 60 s, never past the token's expiry, a bounded number, failures never.
import assert from "node:assert/strict";
import { parseKeySet, readAuthConfig } from "../../functions/_shared/auth_config.ts";
import {
  AuthUnavailable,
  createUserLookup,
  USER_ANSWER_TTL_MS,
} from "../../functions/_shared/supabase_auth.ts";
import { type AuthStandIn, startAuthStandIn } from "../helpers/auth_stand_in.ts";

Deno.test("SUPABASE_SECRET_KEYS as Supabase sets it (name → key), or a comma list", () => {
  assert.deepEqual(parseKeySet('{"default":"sb_secret_a","cron":"sb_secret_b"}'), {
    default: "sb_secret_a",
    cron: "sb_secret_b",
  });
  assert.deepEqual(parseKeySet("sb_secret_a, sb_secret_b,"), {
    0: "sb_secret_a",
    1: "sb_secret_b",
  });
  assert.deepEqual(parseKeySet('["sb_secret_a"]'), { 0: "sb_secret_a" });
  assert.deepEqual(parseKeySet('{"default":"","n":1}'), {});
  assert.deepEqual(parseKeySet(undefined), {});
});

Deno.test("the JWKS: SUPABASE_JWKS inline, else Auth's at SUPABASE_URL; nothing without either", () => {
  const vars = (values: Record<string, string>) => (name: string) => values[name];
  const inline = readAuthConfig(vars({
    SUPABASE_JWKS: '{"keys":[{"kty":"EC"}]}',
    SUPABASE_URL: "https://ref.supabase.co/",
  }));
  assert.deepEqual(inline.jwks, { keys: [{ kty: "EC" }] });
  assert.equal(inline.supabaseUrl, "https://ref.supabase.co");
  const fetched = readAuthConfig(vars({ SUPABASE_URL: "https://ref.supabase.co/" }));
  assert.equal(String(fetched.jwks), "https://ref.supabase.co/auth/v1/.well-known/jwks.json");
  assert.equal(fetched.jwtSecret, null);
  const none = readAuthConfig(vars({}));
  assert.equal(none.jwks, null);
  assert.equal(none.supabaseUrl, null);
});

Deno.test("legacy keys and the apikey sent to Auth (a publishable or anon key first)", () => {
  const config = readAuthConfig((name) =>
    ({
      SUPABASE_SECRET_KEYS: '{"default":"sb_secret_a"}',
      SUPABASE_SERVICE_ROLE_KEY: "eyJ.service.role",
      SUPABASE_ANON_KEY: "eyJ.anon.key",
      SUPABASE_JWT_SECRET: "s3cret",
    })[name]
  );
  assert.deepEqual(config.legacyKeys, {
    secret: { service_role: "eyJ.service.role" },
    publishable: { anon: "eyJ.anon.key" },
  });
  assert.equal(config.authApiKey, "eyJ.anon.key");
  assert.deepEqual(config.jwtSecret, new TextEncoder().encode("s3cret"));
});

/** A clock the cache reads instead of performance.now(). */
function fakeClock() {
  let now = 1_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

async function withStandIn(fn: (standIn: AuthStandIn) => Promise<void>): Promise<void> {
  const standIn = await startAuthStandIn();
  try {
    await fn(standIn);
  } finally {
    await standIn.close();
  }
}

const inAnHour = () => Date.now() + 3_600_000;

Deno.test("Auth's answer is kept at most 60 s", () =>
  withStandIn(async (standIn) => {
    const clock = fakeClock();
    const lookup = createUserLookup({ url: standIn.url, apikey: "sb_publishable_x", perf: clock });
    const user = standIn.addUser();
    const token = await standIn.legacyToken({ sub: user.id });
    const first = await lookup(token, inAnHour());
    assert.ok("user" in first && first.user.id === user.id);
    clock.advance(USER_ANSWER_TTL_MS - 100);
    await lookup(token, inAnHour());
    assert.equal(standIn.hits.user, 1, "kept within the minute");
    clock.advance(200);
    await lookup(token, inAnHour());
    assert.equal(standIn.hits.user, 2, "asked again after 60 s");
  }));

Deno.test("an answer is never kept past the token's expiry", () =>
  withStandIn(async (standIn) => {
    const clock = fakeClock();
    const lookup = createUserLookup({ url: standIn.url, apikey: null, perf: clock });
    const token = await standIn.legacyToken({ sub: standIn.addUser().id });
    await lookup(token, Date.now() + 10_000);
    clock.advance(9_000);
    await lookup(token, Date.now() + 10_000);
    assert.equal(standIn.hits.user, 1);
    clock.advance(2_000);
    await lookup(token, Date.now() + 10_000);
    assert.equal(standIn.hits.user, 2);
  }));

Deno.test("the cache is bounded: the least recently used answer goes first", () =>
  withStandIn(async (standIn) => {
    const lookup = createUserLookup({ url: standIn.url, apikey: null, max: 2 });
    const tokens = await Promise.all(
      [1, 2, 3].map(() => standIn.legacyToken({ sub: standIn.addUser().id })),
    );
    for (const token of tokens) await lookup(token, inAnHour());
    assert.equal(standIn.hits.user, 3);
    await lookup(tokens[2], inAnHour());
    await lookup(tokens[1], inAnHour());
    assert.equal(standIn.hits.user, 3, "the two newest are kept");
    await lookup(tokens[0], inAnHour());
    assert.equal(standIn.hits.user, 4, "the oldest was dropped");
  }));

Deno.test("concurrent look-ups of one token make one call; refusals are answers", () =>
  withStandIn(async (standIn) => {
    const lookup = createUserLookup({ url: standIn.url, apikey: null });
    const token = await standIn.legacyToken({ sub: standIn.addUser().id });
    const answers = await Promise.all([1, 2, 3, 4].map(() => lookup(token, inAnHour())));
    assert.ok(answers.every((a) => "user" in a));
    assert.equal(standIn.hits.user, 1);
    const stranger = await standIn.legacyToken({ sub: crypto.randomUUID() });
    const refused = await lookup(stranger, inAnHour());
    assert.ok("refused" in refused);
    assert.match(refused.refused, /user_not_found/);
    const malformed = await lookup(await standIn.legacyToken({ sub: "user-7" }), inAnHour());
    assert.ok("refused" in malformed, "400 bad_jwt");
  }));

Deno.test("Auth failing is AuthUnavailable and nothing is kept", () =>
  withStandIn(async (standIn) => {
    const lookup = createUserLookup({ url: standIn.url, apikey: null });
    const token = await standIn.legacyToken({ sub: standIn.addUser().id });
    standIn.failing = true;
    for (let i = 1; i <= 2; i++) {
      await assert.rejects(lookup(token, inAnHour()), AuthUnavailable);
    }
    standIn.failing = false;
    assert.ok("user" in await lookup(token, inAnHour()));
    // a gateway's 401 without GoTrue's error code says nothing about the token
    const gateway = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () => Response.json({ message: "Invalid API key" }, { status: 401 }),
    );
    try {
      const behindGateway = createUserLookup({
        url: `http://127.0.0.1:${gateway.addr.port}`,
        apikey: "wrong",
      });
      await assert.rejects(behindGateway(token, inAnHour()), AuthUnavailable);
    } finally {
      await gateway.shutdown();
    }
  }));
