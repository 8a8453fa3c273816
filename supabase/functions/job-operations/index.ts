// Supabase Edge Function entrypoint (also served locally by scripts/serve.ts).
import { handler } from "./handler.ts";

Deno.serve(handler);
