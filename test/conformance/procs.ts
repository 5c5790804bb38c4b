/** The procedures the conformance fixture server implements, shared with every client runtime. */

import { z } from "zod";
import { createProc } from "../../src/index.ts";

export const ADD = createProc({ name: "add", takes: z.object({ a: z.number(), b: z.number() }), returns: z.number() });
export const FAIL = createProc({ name: "fail", takes: z.string() });
export const MISSING = createProc({ name: "missing" });
export const ECHO = createProc({ name: "echo", takes: z.unknown(), returns: z.unknown() });
export const WORK = createProc({ name: "work", takes: z.object({ key: z.string(), ms: z.number() }), returns: z.string() });
export const RUNS = createProc({ name: "runs", takes: z.string(), returns: z.number() });
export const WHOAMI = createProc({
  name: "whoami",
  returns: z.object({ clientId: z.string(), sessionId: z.string(), tag: z.string().nullable() }),
});
export const SUBSCRIBE = createProc({ name: "subscribe", takes: z.string() });
export const BROADCAST = createProc({
  name: "broadcast",
  takes: z.object({
    topics: z.array(z.string()),
    text: z.string(),
    fromSelf: z.boolean().optional(),
    excludeTags: z.array(z.string()).optional(),
    delay: z.number().optional(),
  }),
});
export const NOTE = createProc({ name: "note", takes: z.string() });
export const CALL_ME = createProc({ name: "call_me", takes: z.unknown(), returns: z.unknown() });
export const COUNT_TAG = createProc({ name: "count_tag", takes: z.string(), returns: z.object({ found: z.boolean(), count: z.number() }) });
export const HOOKS = createProc({ name: "hooks", takes: z.string(), returns: z.array(z.string()) });
export const DROP = createProc({ name: "drop" });
/** A stream of the numbers 0 to n - 1. */
export const TICKS = createProc({ name: "ticks", takes: z.number(), yields: z.number() });
/** A stream of numbers for ever; its generator's `finally` records the key, which FINISHED reports. */
export const ENDLESS = createProc({ name: "endless", takes: z.string(), yields: z.number() });
/** Whether the generator of ENDLESS with this key has run its `finally`. */
export const FINISHED = createProc({ name: "finished", takes: z.string(), returns: z.boolean() });
/** A stream that yields 1, then throws FORBIDDEN with the given message. */
export const STREAM_FAIL = createProc({ name: "stream_fail", takes: z.string(), yields: z.number() });
/** A stream the client implements: the words of a text, upper-cased. */
export const UPPER = createProc({ name: "upper", takes: z.string(), yields: z.string() });
/** The server reads UPPER from the calling client, and returns what it read. */
export const READ_ME = createProc({ name: "read_me", takes: z.string(), returns: z.array(z.string()) });
