/**
 * The procedures only the cluster bench needs: one that says which instance ran it (so the bench can tell a
 * session that moved from one that is relayed), and a call that stays in flight until released (while it runs,
 * its session cannot move, so a reconnect to another instance is relayed to the home).
 */
import { z } from "zod";
import { createProc } from "../../src/index.ts";

/** The port of the instance that ran the call (the session's home), and that instance's cluster counters. */
export const WHERE = createProc({
  name: "where",
  returns: z.object({ port: z.number(), moved: z.number(), relayed: z.number(), takenOver: z.number() }),
});
/** Runs until `RELEASE` is called with the same key, or `ms` passes; returns whether it was released. */
export const HOLD = createProc({
  name: "hold",
  takes: z.object({ key: z.string(), ms: z.number() }),
  returns: z.boolean(),
  timeout: 0,
});
/** Ends the `HOLD` of that key; returns whether one was running. */
export const RELEASE = createProc({ name: "release", takes: z.string(), returns: z.boolean() });
