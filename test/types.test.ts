/**
 * Type-level tests: `tsc --noEmit` checks this file, and each `@ts-expect-error` line must fail to compile
 * (an unneeded one is itself an error). The functions are never called; the runtime tests keep `bun test`
 * from reporting an empty file, and check at run time what the types refuse where a cast could get past them.
 */
import { expect, test } from "bun:test";
import { z } from "zod";
import {
  type ChatterClient,
  type ChatterServer,
  type ChatterStream,
  createProc,
  createServer,
  type ServerConnection,
  type ServerHandler,
} from "../src/index.ts";
import type { HandlerReturn, MaybePromise } from "../src/proc.ts";

const ADD = createProc({ name: "add", takes: z.object({ a: z.number(), b: z.number() }), returns: z.number() });
const NOTE = createProc({ name: "note", takes: z.string() });
const NOTHING = createProc({ name: "nothing" });
const TICKS = createProc({ name: "ticks", takes: z.number(), yields: z.number() });
/** A stream whose handler yields strings and whose readers get their lengths: `yields` has a transform. */
const LENGTHS = createProc({ name: "lengths", yields: z.string().transform((text) => text.length) });

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

/** A stream is read with `stream`, a call made with `call`, on every end: the other spelling does not compile. */
export function streamsAndCallsDoNotMix(client: ChatterClient, connection: ServerConnection<unknown>, server: ChatterServer<unknown>) {
  const items: ChatterStream<number> = client.stream(TICKS, 3, { window: 8, timeout: 1000 });
  const sum: Promise<number> = client.call(ADD, { a: 1, b: 2 });
  // @ts-expect-error a stream is read with stream(), not call()
  void client.call(TICKS, 3);
  // @ts-expect-error a procedure with returns is called, not read as a stream
  client.stream(ADD, { a: 1, b: 2 });
  // @ts-expect-error nor is one that returns nothing
  client.stream(NOTE, "hi");
  // @ts-expect-error a stream's input is checked like a call's
  client.stream(TICKS, "3");
  const fromClient: ChatterStream<number> = connection.stream(TICKS, 3);
  // @ts-expect-error the server reads a client's stream with connection.stream(), not call()
  void connection.call(TICKS, 3);
  // @ts-expect-error and calls a client's procedure with call(), not stream()
  connection.stream(ADD, { a: 1, b: 2 });
  const answer: Promise<number> = server.callClient("some-client", ADD, { a: 1, b: 2 });
  // @ts-expect-error callClient makes calls; a stream is read with connection.stream()
  void server.callClient("some-client", TICKS, 3);
  return [items, sum, fromClient, answer];
}

/** A stream's handler yields the `yields` schema's input type, on either end; a call's handler cannot yield. */
export function handlersYieldTheirItems(server: ChatterServer<unknown>, client: ChatterClient) {
  const numbers = async function* (n: number) {
    for (let i = 0; i < n; i++) yield i;
  };
  const words = async function* () {
    yield "one";
  };
  const lengths = async function* () {
    yield 3;
  };
  server.on(TICKS, numbers);
  server.on(TICKS, async (n) => numbers(n)); // a promise of an iterable
  client.on(TICKS, numbers);
  // @ts-expect-error a handler of TICKS yields numbers
  server.on(TICKS, words);
  // @ts-expect-error on the client too
  client.on(TICKS, words);
  // The handler yields what `yields` takes (strings for LENGTHS), not what it gives the reader.
  server.on(LENGTHS, words);
  // @ts-expect-error a number is what LENGTHS' readers get, not what its handler yields
  server.on(LENGTHS, lengths);
  // @ts-expect-error a stream's handler returns an iterable, not an item
  server.on(TICKS, () => 5);
  // @ts-expect-error a call's handler returns its result; it cannot yield
  server.on(ADD, numbers);
}

/** The loop gets each item as the `yields` schema's output type. */
export async function itemsHaveTheOutputType(client: ChatterClient, connection: ServerConnection<unknown>) {
  const seen: number[] = [];
  for await (const length of client.stream(LENGTHS)) {
    seen.push(length);
    // @ts-expect-error the loop gets LENGTHS' output, a number, not the string the handler yielded
    const text: string = length;
    void text;
  }
  for await (const n of connection.stream(TICKS, 2)) seen.push(n);
  const first: IteratorResult<number, undefined> = await client.stream(TICKS, 1).next();
  return [seen, first];
}

/** A procedure has `returns` or `yields`, not both. */
export function returnsOrYields() {
  // @ts-expect-error returns and yields together
  return createProc({ name: "both", takes: z.number(), returns: z.number(), yields: z.number() });
}

test("the type-level checks in this file compile (tsc checks them)", () => {
  expect(typeof handlersReturnTheirResult).toBe("function");
});

test("createProc refuses returns and yields together at run time too, past a cast", () => {
  const both = { name: "both", returns: z.number(), yields: z.number() } as Parameters<typeof createProc>[0];
  expect(() => createProc(both)).toThrow('createProc "both": a procedure has `returns` or `yields`, not both');
  expect(createProc({ name: "stream", yields: z.number() }).returns).toBeNull();
});
