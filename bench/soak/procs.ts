/** The procedures of the soak run (`npm run soak`), shared by its server and client processes. */
import { z } from "zod";
import { createProc } from "../../src/index.ts";

/** Calls that should answer get this long; only the TIMEOUT kind uses a tiny one. */
export const CALL_TIMEOUT = 15_000;
/** Bytes of the large payload. */
export const BLOB_BYTES = 8192;
/** How long the slow handler takes unless its call is given up first. */
export const SLOW_MS = 300;
/** The topics broadcasts go to and clients churn through. */
export const TOPICS = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"];

const Small = z.object({ n: z.number(), text: z.string() });
export const ECHO = createProc({ name: "soak_echo", takes: Small, returns: Small, timeout: CALL_TIMEOUT });
export const BLOB = createProc({
  name: "soak_blob",
  takes: z.instanceof(Uint8Array),
  returns: z.instanceof(Uint8Array),
  timeout: CALL_TIMEOUT,
});
/** The server's view: a strict input. */
export const STRICT = createProc({
  name: "soak_strict",
  takes: z.object({ n: z.number().int() }),
  returns: z.number(),
  timeout: CALL_TIMEOUT,
});
/** The client's view of the same procedure: any input goes out, so the server's validation is what refuses it. */
export const STRICT_LOOSE = createProc({ name: "soak_strict", takes: z.unknown(), returns: z.number(), timeout: CALL_TIMEOUT });
export const FAIL = createProc({ name: "soak_fail", takes: z.number(), returns: z.number(), timeout: CALL_TIMEOUT });
export const SLOW = createProc({ name: "soak_slow", takes: z.number(), returns: z.number(), timeout: CALL_TIMEOUT });
/** The server calls the caller's DOUBLE with `n` and answers `2n + 1`. */
export const CALL_ME = createProc({ name: "soak_call_me", takes: z.number(), returns: z.number(), timeout: CALL_TIMEOUT });
export const TOPIC = createProc({ name: "soak_topic", takes: z.object({ topic: z.string(), on: z.boolean() }), returns: z.boolean() });
/** The server broadcasts a TICK to the topic from the caller's connection (so the caller is left out); answers its seq. */
export const SHOUT = createProc({ name: "soak_shout", takes: z.string(), returns: z.number(), timeout: CALL_TIMEOUT });
/** Implemented by clients. */
export const DOUBLE = createProc({ name: "soak_double", takes: z.number(), returns: z.number(), timeout: CALL_TIMEOUT });
/** Broadcast by the server; `seq` grows by one per broadcast, whatever the topics. */
export const TICK = createProc({ name: "soak_tick", takes: z.object({ seq: z.number(), pad: z.string() }) });
