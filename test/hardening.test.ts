/**
 * Regression tests for the attack run on 0.1.0 (issue 11): each sends what an
 * attacker sent, over a real socket, and checks the server answers clearly
 * and stays healthy.
 */
import { afterEach, expect, test } from "bun:test";
import { Packr } from "msgpackr";
import { z } from "zod";
import { createProc, type ServerConnection } from "../src/index.ts";
import { encodeFrame, type Frame, FrameType, joinFrames } from "../src/wire/frames.ts";
import { nextTurn, rawSocket, serveOnNode, startServer, type TestServer, waitFor } from "./helpers.ts";
import { peerOf } from "./internals.ts";
import { ADD } from "./procs.ts";

// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
afterEach(() => srv?.stop());

/** Several frames in one message, as a batching sender puts them. */
function batch(...frames: Frame[]): Uint8Array {
  const bytes = frames.map((f) => Uint8Array.from(encodeFrame(f)));
  return joinFrames(
    bytes,
    bytes.reduce((n, b) => n + b.byteLength, 0),
  );
}

const NUMBERS = createProc({ name: "numbers", takes: z.array(z.number()), returns: z.number() });
const ADD_EVENT = createProc({ name: "event" });
const THROWS = createProc({ name: "throws", takes: z.enum(["sync", "async"]) });

test("an input with 130,000 invalid elements gets a bounded VALIDATION answer: 100 issues and a count of the rest", async () => {
  srv = startServer();
  srv.chatter.on(NUMBERS, (xs) => xs.length);
  const raw = await rawSocket(srv.url);
  const sizes: number[] = [];
  raw.ws.addEventListener("message", (ev) => sizes.push((ev.data as ArrayBuffer).byteLength));
  raw.send([FrameType.Call, 1, "numbers", new Array(130_000).fill(null), 0, 1]);
  const [, id, error] = (await raw.next(FrameType.Error)) as [number, number, Record<string, unknown>];
  expect(id).toBe(1);
  expect(error.code).toBe("VALIDATION");
  expect((error.issues as unknown[]).length).toBe(100);
  expect(error.omittedIssues).toBe(129_900);
  expect(error.message).toContain("and 129995 more issues");
  expect(Math.max(...sizes)).toBeLessThan(64 * 1024);
  // The client rebuilds the count too.
  const client = await srv.client();
  const err = await client.call(NUMBERS, new Array(500).fill("x") as unknown as number[]).catch((e) => e);
  expect(err).toMatchObject({ code: "VALIDATION", omittedIssues: 400 });
  expect(err.issues).toHaveLength(100);
});

test("the attack's 262,080 nils in one 256 KiB CALL are refused before decoding: more values than a message may hold", async () => {
  srv = startServer();
  let ran = 0;
  srv.chatter.on(NUMBERS, () => ran++);
  const raw = await rawSocket(srv.url);
  raw.send(Uint8Array.from(new Packr({ useRecords: false }).pack([FrameType.Call, 1, "numbers", new Array(262_080).fill(null), 0, 1])));
  const { code, reason } = await raw.closed;
  expect(code).toBe(1002);
  expect(reason).toContain("more than 131072 values");
  expect(ran).toBe(0);
});

test("a handler that throws a value String() cannot convert is answered HANDLER_ERROR, sync and async", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => void unhandled.push(err);
  process.on("unhandledRejection", onUnhandled);
  try {
    srv = startServer({ onError: () => {} });
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    srv.chatter.on(THROWS, async (how) => {
      if (how === "sync") throw Object.create(null);
      await nextTurn();
      throw Object.create(null);
    });
    srv.chatter.on(NUMBERS, () => {
      throw Object.create(null);
    });
    const raw = await rawSocket(srv.url);
    // A sync throw inside a batch: the frames after it are still handled.
    raw.send(batch([FrameType.Call, 1, "numbers", [1], 0, 1], [FrameType.Call, 2, "add", { a: 1, b: 2 }, 0, 1]));
    const first = (await raw.next(FrameType.Error)) as [number, number, { code: string; message: string }];
    expect(first[1]).toBe(1);
    expect(first[2].code).toBe("HANDLER_ERROR");
    expect(first[2].message).toContain("cannot be turned into text");
    expect(await raw.next(FrameType.Result)).toEqual([FrameType.Result, 2, 3]);
    const client = await srv.client();
    await expect(client.call(THROWS, "sync")).rejects.toMatchObject({ code: "HANDLER_ERROR" });
    await expect(client.call(THROWS, "async")).rejects.toMatchObject({ code: "HANDLER_ERROR" });
    // Nothing stays running: shutdown does not wait on a stuck call.
    await waitFor(() => [...srv.chatter.connections].every((c) => peerOf(c).runningCount === 0), 1000, "no running handlers");
    expect(unhandled).toEqual([]);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

test("a logged broadcast that excluded a session does not keep the ended session in memory", async () => {
  srv = startServer({ onOpen: (c) => c.subscribe("quiet") });
  const keeper = await srv.client();
  const leaver = await srv.client();
  const weak = (() => {
    const conn = srv.chatter.find((c) => c.clientId === leaver.clientId);
    srv.chatter.broadcast("quiet", ADD_EVENT, null, { exclude: [conn as never] });
    return new WeakRef(conn as object);
  })();
  leaver.close();
  await waitFor(() => srv.chatter.connections.size === 1, 3000, "the session to end");
  await waitFor(
    () => {
      Bun.gc(true);
      return weak.deref() === undefined;
    },
    3000,
    "the ended session to be collected",
  );
  expect(keeper.isConnected).toBe(true);
});

test("topics: per-connection count and name length are capped with LIMIT; 20,000 joins and leaves stay exact", async () => {
  srv = startServer({ maxTopicsPerConnection: 20_000, maxTopicLength: 16 });
  const JOIN = createProc({ name: "join", takes: z.string() });
  srv.chatter.on(JOIN, (topic, conn) => conn.subscribe(topic));
  const client = await srv.client();
  await expect(client.call(JOIN, "x".repeat(17))).rejects.toMatchObject({
    code: "LIMIT",
    message: expect.stringContaining("maxTopicLength"),
  });
  const conn = srv.chatter.find((c) => c.clientId === client.clientId) as ServerConnection<unknown>;
  for (let i = 0; i < 20_000; i++) conn.subscribe(`t${i}`);
  expect(() => conn.subscribe("one-more")).toThrow(/maxTopicsPerConnection/);
  for (let i = 19_999; i >= 0; i -= 2) conn.unsubscribe(`t${i}`);
  expect(conn.isSubscribed("t0")).toBe(true);
  expect(conn.isSubscribed("t1")).toBe(false);
  expect(await srv.chatter.presence("t2")).toBe(1);
  for (let i = 0; i < 20_000; i += 2) conn.unsubscribe(`t${i}`);
  expect(srv.chatter.filter((c) => c.isSubscribed("t0"))).toEqual([]);
  conn.subscribe("one-more");
});

test("the new frames and fields from a hostile client, on Bun and on Node: a protocol error, or a fresh id", async () => {
  const { createServer } = await import("../src/index.ts");
  srv = startServer({ onError: () => {} });
  const node = await serveOnNode(createServer({ onError: () => {} }));
  const urls = { bun: srv.url, node: node.url };
  try {
    for (const [runtime, url] of Object.entries(urls)) {
      // A REFUSED frame is the server's to send: as a first frame, and after the handshake.
      const first = await rawSocket(url, false);
      first.send([FrameType.Refused, { code: "UNAUTHORIZED", message: "from a client" }]);
      expect([runtime, (await first.closed).code]).toEqual([runtime, 1002]);
      const later = await rawSocket(url);
      later.send([FrameType.Refused, { code: "X", message: "y" }]);
      expect([runtime, (await later.closed).code]).toEqual([runtime, 1002]);
      // A client key of the wrong type is malformed; a string that proves nothing earns a fresh id.
      const typed = await rawSocket(url, false);
      typed.send([FrameType.Hello, 1, "raw-client", "s", null, 0, 1, { forged: true }] as never);
      expect([runtime, (await typed.closed).code]).toEqual([runtime, 1002]);
      const forged = await rawSocket(url, true, { clientId: "victim", clientKey: "k".repeat(4000) });
      expect([runtime, forged.clientId === "victim"]).toEqual([runtime, false]);
      forged.ws.close();
    }
  } finally {
    await node.close();
  }
});
