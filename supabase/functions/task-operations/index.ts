// Supabase Edge Function entrypoint (also served locally by scripts/serve.ts).
import { handler } from "./handler.ts";
import { guardProcess } from "../_shared/process_guard.ts";

guardProcess();
Deno.serve(handler);
