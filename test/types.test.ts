/**
 * Type-level tests: `tsc --noEmit` checks this file, and each `@ts-expect-error` line must fail to compile
 * (an unneeded one is itself an error). The functions are never called; the one runtime test only keeps
 * `bun test` from reporting an empty file.
 */
import { expect, test } from "bun:test";
import { z } from "zod";
import { createProc, createServer, type ServerHandler } from "../src/index.ts";
import type { HandlerReturn, MaybePromise } from "../src/proc.ts";

const ADD = createProc({ name: "add", takes: z.object({ a: z.number(), b: z.number() }), returns: z.number() });
const NOTE = createProc({ name: "note", takes: z.string() });
const NOTHING = createProc({ name: "nothing" });

/** A handler must return the procedure's declared result, or a promise of it (the seed's `MaybePromise<O>`). */
export function handlersReturnTheirResult(server: ReturnType<typeof createServer>) {
  server.on(ADD, ({ a, b }) => a + b);
  server.on(ADD, async ({ a, b }) => a + b);
  // @ts-expect-error a handler of a procedure with `returns` must return its result
  server.on(ADD, () => {});
  // @ts-expect-error nor a promise of nothing
  server.on(ADD, async () => {});
  // @ts-expect-error nor a result of the wrong type
  server.on(ADD, () => "five");
  // @ts-expect-error nor a result that may be missing
  server.on(ADD, ({ a }) => (a > 0 ? a : undefined));
  // Without `returns` a handler may return nothing, or anything (the result is sent as null).
  server.on(NOTE, (text) => void text);
  server.on(NOTE, async () => {});
  server.on(NOTHING, () => 42);
}

/** The shared types, as the client's handler type uses them too. */
export function sharedHandlerTypes() {
  const result: HandlerReturn<typeof ADD> = 5;
  const later: HandlerReturn<typeof ADD> = Promise.resolve(5);
  // @ts-expect-error undefined is not the result of ADD
  const missing: HandlerReturn<typeof ADD> = undefined;
  const anything: HandlerReturn<typeof NOTHING> = undefined;
  const maybe: MaybePromise<string> = Promise.resolve("x");
  // @ts-expect-error a ServerHandler of a number-returning procedure must return a number
  const silent: ServerHandler<unknown, { a: number; b: number }, number> = () => {};
  return [result, later, missing, anything, maybe, silent];
}

/** Broadcasts return a promise, so `.catch` and `await` work as with the seed; `in` scopes them to topics. */
export async function broadcastsArePromises(server: ReturnType<typeof createServer>) {
  server.broadcast("room", NOTE, "hi").catch(() => {});
  const done: Promise<void> = server.broadcast("room", NOTE, "hi", { exclude: [] });
  await server.in("room").broadcast(NOTE, "hi");
  await server.in(["a", "b"]).broadcast(NOTE, "hi", { exclude: [] });
  // @ts-expect-error the scope's broadcast checks the input type too
  await server.in("room").broadcast(NOTE, 5);
  await server.in("room").broadcast(NOTHING);
  server.on(NOTE, (text, connection) => connection.broadcast("room", NOTE, text).catch(() => {}));
  return done;
}

/** The seed's spelling of the limit options compiles beside Chatter's. */
export function seedOptionSpellings() {
  createServer({ rateLimit: { maxConnectionsPerMinute: 60, trustProxy: true }, maxMessageBytes: 64 * 1024 });
  createServer({ rateLimit: { max: 200, windowMs: 10_000 }, trustProxy: 1 });
  // @ts-expect-error maxConnectionsPerMinute is a number
  createServer({ rateLimit: { maxConnectionsPerMinute: "60" } });
}

test("the type-level checks in this file compile (tsc checks them)", () => {
  expect(typeof handlersReturnTheirResult).toBe("function");
});
