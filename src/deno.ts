/** `chatter/deno`: serve Chatter from a `Deno.serve` handler. */
export { type DenoServeInfo, upgrade } from "./server/deno.ts";
