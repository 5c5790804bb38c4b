/**
 * Streams over real sockets, both ways: items in order and checked by
 * `yields`, credit that holds a fast generator back, cancellation that runs
 * the generator's `finally`, errors, timeouts per item, and a stream that
 * carries on across a dropped socket with no item lost or doubled.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { z } from "zod";
import { ChatterError, createProc } from "../src/index.ts";
import { hold, startServer, type TestServer, waitFor } from "./helpers.ts";
import { dropSocket } from "./internals.ts";

const COUNT = createProc({ name: "count", takes: z.number(), yields: z.number() });
const ENDLESS = createProc({ name: "endless", yields: z.number() });
const WORDS = createProc({ name: "words", takes: z.string(), yields: z.string() });
const BAD = createProc({ name: "bad", yields: z.number() });
const ADD = createProc({ name: "add", takes: z.object({ a: z.number(), b: z.number() }), returns: z.number() });

let srv: TestServer<unknown>;
afterEach(() => srv?.stop());

/** @returns every item of a stream */
async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe("server to client", () => {
  test("items arrive in order, parsed by yields, and the loop ends", async () => {
    srv = startServer();
    srv.chatter.on(COUNT, async function* (n) {
      for (let i = 0; i < n; i++) yield i;
    });
    const client = await srv.client();
    expect(await collect(client.stream(COUNT, 1000))).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(await collect(client.stream(COUNT, 0))).toEqual([]);
  });

  test("a sync generator and a handler returning a promise of an iterable work too", async () => {
    srv = startServer();
    srv.chatter.on(WORDS, (text) => text.split(" ")[Symbol.iterator]() as never);
    srv.chatter.on(COUNT, async (n) =>
      (async function* () {
        for (let i = 0; i < n; i++) yield i * 2;
      })(),
    );
    const client = await srv.client();
    expect(await collect(client.stream(WORDS, "a b c"))).toEqual(["a", "b", "c"]);
    expect(await collect(client.stream(COUNT, 3))).toEqual([0, 2, 4]);
  });

  test("the generator is not pulled past the reader's credit", async () => {
    srv = startServer();
    let pulled = 0;
    srv.chatter.on(ENDLESS, async function* () {
      for (;;) yield pulled++;
    });
    const client = await srv.client();
    const items = client.stream(ENDLESS, null, { window: 8 });
    expect((await items.next()).value).toBe(0);
    await waitFor(() => pulled >= 8, 2000, "the first window");
    // Give the generator every chance to run ahead: a round trip on the same socket.
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    expect(await client.call(ADD, { a: 1, b: 1 })).toBe(2);
    expect(pulled).toBeLessThanOrEqual(8 + 1);
    await items.return();
  });

  test("big items: the writer holds at most about 1 MiB for a reader that does not take them", async () => {
    srv = startServer();
    const BLOBS = createProc({ name: "blobs", yields: z.instanceof(Uint8Array) });
    let pulled = 0;
    srv.chatter.on(BLOBS, async function* () {
      for (;;) {
        pulled++;
        yield new Uint8Array(300 * 1024);
      }
    });
    const client = await srv.client();
    const items = client.stream(BLOBS, null, { window: 64 });
    await items.next();
    await waitFor(() => pulled >= 4, 2000, "the writer to fill its bytes");
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    expect(await client.call(ADD, { a: 1, b: 1 })).toBe(2);
    // 1 MiB of 300 KiB items is 4 held (the 5th waits), however much credit the reader gave; 1 taken is acknowledged.
    expect(pulled).toBeLessThanOrEqual(6);
    // Once the reader has taken what it holds it acknowledges it, and the writer goes on.
    for (let i = 0; i < 6; i++) expect((await items.next()).done).toBe(false);
    expect(pulled).toBeGreaterThanOrEqual(7);
    await items.return();
  });

  test("leaving the loop stops the generator: its finally runs and ctx.signal aborts", async () => {
    srv = startServer();
    let finished = false;
    let aborted = false;
    srv.chatter.on(ENDLESS, async function* (_input, _conn, ctx) {
      ctx.signal.addEventListener("abort", () => {
        aborted = true;
      });
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        finished = true;
      }
    });
    const client = await srv.client();
    for await (const n of client.stream(ENDLESS)) if (n === 10) break;
    await waitFor(() => finished && aborted, 2000, "the generator's finally and abort");
  });

  test("aborting the signal ends the loop at once with ABORTED and stops the generator", async () => {
    srv = startServer();
    let finished = false;
    const gate = hold();
    srv.chatter.on(ENDLESS, async function* () {
      try {
        yield 1;
        await gate.wait();
        yield 2;
      } finally {
        finished = true;
      }
    });
    const client = await srv.client();
    const controller = new AbortController();
    const items = client.stream(ENDLESS, null, { signal: controller.signal });
    expect((await items.next()).value).toBe(1);
    const next = items.next();
    controller.abort();
    const err = await next.catch((e) => e);
    expect(err).toBeInstanceOf(ChatterError);
    expect(err.code).toBe("ABORTED");
    gate.release();
    await waitFor(() => finished, 2000, "the generator's finally");
  });

  test("aborting the signal ends the loop at once, even with items already here", async () => {
    srv = startServer();
    srv.chatter.on(COUNT, async function* (n) {
      for (let i = 0; i < n; i++) yield i;
    });
    const client = await srv.client();
    const controller = new AbortController();
    const items = client.stream(COUNT, 1000, { signal: controller.signal, window: 64 });
    expect((await items.next()).value).toBe(0);
    // Let the rest of the window arrive: a round trip on the same socket comes after it.
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    expect(await client.call(ADD, { a: 1, b: 1 })).toBe(2);
    controller.abort();
    const err = await items.next().catch((e) => e);
    expect(err.code).toBe("ABORTED");
  });

  test("a thrown error ends the loop with its code; an item that fails yields ends it with VALIDATION", async () => {
    srv = startServer();
    srv.chatter.on(COUNT, async function* (n) {
      yield 1;
      throw new ChatterError("FORBIDDEN", `not ${n}`);
    });
    srv.chatter.on(BAD, async function* () {
      yield 1;
      yield "two" as unknown as number;
    });
    const client = await srv.client();
    const got: number[] = [];
    const err = await (async () => {
      for await (const n of client.stream(COUNT, 5)) got.push(n);
    })().catch((e) => e);
    expect(got).toEqual([1]);
    expect(err.code).toBe("FORBIDDEN");
    const bad: number[] = [];
    const err2 = await (async () => {
      for await (const n of client.stream(BAD)) bad.push(n);
    })().catch((e) => e);
    expect(bad).toEqual([1]);
    expect(err2.code).toBe("VALIDATION");
  });

  test("timeout bounds the wait for each item, not the whole stream", async () => {
    srv = startServer();
    const gate = hold();
    srv.chatter.on(COUNT, async function* (n) {
      for (let i = 0; i < n; i++) {
        yield i;
        if (i === 2) await gate.wait();
      }
    });
    const client = await srv.client();
    const got: number[] = [];
    const err = await (async () => {
      for await (const n of client.stream(COUNT, 5, { timeout: 100 })) got.push(n);
    })().catch((e) => e);
    expect(got).toEqual([0, 1, 2]);
    expect(err.code).toBe("TIMEOUT");
    gate.release();
  });

  test("streams in flight count against maxConcurrentCalls, and free their place when they end", async () => {
    srv = startServer({ maxConcurrentCalls: 2 });
    srv.chatter.on(ENDLESS, async function* () {
      for (let i = 0; ; i++) yield i;
    });
    const client = await srv.client();
    const open = [client.stream(ENDLESS), client.stream(ENDLESS)];
    for (const s of open) expect((await s.next()).value).toBe(0);
    const third = await client
      .stream(ENDLESS)
      .next()
      .catch((e) => e);
    expect(third.code).toBe("LIMIT");
    await open[0]?.return();
    await waitFor(
      async () =>
        (
          await client
            .stream(ENDLESS)
            .next()
            .catch((e) => e)
        ).value === 0,
      2000,
      "room for a stream again",
    );
    await open[1]?.return();
  });

  test("call on a stream and stream on a call are refused with NOT_IMPLEMENTED", async () => {
    srv = startServer();
    srv.chatter.on(COUNT, async function* () {
      yield 1;
    });
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    const client = await srv.client();
    // Past the types, which refuse both (test/types.test.ts), the other end refuses them too.
    const callAnything = client.call.bind(client) as (proc: unknown, input: unknown) => Promise<unknown>;
    const asCall = (await callAnything(COUNT, 1).catch((e) => e)) as ChatterError;
    expect(asCall.code).toBe("NOT_IMPLEMENTED");
    const streamAnything = client.stream.bind(client) as (proc: unknown, input: unknown) => AsyncIterable<unknown>;
    const asStream = await collect(streamAnything(ADD, { a: 1, b: 2 })).catch((e) => e);
    expect(asStream.code).toBe("NOT_IMPLEMENTED");
  });
});

describe("client to server", () => {
  test("the server reads a stream from a client", async () => {
    srv = startServer();
    const client = await srv.client();
    client.on(WORDS, async function* (text) {
      for (const w of text.split(" ")) yield w.toUpperCase();
    });
    const conn = srv.chatter.find(() => true);
    if (!conn) throw new Error("no connection");
    expect(await collect(conn.stream(WORDS, "hello stream world"))).toEqual(["HELLO", "STREAM", "WORLD"]);
  });
});

describe("across a dropped socket", () => {
  test("the stream goes on from the first item the reader lacks; the generator runs once", async () => {
    srv = startServer();
    let runs = 0;
    srv.chatter.on(COUNT, async function* (n) {
      runs++;
      for (let i = 0; i < n; i++) yield i;
    });
    const client = await srv.client();
    const conn = srv.chatter.find(() => true);
    if (!conn) throw new Error("no connection");
    const got: number[] = [];
    for await (const n of client.stream(COUNT, 2000, { window: 16 })) {
      got.push(n);
      if (n === 100 || n === 1000) dropSocket(conn, 4010, "test drop");
    }
    expect(got).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    expect(runs).toBe(1);
  });

  test("an error made while the reader was away still comes after every item it lacks", async () => {
    srv = startServer();
    const gate = hold();
    srv.chatter.on(COUNT, async function* (n) {
      yield 0;
      await gate.wait();
      for (let i = 1; i < n; i++) yield i;
      throw new ChatterError("FORBIDDEN", "done with errors");
    });
    const client = await srv.client();
    const conn = srv.chatter.find(() => true);
    if (!conn) throw new Error("no connection");
    const items = client.stream(COUNT, 10);
    const got = [(await items.next()).value];
    dropSocket(conn, 4010, "test drop");
    gate.release();
    const err = await (async () => {
      for await (const n of items) got.push(n);
    })().catch((e) => e);
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(err.code).toBe("FORBIDDEN");
  });
});
