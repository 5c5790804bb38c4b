/**
 * The server-wide limits (issue 11): each over a real socket, each with the
 * refusal or close code it is documented to give.
 */
import { afterEach, describe, expect, test } from "bun:test";
import WebSocket from "ws";
import { z } from "zod";
import { createProc, createServer, type ServerConnection } from "../src/index.ts";
import { encodeFrame, type Frame, FrameType, joinFrames, PROTOCOL_VERSION } from "../src/wire/frames.ts";
import { rawSocket, serveOnNode, startServer, type TestServer, upgradeStatus, waitFor } from "./helpers.ts";
import { ADD } from "./procs.ts";

// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
afterEach(() => srv?.stop());

const BLOB = createProc({ name: "blob", takes: z.number(), returns: z.instanceof(Uint8Array) });
const HOLD = createProc({ name: "hold", takes: z.number(), returns: z.string() });

/** A socket held open that the server sees as coming from `ip` (through a trusted proxy). */
async function openFrom(url: string, ip: string): Promise<globalThis.WebSocket> {
  // Bun's WebSocket takes headers.
  const ws = new globalThis.WebSocket(url, { headers: { "X-Forwarded-For": ip } } as never);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  return ws;
}

/** One message holding `n` copies of a frame. */
function repeated(frame: Frame, n: number): Uint8Array {
  const one = Uint8Array.from(encodeFrame(frame));
  return joinFrames(
    Array.from({ length: n }, () => one),
    one.byteLength * n,
  );
}

describe("connections", () => {
  test("maxConnections counts open sockets and parked sessions; past it upgrades get 503", async () => {
    srv = startServer({ maxConnections: 2, rateLimit: false });
    const a = await rawSocket(srv.url);
    const b = await rawSocket(srv.url);
    expect(await upgradeStatus(srv.url)).toBe("UNAVAILABLE");
    // b drops without a goodbye: its session is parked, and still counts.
    b.ws.close(4100, "gone for now");
    await waitFor(() => [...srv.chatter.connections].some((c) => !c.isConnected), 3000, "b to be parked");
    expect(await upgradeStatus(srv.url)).toBe("UNAVAILABLE");
    a.ws.close(4004, "bye"); // A client's close ends its session for good.
    await waitFor(() => srv.chatter.connections.size === 1, 3000, "a to end");
    expect(await upgradeStatus(srv.url)).toBe(101);
  });

  test("maxConnectionsPerAddress refuses one address with 429 while others still connect", async () => {
    srv = startServer({ maxConnectionsPerAddress: 2, rateLimit: false, trustProxy: true });
    const from = (ip: string) => upgradeStatus(srv.url, { "X-Forwarded-For": ip });
    const held = [await rawSocket(srv.url), await rawSocket(srv.url)];
    expect(await upgradeStatus(srv.url)).toBe("RATE_LIMITED");
    expect(await from("203.0.113.9")).toBe(101);
    // IPv6 counts per /64: two sockets held open from one /64 fill it.
    const v6 = [await openFrom(srv.url, "2001:db8::1"), await openFrom(srv.url, "2001:db8::2")];
    expect(await from("2001:db8::3")).toBe("RATE_LIMITED");
    expect(await from("2001:db8:0:1::3")).toBe(101);
    for (const h of held) h.ws.close();
    for (const ws of v6) ws.close();
  });
});

describe("frames", () => {
  test("one 1 MiB message of 98,000 CALL frames is refused with 1009 before it is decoded; others carry on", async () => {
    srv = startServer();
    let ran = 0;
    srv.chatter.on(ADD, ({ a, b }) => {
      ran++;
      return a + b;
    });
    const healthy = await srv.client();
    const raw = await rawSocket(srv.url);
    const flood = repeated([FrameType.Call, 1, "add", 0, 0, 1], 98_000);
    expect(flood.byteLength).toBeLessThanOrEqual(1024 * 1024);
    raw.send(flood);
    const { code, reason } = await raw.closed;
    expect(code).toBe(1009);
    expect(reason).toContain("maxFramesPerMessage");
    expect(ran).toBe(0);
    expect(raw.inbox).toEqual([]); // Not one of them was answered (each would be a VALIDATION error).
    expect(await healthy.call(ADD, { a: 2, b: 2 })).toBe(4);
  });

  test("more than maxFramesPerSecond frames from one socket closes it with 4008; the session parks and resumes", async () => {
    srv = startServer({ maxFramesPerSecond: 100 });
    const raw = await rawSocket(srv.url, false);
    raw.send([FrameType.Hello, PROTOCOL_VERSION, "raw-client", "s", null, 0, 1]);
    const [, sessionId, token] = (await raw.next(FrameType.Welcome)) as unknown as [number, string, string];
    for (let i = 0; i < 3; i++) raw.send(repeated([FrameType.Ping, 1], 50));
    const { code, reason } = await raw.closed;
    expect(code).toBe(4008);
    expect(reason).toContain("maxFramesPerSecond");
    await waitFor(() => [...srv.chatter.connections].every((c) => !c.isConnected), 3000, "the session to park");
    expect(srv.chatter.connections.size).toBe(1);
    const back = await rawSocket(srv.url, false);
    back.send([FrameType.Hello, PROTOCOL_VERSION, "raw-client", sessionId, token, 0, 1]);
    expect((await back.next(FrameType.Welcome))[3]).toBe(true);
  });

  test("maxConcurrentCallsPerAddress holds across client ids, which cost nothing to make", async () => {
    srv = startServer({ maxConcurrentCallsPerAddress: 2 });
    const release: (() => void)[] = [];
    srv.chatter.on(HOLD, () => new Promise<string>((resolve) => release.push(() => resolve("done"))));
    const [a, b] = [await srv.client(), await srv.client()];
    expect(a.clientId).not.toBe(b.clientId);
    const held = [a.call(HOLD, 1), b.call(HOLD, 2)];
    await waitFor(() => release.length === 2);
    await expect(b.call(HOLD, 3)).rejects.toMatchObject({
      code: "LIMIT",
      message: expect.stringContaining("maxConcurrentCallsPerAddress 2"),
    });
    for (const r of release) r();
    expect(await Promise.all(held)).toEqual(["done", "done"]);
  });

  test("maxTopics bounds the topic index server-wide", async () => {
    srv = startServer({ maxTopics: 3 });
    const a = await rawSocket(srv.url);
    const conn = srv.chatter.find((c) => c.clientId === a.clientId) as ServerConnection<unknown>;
    for (const t of ["a", "b", "c"]) conn.subscribe(t);
    expect(() => conn.subscribe("d")).toThrow(/maxTopics/);
    conn.unsubscribe("a");
    conn.subscribe("d");
  });
});

describe("handlers", () => {
  test("maxConcurrentCallsPerClient holds across the sessions of one client id", async () => {
    srv = startServer({ maxConcurrentCalls: 3 });
    const release: (() => void)[] = [];
    srv.chatter.on(HOLD, () => new Promise<string>((resolve) => release.push(() => resolve("done"))));
    const first = await srv.client();
    // A second tab: the same client id, proven, with its own session.
    const second = await srv.client({ clientId: first.clientId, clientKey: first.clientKey as string });
    const held = [first.call(HOLD, 1), first.call(HOLD, 2)];
    await waitFor(() => release.length === 2);
    const third = second.call(HOLD, 3);
    await waitFor(() => release.length === 3);
    await expect(second.call(HOLD, 4)).rejects.toMatchObject({
      code: "LIMIT",
      message: expect.stringContaining("maxConcurrentCallsPerClient 3"),
    });
    for (const r of release) r();
    expect(await Promise.all([...held, third])).toEqual(["done", "done", "done"]);
    expect(await second.call(ADD_LATER, null).catch((e) => e.code)).toBe("NOT_IMPLEMENTED");
  });

  test("maxKeptBytes bounds the answers kept across all sessions: the oldest go first, and their repeats get LIMIT", async () => {
    srv = startServer({ maxKeptBytes: 40_000 });
    let runs = 0;
    srv.chatter.on(BLOB, (n) => {
      runs++;
      return new Uint8Array(n);
    });
    const a = await rawSocket(srv.url);
    const b = await rawSocket(srv.url);
    // settledBelow stays 1: the caller never confirms, so every answer is kept for a repeat.
    for (let id = 1; id <= 5; id++) a.send([FrameType.Call, id, "blob", 8000, 0, 1]);
    for (let id = 1; id <= 5; id++) b.send([FrameType.Call, id, "blob", 8000, 0, 1]);
    await waitFor(() => a.inbox.length === 5 && b.inbox.length === 5, 3000, "all answers");
    a.inbox.length = 0;
    b.inbox.length = 0;
    a.send([FrameType.Call, 1, "blob", 8000, 0, 1]);
    b.send([FrameType.Call, 5, "blob", 8000, 0, 1]);
    const oldest = (await a.next(FrameType.Error)) as [number, number, { code: string; message: string }];
    expect(oldest[2]).toMatchObject({ code: "LIMIT", message: expect.stringContaining("no longer kept; it ran once") });
    expect(((await b.next(FrameType.Result))[2] as Uint8Array).byteLength).toBe(8000);
    expect(runs).toBe(10);
  });
});

const ADD_LATER = createProc({ name: "add_later" });

test("idleTimeout: the Node adapter closes a socket that sends nothing with 4002 (the core's keepalive)", async () => {
  // Real time, kept short: the core's one-second clock is the subject, and Node's HTTP server under Bun stalls on fake timers.
  const chatter = createServer({ idleTimeout: 1 });
  const node = await serveOnNode(chatter);
  const ws = new WebSocket(`${node.url}/?cid=silent`);
  let code = 0;
  ws.on("close", (c) => {
    code = c;
  });
  await new Promise((resolve) => ws.once("open", resolve));
  ws.send(encodeFrame([FrameType.Hello, PROTOCOL_VERSION, "silent", "s", null, 0, 1]));
  await waitFor(() => chatter.connections.size === 1, 3000, "the handshake");
  // A socket that keeps talking stays.
  const talker = await rawSocket(node.url);
  const chat = setInterval(() => talker.send([FrameType.Ping, 1]), 200);
  try {
    await waitFor(() => code !== 0, 5000, "the idle socket to be closed");
    expect(code).toBe(4002);
    expect(talker.ws.readyState).toBe(globalThis.WebSocket.OPEN);
  } finally {
    clearInterval(chat);
    await node.close();
  }
});
