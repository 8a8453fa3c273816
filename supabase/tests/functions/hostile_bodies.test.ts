// Hostile bodies (quality.md): eight concurrent 8 MiB bodies of the worst shapes for a JSON parser,
// with and without a valid token and through createJob, against a server process of its own
// started with the V8 heap caps of `deno task serve`. Each is answered 4xx with its documented
// code, the server stays up below 150 MiB of peak RSS, and the next normal requests succeed.
// Requests without a valid token are answered before their body is read.
import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import { invoke, jobData, test, userToken } from "../helpers/service.ts";
import { type ServerProcess, spawnServer } from "../../../scripts/lib/server_process.ts";
import { DEFAULT_DB_URL } from "../../functions/_shared/env.ts";
import { MAX_BODY_BYTES } from "../../functions/_shared/request_body.ts";
import { MAX_BODY_VALUES, MAX_STRING_BYTES } from "../../functions/_shared/json_guard.ts";
import { MAX_JSON_DEPTH } from "../../functions/_shared/validation.ts";
import type { BatchJob } from "../../functions/_shared/job_schemas.ts";

const DB_URL = Deno.env.get("SUPABASE_DB_URL") ?? DEFAULT_DB_URL;
const RSS_LIMIT_MIB = 150;
const CONCURRENCY = 8;
const encoder = new TextEncoder();

/** `head`, then `unit` joined by commas as often as fits in 8 MiB, then `tail`. */
function fill(head: string, unit: string, tail: string): Uint8Array<ArrayBuffer> {
  const room = MAX_BODY_BYTES - head.length - tail.length;
  const count = Math.floor((room + 1) / (unit.length + 1));
  const body = encoder.encode(head + Array(count).fill(unit).join(",") + tail);
  assert.ok(body.byteLength <= MAX_BODY_BYTES && body.byteLength > MAX_BODY_BYTES - 64);
  return body;
}

const half = MAX_BODY_BYTES / 2;
const createJob = (tasks: string) =>
  `{"action":"createJob","data":{"product_id":"p","sending_group_id":"g","tasks":${tasks}`;

/** The worst shapes, each 8 MiB, with the answer a signed-in caller gets. */
const SHAPES: {
  name: string;
  body: () => Uint8Array<ArrayBuffer>;
  status: number;
  code: string;
}[] = [
  {
    name: "[{},{},…]",
    body: () => fill("[", "{}", "]"),
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  },
  {
    name: "[[[[…]]]] nested 4 million deep",
    body: () => encoder.encode("[".repeat(half) + "]".repeat(half)),
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  },
  {
    name: "millions of tiny numbers",
    body: () => fill("[", "0", "]"),
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  },
  {
    name: "objects of distinct keys",
    body: () => {
      const parts: string[] = [];
      let size = 2;
      for (let i = 0; size < MAX_BODY_BYTES - 32; i++) {
        const part = `{"k${i}":0}`;
        parts.push(part);
        size += part.length + 1;
      }
      return encoder.encode(`[${parts.join(",")}]`);
    },
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  },
  {
    name: "one huge string",
    body: () => encoder.encode(`"${"é".repeat(half - 1)}"`),
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  },
];

/** The same shapes inside a createJob of a signed-in user. */
const CREATE_JOB_SHAPES: typeof SHAPES = [
  {
    name: "createJob tasks [{},{},…]",
    body: () => fill(createJob("["), "{}", "]}}"),
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  },
  {
    name: "createJob with a payload nested 4 million deep",
    body: () => {
      const head = createJob('[{"payload":');
      const depth = (MAX_BODY_BYTES - head.length - 8) / 2;
      return encoder.encode(head + "[".repeat(depth) + "]".repeat(depth) + "}]}}");
    },
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  },
  {
    name: "createJob with payloads of tiny numbers",
    body: () => fill(createJob('[{"payload":['), "0", "]}]}}"),
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  },
  {
    name: "createJob with one huge string payload",
    body: () => {
      const [head, tail] = [createJob('[{"payload":"'), '"}]}}'];
      return encoder.encode(head + "x".repeat(MAX_BODY_BYTES - head.length - tail.length) + tail);
    },
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  },
];

const atBound = (head: string, unit: (i: number) => string, tail: string) => () => {
  // the body's own values besides the units: fewer than 40
  const count = Math.floor((MAX_BODY_VALUES - 40) / unitValues(unit(0)));
  return encoder.encode(head + Array.from({ length: count }, (_, i) => unit(i)).join(",") + tail);
};
const unitValues = (unit: string) => valuesIn(JSON.parse(unit));
const pads = Array.from({ length: 7 }, (_, i) => `"p${i}":"${"x".repeat(MAX_STRING_BYTES - 16)}"`);

/** The heaviest bodies the guard lets through: parsed, then refused by validation. */
const GUARD_PASSING_SHAPES: typeof SHAPES = [
  {
    name: "createJob with tasks [{},{},…] up to the value bound",
    body: atBound(createJob("["), () => "{}", "]}}"),
    status: 400,
    code: "VALIDATION_ERROR",
  },
  {
    name: "createJob with tasks of distinct keys up to the value bound",
    body: atBound(createJob("["), (i) => `{"k${i}":0}`, "]}}"),
    status: 400,
    code: "VALIDATION_ERROR",
  },
  {
    name: "createJob with 7 MiB of strings and values up to the bound",
    body: atBound(
      `{"action":"createJob","data":{"product_id":"p","sending_group_id":"g",` +
        `"metadata":{${pads.join(",")}},"tasks":[`,
      () => "{}",
      "]}}",
    ),
    status: 400,
    code: "VALIDATION_ERROR",
  },
];

interface Answer {
  status: number;
  code?: string;
}

async function post(url: string, body: BodyInit, token?: string): Promise<Answer> {
  const res = await fetch(`${url}/functions/v1/job-operations`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
    },
    body,
  });
  const text = await res.text();
  return { status: res.status, code: text ? JSON.parse(text).error?.code : undefined };
}

/** What the guard counts for a parsed body: every value, and every object key. */
function valuesIn(value: unknown): number {
  if (Array.isArray(value)) return value.reduce((n: number, item) => n + valuesIn(item), 1);
  if (value !== null && typeof value === "object") {
    return Object.values(value).reduce((n: number, item) => n + 1 + valuesIn(item), 1);
  }
  return 1;
}

function peakRssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)![1]) / 1024;
}

/** The status line of a raw HTTP/1.1 request that declares `length` body bytes and sends none. */
async function declaredOnly(url: string, length: number, token?: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const head = [
      "POST /functions/v1/job-operations HTTP/1.1",
      `Host: ${hostname}:${port}`,
      "Content-Type: application/json",
      `Content-Length: ${length}`,
      ...(token ? [`Authorization: Bearer ${token}`] : []),
      "",
      "",
    ].join("\r\n");
    await conn.write(encoder.encode(head));
    const buffer = new Uint8Array(4096);
    const n = await conn.read(buffer);
    return new TextDecoder().decode(buffer.subarray(0, n ?? 0)).split("\r\n")[0];
  } finally {
    conn.close();
  }
}

/** A body that never ends, and how many bytes of it were pulled. */
function endless(first: string, unit: string) {
  const counter = { pulled: 0 };
  let started = false;
  const chunk = encoder.encode(unit.repeat(Math.ceil(65_536 / unit.length)));
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = started ? chunk : encoder.encode(first);
      started = true;
      counter.pulled += next.byteLength;
      controller.enqueue(next);
    },
  });
  return { stream, counter };
}

async function withServer(fn: (server: ServerProcess) => Promise<void>): Promise<void> {
  const server = await spawnServer({ SUPABASE_DB_URL: DB_URL, LOG_LEVEL: "silent" });
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

async function assertServes(url: string): Promise<void> {
  const userId = crypto.randomUUID();
  const client = createClient(url, await userToken(userId), {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  const tasks = Array.from({ length: 10_000 }, (_, n) => ({ payload: { to: `u${n}@x.org`, n } }));
  const created = await invoke<BatchJob>(client, "job-operations", {
    action: "createJob",
    data: jobData({ tasks }),
  });
  assert.equal(created.status, 201, JSON.stringify(created.error));
  assert.equal(created.data.tasks.total, 10_000);
  const got = await invoke<BatchJob>(client, "job-operations", {
    action: "getJob",
    data: { job_id: created.data.id },
  });
  assert.equal(got.status, 200);
}

/** Sends each shape eight times at once, without and with a token; returns the figures. */
async function sendConcurrently(server: ServerProcess, shapes: typeof SHAPES): Promise<string[]> {
  const token = await userToken(crypto.randomUUID());
  const figures: string[] = [];
  for (const shape of shapes) {
    const body = shape.body();
    for (const auth of [undefined, token]) {
      const started = performance.now();
      const answers = await Promise.all(
        Array.from({ length: CONCURRENCY }, () => post(server.url, body, auth)),
      );
      const ms = performance.now() - started;
      const [status, code] = auth ? [shape.status, shape.code] : [401, "UNAUTHORIZED"];
      for (const answer of answers) {
        assert.deepEqual(answer, { status, code }, `${shape.name}, token: ${!!auth}`);
      }
      figures.push(
        `${shape.name} ${auth ? "with" : "without"} token: ${status} ${code} ×${CONCURRENCY} ` +
          `in ${Math.round(ms)} ms, peak RSS ${peakRssMiB(server.pid).toFixed(1)} MiB`,
      );
    }
  }
  return figures;
}

test("hostile bodies: eight concurrent 8 MiB bodies of each worst shape, with and without a token, are 4xx; the server stays up under 150 MiB", async () => {
  await withServer(async (server) => {
    const figures = await sendConcurrently(server, [...SHAPES, ...CREATE_JOB_SHAPES]);
    console.log(figures.join("\n"));
    const peak = peakRssMiB(server.pid);
    assert.ok(peak < RSS_LIMIT_MIB, `peak RSS ${peak.toFixed(1)} MiB`);
    await assertServes(server.url);
  });
});

// The heaviest bodies the guard admits cost what valid bodies of their size cost: their figures
// are reported (docs/decisions.md), the server must answer them and go on serving.
test("hostile bodies: the heaviest bodies the guard lets through are 400, eight at once, and the server goes on", async () => {
  await withServer(async (server) => {
    const figures = await sendConcurrently(server, GUARD_PASSING_SHAPES);
    console.log(figures.join("\n"));
    await assertServes(server.url);
  });
});

test("hostile bodies: without a valid token the answer comes before the body is read", async () => {
  await withServer(async (server) => {
    // a declared length of 1 GiB, nothing sent: 401 at once without a token, 413 with one
    assert.match(await declaredOnly(server.url, 2 ** 30), /^HTTP\/1\.1 401/);
    const token = await userToken(crypto.randomUUID());
    assert.match(await declaredOnly(server.url, 2 ** 30, token), /^HTTP\/1\.1 413/);
    // a body that never ends: 401 without a token, and most of it never pulled
    const endlessBody = endless("[", "{},");
    const answer = await post(server.url, endlessBody.stream, "not-a-token");
    assert.deepEqual(answer, { status: 401, code: "UNAUTHORIZED" });
    assert.ok(endlessBody.counter.pulled < MAX_BODY_BYTES, `${endlessBody.counter.pulled} bytes`);
    // with a token, endless bodies are refused while they are read: by the guard, or at 8 MiB
    for (
      const [first, unit] of [["[", "{},"], ["", "["], ["[", "0,"], ['"', "x"]] as const
    ) {
      const stream = endless(first, unit);
      const refused = await post(server.url, stream.stream, token);
      assert.deepEqual(refused, { status: 413, code: "PAYLOAD_TOO_LARGE" }, `${first}${unit}…`);
    }
    await assertServes(server.url);
  });
});

test("hostile bodies: the guard's bounds admit the deepest and largest valid requests", async () => {
  await withServer(async (server) => {
    const userId = crypto.randomUUID();
    const token = await userToken(userId);
    const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
    // a payload nested MAX_JSON_DEPTH levels is valid (MAX_BODY_DEPTH in the body); one more is 413
    const deepest = `{"action":"createJob","data":{"product_id":"p","sending_group_id":"g",` +
      `"tasks":[{"payload":${nested(MAX_JSON_DEPTH)}}]}}`;
    assert.equal((await post(server.url, deepest, token)).status, 201);
    const deeper = deepest.replace(nested(MAX_JSON_DEPTH), nested(MAX_JSON_DEPTH + 1));
    assert.deepEqual(await post(server.url, deeper, token), {
      status: 413,
      code: "PAYLOAD_TOO_LARGE",
    });
    // metadata nested one level past what is valid is still the validator's 400
    const metadata = `{"action":"createJob","data":{"product_id":"p","sending_group_id":"g",` +
      `"metadata":{"x":${nested(MAX_JSON_DEPTH)}}}}`;
    assert.deepEqual(await post(server.url, metadata, token), {
      status: 400,
      code: "VALIDATION_ERROR",
    });
    // 10 000 tasks that use up the value bound exactly are accepted; one value more is 413
    const task = (zeros: number) =>
      `{"payload":[${Array(zeros).fill(0).join(",")}],"resources":{"memory":1,"cpu":0.1}}`;
    const bulk = (first: number, zeros: number) =>
      `{"action":"createJob","data":{"product_id":"p","sending_group_id":"g",` +
      `"tasks":[${[task(first), ...Array(9_999).fill(task(zeros))].join(",")}]}}`;
    const zeros = Math.floor(MAX_BODY_VALUES / 10_000) - 10;
    const first = zeros + MAX_BODY_VALUES - valuesIn(JSON.parse(bulk(zeros, zeros)));
    assert.equal(valuesIn(JSON.parse(bulk(first, zeros))), MAX_BODY_VALUES);
    const accepted = await post(server.url, bulk(first, zeros), token);
    assert.equal(accepted.status, 201, JSON.stringify(accepted));
    assert.deepEqual(await post(server.url, bulk(first + 1, zeros), token), {
      status: 413,
      code: "PAYLOAD_TOO_LARGE",
    });
  });
});
