// deno task smoke [URL] — one round trip through served functions (default: `deno task dev`'s
// http://127.0.0.1:54321), with supabase-js and local tokens: a user creates a job of two tasks
// (createJob), the service claims them (claimTasks) and reports them done (completeTasks), and the
// job reads back `completed`. Exits non-zero, naming the step, when one fails.
import { createClient, FunctionsHttpError } from "@supabase/supabase-js";
import { signToken } from "./lib/tokens.ts";

const base = Deno.args[0] ?? `http://127.0.0.1:${Deno.env.get("PORT") ?? 54321}`;
const USER = "00000000-0000-4000-8000-000000000001";

function client(bearer: string) {
  return createClient(base, bearer, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
}

// deno-lint-ignore no-explicit-any
type Json = any;

async function call(
  as: ReturnType<typeof client>,
  fn: "job-operations" | "task-operations",
  action: string,
  data: unknown,
): Promise<Json> {
  const { data: body, error } = await as.functions.invoke(fn, { body: { action, data } });
  if (error) {
    const detail = error instanceof FunctionsHttpError
      ? `${error.context.status} ${await error.context.text()}`
      : String(error);
    throw new Error(`${action} failed: ${detail}`);
  }
  return body.data;
}

const user = client(await signToken({ role: "authenticated", sub: USER }));
const service = client(await signToken({ role: "service_role" }));
const worker_id = `smoke-${crypto.randomUUID()}`;

const job = await call(user, "job-operations", "createJob", {
  product_id: "smoke",
  sending_group_id: "smoke",
  tasks: [{ payload: { to: "a@example.com" } }, { payload: { to: "b@example.com" } }],
});
console.log(`createJob: job ${job.id} ${job.status}`);

const { tasks } = await call(service, "task-operations", "claimTasks", {
  worker_id,
  limit: 10,
  job_id: job.id,
});
console.log(`claimTasks: ${tasks.length} tasks`);
if (tasks.length !== 2) throw new Error(`claimTasks returned ${tasks.length} tasks, not 2`);

const done = await call(service, "task-operations", "completeTasks", {
  worker_id,
  tasks: tasks.map((task: Json) => ({ task_id: task.task_id, result: { sent: true } })),
});
console.log(`completeTasks: ${done.tasks.map((task: Json) => task.status).join(", ")}`);

const after = await call(user, "job-operations", "getJob", { job_id: job.id });
console.log(`getJob: ${after.status}`);
if (after.status !== "completed") throw new Error(`the job is ${after.status}, not completed`);
console.log("round trip ok");
