/**
 * Streams against a hostile or unlucky peer, each over a real socket (or, for
 * the engine's own ordering, two engines on an in-memory link): a CREDIT for
 * items never sent, sessions that end while a handler's promise is pending,
 * readers that never acknowledge, and a writer that ignores the credit.
 */
import { afterEach, expect, test } from "bun:test";
import { z } from "zod";
import { Peer } from "../src/engine/peer.ts";
import { ChatterError, createProc } from "../src/index.ts";
import { decodeFrames, encodeFrame, FrameType } from "../src/wire/frames.ts";
import { hold, rawSocket, startServer, type TestServer, waitFor } from "./helpers.ts";
import { coreOfServer } from "./internals.ts";

const LIST = createProc({ name: "list", yields: z.number() });
const TICKS = createProc({ name: "ticks", takes: z.number(), yields: z.number() });
const ECHO = createProc({ name: "echo", takes: z.number(), returns: z.number() });
const BIG = createProc({ name: "big", takes: z.number(), yields: z.string() });

let srv: TestServer<unknown>;
afterEach(() => srv?.stop());

/** @returns two frames as one message */
function message(...frames: unknown[]): Uint8Array {
  const parts = frames.map((f) => encodeFrame(f as never));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

test("a CREDIT for items not sent yet neither crashes the server nor loses an item", async () => {
  srv = startServer();
  srv.chatter.on(LIST, (() => [1, 2, 3, 4, 5, 6, 7, 8]) as never);
  const raw = await rawSocket(srv.url);
  // The CALL and, in the same message, a CREDIT claiming four items the writer has made but not sent.
  raw.send(message([FrameType.Call, 1, "list", null, 0, 1, 4], [FrameType.Credit, 1, 4, 8]));
  await waitFor(() => raw.inbox.filter((f) => f[0] === FrameType.Item).length === 8, 3000, "the 8 items");
  expect(raw.inbox.filter((f) => f[0] === FrameType.Item).map((f) => f[2])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  // Credit past the last item lets the writer find the iterator's end.
  raw.send([FrameType.Credit, 1, 8, 16]);
  const end = await raw.next(FrameType.Result);
  expect(end[2]).toBe(8);
  // Still serving: a second client's stream works.
  const client = await srv.client();
  const got: number[] = [];
  for await (const n of client.stream(LIST)) got.push(n);
  expect(got).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
});

test("sessions that end while a stream handler's promise is pending give their place back", async () => {
  srv = startServer({ maxRunningCalls: 5, maxConcurrentCallsPerAddress: 1000 });
  const gate = hold();
  srv.chatter.on(TICKS, (async (n: number) => {
    await gate.wait();
    return (async function* () {
      for (let i = 0; i < n; i++) yield i;
    })();
  }) as never);
  srv.chatter.on(ECHO, (n) => n);
  for (let k = 0; k < 6; k++) {
    const raw = await rawSocket(srv.url);
    raw.send([FrameType.Call, 1, "ticks", 3, 0, 1, 4]);
    raw.send(new Uint8Array([0xc1])); // Malformed: the session ends (1002) with the handler still pending.
    await raw.closed;
  }
  gate.release();
  const client = await srv.client();
  expect(await client.call(ECHO, 7)).toBe(7);
});

test("a reader that never acknowledges holds at most 8 MiB of one session's stream items", async () => {
  srv = startServer({ maxFramesPerSecond: 0, resumeWindow: 0 });
  srv.chatter.on(BIG, function* (n: number) {
    for (let i = 0; i < n; i++) yield "x".repeat(60_000);
  } as never);
  const raw = await rawSocket(srv.url);
  // 300 streams, each granted 64 items, never acknowledged, with the watermark held at 1 in every CALL.
  for (let id = 1; id <= 300; id++) raw.send([FrameType.Call, id, "big", 64, 0, 1, 64]);
  const budget = coreOfServer(srv.chatter).peerOptions.streamBudget as { used: number };
  await waitFor(() => budget.used > 7 * 1024 * 1024, 5000, "the session's streams to fill up");
  const client = await srv.client();
  expect(await client.call(ECHO as never, 1 as never).catch((e: ChatterError) => e.code)).toBe("NOT_IMPLEMENTED");
  expect(budget.used).toBeLessThanOrEqual(8 * 1024 * 1024 + 61_000);
  raw.ws.close();
  await waitFor(() => budget.used === 0, 3000, "the items to be let go when the session ends");
}, 15_000);

/** Two engines joined by an in-memory link that a test can cut, for the order of frames around a resume. */
function linkedPeers(options?: { maxEntries?: number }) {
  const server = new Map();
  const b = new Peer({ handlers: server, side: "server", replies: options }, "B");
  const a = new Peer({ handlers: new Map(), side: "client" }, "A");
  let epoch = 0;
  const link = (to: Peer) => {
    const mine = epoch;
    const deliver = (bytes: Uint8Array) => {
      if (mine !== epoch) return; // Cut: lost with the old link.
      for (const f of decodeFrames(bytes)) to.receive(f);
    };
    return { send: (bytes: Uint8Array) => queueMicrotask(() => deliver(bytes)) };
  };
  const connect = (resumed: boolean) => {
    epoch++;
    a.attach(link(b), resumed);
    b.attach(link(a), resumed);
  };
  const cut = () => {
    epoch++;
    a.detach();
    b.detach();
  };
  /** Cuts the link, lets `during` run (the writer goes on into the cut link for a turn), then resumes. */
  const away = async (during: () => void) => {
    cut();
    during();
    await new Promise((r) => setImmediate(r));
    connect(true);
  };
  return { a, b, handlers: server, connect, away };
}

test("an ERROR made while the reader was away never overtakes the items it lacks", async () => {
  const S = createProc({ name: "s", yields: z.number() });
  const { a, handlers, connect, away } = linkedPeers();
  const gate = hold();
  handlers.set("s", {
    proc: S,
    handler: async function* () {
      yield 0;
      await gate.wait();
      yield 1;
      yield 2;
      throw new ChatterError("FORBIDDEN", "boom");
    },
  });
  connect(false);
  const items = a.stream(S, null);
  const got = [(await items.next()).value];
  await away(gate.release); // The writer makes 1, 2 and the ERROR into the cut link.
  const err = await (async () => {
    for await (const n of items) got.push(n as number);
  })().catch((e) => e);
  expect(got).toEqual([0, 1, 2]);
  expect(err.code).toBe("FORBIDDEN");
});

test("a stream whose END the answer cache dropped still ends after a resume", async () => {
  const S = createProc({ name: "s", yields: z.number() });
  const P = createProc({ name: "p", returns: z.number() });
  const { a, handlers, connect, away } = linkedPeers({ maxEntries: 1 });
  const gate = hold();
  handlers.set("s", {
    proc: S,
    handler: async function* () {
      yield 0;
      await gate.wait();
      yield 1;
    },
  });
  handlers.set("p", { proc: P, handler: () => 7 });
  connect(false);
  const items = a.stream(S, null, { timeout: 2000 });
  const got = [(await items.next()).value];
  await away(gate.release);
  expect(await a.call(P, null)).toBe(7); // Its answer pushes the stream's END out of the one-entry cache.
  for await (const n of items) got.push(n);
  expect(got).toEqual([0, 1]);
});

test("a writer that ignores the credit cannot grow the reader's queue", async () => {
  const S = createProc({ name: "s", yields: z.string() });
  const b = new Peer({ handlers: new Map(), side: "server" }, "B");
  b.attach({ send: () => {} }, false);
  const items = b.stream(S, null, { window: 4 });
  const first = items.next();
  for (let i = 0; i < 10_000; i++) b.receive([FrameType.Item, 1, i, "x"] as never);
  expect((await first).value).toBe("x");
  let queued = 0;
  // The reader kept at most the 4 items it granted: the 4th next() waits.
  for (let i = 0; i < 3; i++) {
    await items.next();
    queued++;
  }
  const pending = await Promise.race([items.next().then(() => "item"), new Promise((r) => setImmediate(() => r("waiting")))]);
  expect(queued).toBe(3);
  expect(pending).toBe("waiting");
  await items.return();
});
