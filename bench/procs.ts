/** The procedures the benchmarks call, shared by the Chatter bench server and clients. */
import { z } from "zod";
import { createProc } from "../src/index.ts";

/** About 40 bytes as JSON: the small payload every system sends. */
export const PAYLOAD = { id: 12345, name: "update_count", value: 7 };
const Payload = z.object({ id: z.number(), name: z.string(), value: z.number() });
// The default 30 s timeout, as most procedures have: the deadline clock is part of the cost measured.
export const ECHO = createProc({ name: "echo", takes: Payload, returns: Payload });
export const CALL_ME_BACK = createProc({
  name: "call_me_back",
  takes: z.object({ n: z.number(), window: z.number() }),
  returns: z.number(),
  timeout: 0,
});
/** k broadcasts of a `size`-byte blob to "fanout": all in one tick (a burst), or with `spread`, one a tick. */
export const FANOUT = createProc({ name: "fanout", takes: z.object({ k: z.number(), size: z.number(), spread: z.boolean().optional() }) });
export const NOTE = createProc({ name: "note", takes: z.instanceof(Uint8Array) });
/** The stream row's procedure: n items like an LLM's tokens, read at the default credit. */
export const TOKENS = createProc({
  name: "tokens",
  takes: z.object({ n: z.number() }),
  yields: z.object({ i: z.number(), text: z.string() }),
});
