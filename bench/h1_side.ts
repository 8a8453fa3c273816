// One side of H1, as a child process of its own, so that neither side carries the benchmark's heap
// and timers: calls createJob either in-process (the job-operations handler with Request objects,
// no HTTP) or, with --http=URL, through the function server at URL. Reads "REQUESTS CONCURRENCY"
// lines on stdin and answers each with one line: RESULT and JSON (a LoadSample, or { error });
// exits when stdin closes. The prefix sets answers apart from the handler's own log lines (errors
// only, LOG_LEVEL error), also stdout.
import { handler } from "../supabase/functions/job-operations/handler.ts";
import { closeDb } from "../supabase/functions/_shared/db.ts";
import {
  type Caller,
  createJobLoad,
  functionEnv,
  httpCaller,
  request,
  RESULT,
} from "./lib/http.ts";

const url = Deno.args.find((a) => a.startsWith("--http="))?.slice(7);
for (const [name, value] of Object.entries(functionEnv())) Deno.env.set(name, value);
const call: Caller = url ? httpCaller(url) : async (fn, token, action, data) => {
  const res = await handler(request("http://in-process", fn, token, action, data));
  return { status: res.status, body: await res.json() };
};

let buffered = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffered += chunk;
  let newline;
  while ((newline = buffered.indexOf("\n")) >= 0) {
    const [requests, concurrency] = buffered.slice(0, newline).trim().split(" ").map(Number);
    buffered = buffered.slice(newline + 1);
    try {
      console.log(`${RESULT}${JSON.stringify(await createJobLoad(call, requests, concurrency))}`);
    } catch (error) {
      console.log(`${RESULT}${JSON.stringify({ error: String(error) })}`);
    }
  }
}
await closeDb();
