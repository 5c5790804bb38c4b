/** Procedures of the cluster test instances. */
import { z } from "zod";
import { createProc } from "../../src/index.ts";

export const SUBSCRIBE = createProc({ name: "subscribe", takes: z.string() });
export const BROADCAST = createProc({ name: "broadcast", takes: z.object({ topic: z.string(), text: z.string(), fromSelf: z.boolean() }) });
export const NOTE = createProc({ name: "note", takes: z.string() });
export const ECHO = createProc({ name: "echo", takes: z.string(), returns: z.string() });
export const CALL_CLIENT = createProc({
  name: "call_client",
  takes: z.object({ clientId: z.string(), text: z.string() }),
  returns: z.string(),
});
export const PRESENCE = createProc({ name: "presence", takes: z.string(), returns: z.number() });
export const STATS = createProc({
  name: "stats",
  returns: z.object({ published: z.number(), received: z.number(), lost: z.number(), queued: z.number(), resets: z.number() }),
});
/** Who the server thinks the caller is, and which instance (process) its session lives on. */
export const WHO_AM_I = createProc({
  name: "who_am_i",
  returns: z.object({ clientId: z.string(), sessionId: z.string(), data: z.object({ name: z.string() }), instance: z.string() }),
});
/** Answers after `ms`, with the instance (process) that ran it. */
export const SLOW = createProc({ name: "slow", takes: z.number(), returns: z.string(), timeout: 0 });
/** server.members(topic), as client ids and names. */
export const MEMBERS = createProc({
  name: "members",
  takes: z.string(),
  returns: z.array(z.object({ clientId: z.string(), name: z.string() })),
});
/** The instance calls ECHO on the caller, through its connection, after `ms`; answers with what the client said. */
export const ECHO_LATER = createProc({ name: "echo_later", takes: z.number(), returns: z.string(), timeout: 0 });
/** Implemented by a test client, which holds the call until it is cancelled or answered by hand. */
export const HOLD = createProc({ name: "hold", takes: z.string(), returns: z.string() });
/** Calls HOLD on a client with a timeout, abortable with ABORT_HELD under `key`. */
export const CALL_HELD = createProc({
  name: "call_held",
  takes: z.object({ clientId: z.string(), key: z.string(), timeout: z.number() }),
  returns: z.string(),
});
export const ABORT_HELD = createProc({ name: "abort_held", takes: z.string() });
/** The instance closes itself (server.close()), as in a rolling deploy. */
export const SHUT_DOWN = createProc({ name: "shut_down" });
