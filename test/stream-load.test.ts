/**
 * The stream code loads on first use (src/engine/stream-load.ts). Here it is held back, or made to fail, as a
 * slow or failed chunk download would, over an in-memory pair of peers: nothing is sent before the reader's
 * code is in, frames that come for a stream before the writers' code is in are not lost, and a failed load
 * ends the stream with an error that says so.
 */
import { afterEach, expect, test } from "bun:test";
import { z } from "zod";
import { Peer } from "../src/engine/peer.ts";
import { streamCode } from "../src/engine/stream-load.ts";
import type { HandlerEntry } from "../src/engine/types.ts";
import { ChatterError, createProc } from "../src/index.ts";
import { decodeFrames, FrameType } from "../src/wire/frames.ts";
import { waitFor } from "./helpers.ts";

const COUNT = createProc({ name: "count", takes: z.number(), yields: z.number() });
const saved = { reader: { ...streamCode.reader }, writer: { ...streamCode.writer } };
afterEach(() => {
  Object.assign(streamCode.reader, saved.reader);
  Object.assign(streamCode.writer, saved.writer);
});

/** Holds one side's code back until `release()` (or `fail()`), whether it was loaded already or not. */
async function holdBack(side: "reader" | "writer") {
  const module = await (side === "reader" ? import("../src/engine/stream-calls.ts") : import("../src/engine/stream-writers.ts"));
  let release = () => {};
  let fail = (_err: Error) => {};
  const gate = new Promise((resolve, reject) => {
    release = () => resolve(module);
    fail = reject;
  });
  Object.assign(streamCode[side], { module: null, loading: null, import: () => gate });
  return { release, fail };
}

/** A reads streams from B over a link that delivers frames on a microtask; `cut()` and `resume()` as a dropped socket. */
function pair() {
  const handlers = new Map<string, HandlerEntry>();
  const a = new Peer({ handlers: new Map(), side: "client" }, "A");
  const b = new Peer({ handlers, side: "client" }, "B");
  const sent: number[] = [];
  let epoch = 0;
  const link = (to: Peer, log: boolean) => {
    const mine = epoch;
    return {
      send(bytes: Uint8Array) {
        for (const frame of decodeFrames(bytes)) {
          if (log) sent.push(frame[0]);
          queueMicrotask(() => mine === epoch && to.receive(frame));
        }
      },
    };
  };
  const connect = (resumed = false) => {
    a.attach(link(b, true), resumed, b.settledBelow);
    b.attach(link(a, false), resumed, a.settledBelow);
  };
  connect();
  let started = 0;
  let stopped = 0;
  handlers.set(COUNT.name, {
    proc: COUNT,
    handler: async function* (n: unknown) {
      started++;
      try {
        for (let i = 0; i < (n as number); i++) yield i;
      } finally {
        stopped++;
      }
    },
  } as HandlerEntry);
  const cut = () => {
    epoch++;
    a.detach();
    b.detach();
  };
  return { a, b, sent, connect, cut, runs: () => ({ started, stopped }) };
}

async function readAll(stream: AsyncIterable<unknown>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const item of stream) out.push(item);
  return out;
}

test("a stream opened while the reader's code loads sends its CALL once the code is in, and reads every item", async () => {
  const gate = await holdBack("reader");
  const { a, sent } = pair();
  const items = readAll(a.stream(COUNT, 5));
  await Bun.sleep(5);
  expect(sent).toEqual([]);
  gate.release();
  expect(await items).toEqual([0, 1, 2, 3, 4]);
  expect(sent[0]).toBe(FrameType.Call);
});

test("a stream left before the reader's code is in sends nothing, and its loop ends", async () => {
  const gate = await holdBack("reader");
  const { a, sent } = pair();
  const stream = a.stream(COUNT, 5);
  const first = stream.next();
  await stream.return();
  gate.release();
  expect(await first).toEqual({ done: true, value: undefined });
  expect(await stream.next()).toEqual({ done: true, value: undefined });
  await Bun.sleep(5);
  expect(sent).toEqual([]);
  expect(a.pendingCount).toBe(0);
});

test("a window that is not a whole number above 0 throws at once, before any code loads", async () => {
  await holdBack("reader");
  const { a } = pair();
  expect(() => a.stream(COUNT, 1, { window: 0 })).toThrow('[chatter] stream "count": window must be a whole number above 0');
});

test("reader code that fails to load fails the loop with UNAVAILABLE, naming the stream and why; the next stream loads it again", async () => {
  const gate = await holdBack("reader");
  const { a } = pair();
  const stream = a.stream(COUNT, 5);
  const first = stream.next();
  gate.fail(new Error("chunk stream-calls.js: 404"));
  const err = (await first.catch((e) => e)) as ChatterError;
  expect(err).toBeInstanceOf(ChatterError);
  expect([err.code, err.message]).toEqual([
    "UNAVAILABLE",
    'stream "count": the stream code could not be loaded (chunk stream-calls.js: 404)',
  ]);
  expect(streamCode.reader.loading).toBeNull();
  streamCode.reader.import = saved.reader.import; // The download works this time.
  expect(await readAll(a.stream(COUNT, 3))).toEqual([0, 1, 2]);
});

test("a stream CALL, its repeat after a resume and the reader's CREDIT, all before the writers' code is in: every item once", async () => {
  const gate = await holdBack("writer");
  const { a, b, cut, connect, runs } = pair();
  const items = readAll(a.stream(COUNT, 100, { window: 8 }));
  await waitFor(() => b.runningCount === 1, 1000, "the CALL to arrive");
  cut();
  connect(true); // A sends the CALL again, and a CREDIT saying it has no item yet.
  await Bun.sleep(5);
  gate.release();
  expect(await items).toEqual(Array.from({ length: 100 }, (_, i) => i));
  expect(runs()).toEqual({ started: 1, stopped: 1 });
  expect(b.runningCount).toBe(0);
});

test("a stream cancelled before the writers' code is in never runs its handler, and is no longer counted as running", async () => {
  const gate = await holdBack("writer");
  const { a, b, sent, runs } = pair();
  const stream = a.stream(COUNT, 100);
  const first = stream.next();
  await waitFor(() => b.runningCount === 1, 1000, "the CALL to arrive");
  await stream.return();
  await first;
  await waitFor(() => sent.includes(FrameType.Cancel), 1000, "the CANCEL");
  await Bun.sleep(5);
  gate.release();
  await waitFor(() => b.runningCount === 0, 1000, "the stream to be dropped");
  expect(runs()).toEqual({ started: 0, stopped: 0 });
});

test("writer code that fails to load ends the stream with UNAVAILABLE, naming the stream and why", async () => {
  const gate = await holdBack("writer");
  const { a, b } = pair();
  const items = readAll(a.stream(COUNT, 5));
  await waitFor(() => b.runningCount === 1, 1000, "the CALL to arrive");
  gate.fail(new Error("chunk stream-writers.js: 404"));
  const err = (await items.catch((e) => e)) as ChatterError;
  expect([err.code, err.message]).toEqual([
    "UNAVAILABLE",
    'stream "count": the stream code could not be loaded (chunk stream-writers.js: 404)',
  ]);
  expect(b.runningCount).toBe(0);
});

test("a stream whose session ends before the writers' code is in never runs its handler", async () => {
  const gate = await holdBack("writer");
  const { a, b, runs } = pair();
  const items = readAll(a.stream(COUNT, 5));
  await waitFor(() => b.runningCount === 1, 1000, "the CALL to arrive");
  b.reset("the session ended");
  gate.release();
  await Bun.sleep(5);
  expect([runs(), b.runningCount]).toEqual([{ started: 0, stopped: 0 }, 0]);
  a.close("done");
  expect(((await items.catch((e) => e)) as ChatterError).code).toBe("DISCONNECTED");
});

test("a CREDIT right behind its stream's CALL, before the writers' code is in, still counts", async () => {
  const gate = await holdBack("writer");
  const LIST = createProc({ name: "list", yields: z.number() });
  const handlers = new Map([[LIST.name, { proc: LIST, handler: () => [1, 2, 3, 4, 5, 6, 7, 8] } as HandlerEntry]]);
  const b = new Peer({ handlers, side: "client" }, "B");
  const items: unknown[] = [];
  b.attach({ send: (bytes) => items.push(...decodeFrames(bytes).filter((f) => f[0] === FrameType.Item)) }, false);
  b.receive([FrameType.Call, 1, "list", null, 0, 1, 4]); // Credit for 4 items,
  b.receive([FrameType.Credit, 1, 0, 8]); // then for 8.
  gate.release();
  await waitFor(() => items.length === 8, 1000, "8 items");
});
