/**
 * Volatile broadcasts (typing indicators) over real sockets: delivered live
 * with sequence number 0, never logged or replayed, and skipped for sockets
 * that are behind, on Bun (native publish) and Node (the subscriber loop).
 * Until `broadcast` takes `{ volatile: true }`, `volatile()` calls the topics
 * layer that option will reach.
 */
import { afterEach, describe, expect, test } from "bun:test";
import net from "node:net";
import { z } from "zod";
import { peerOfClient } from "../src/client/internal.ts";
import { type ChatterServer, ConnectionState, createProc, createServer, type Proc, type ServerConnection } from "../src/index.ts";
import { decodeFrames, encodeFrame, type Frame, FrameType, PROTOCOL_VERSION } from "../src/wire/frames.ts";
import { nextTurn, rawSocket, recorder, serveOnNode, startServer, type TestServer, waitFor, waitForState } from "./helpers.ts";
import { bufferedOf, coreOfServer } from "./internals.ts";
import { NOTE } from "./procs.ts";
import { tcpProxy } from "./proxy.ts";

const TYPING = createProc({ name: "typing", takes: z.string() });
/** Takes any bytes as they are: filler to fill a socket's buffers. */
const BULK = createProc({ name: "bulk", takes: z.instanceof(Uint8Array) });

let srv: TestServer<unknown> | undefined;
let proxy: Awaited<ReturnType<typeof tcpProxy>> | undefined;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  proxy?.stop();
  proxy = undefined;
  await srv?.stop();
  srv = undefined;
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A volatile broadcast, as `chatter.broadcast(topics, proc, input, { volatile: true })` will send it. */
function volatile(chatter: ChatterServer<unknown>, topics: string[], proc: Proc, input: unknown): Promise<void> {
  const broadcast = chatter.broadcast.bind(chatter) as (t: string[], p: Proc, i: unknown, o: { volatile: boolean }) => Promise<void>;
  return broadcast(topics, proc, input, { volatile: true });
}

/** Masks a client→server WebSocket message, as RFC 6455 requires. */
function masked(payload: Uint8Array): Buffer {
  const n = payload.length;
  const head = n < 126 ? [0x82, 0x80 | n] : [0x82, 0x80 | 126, n >> 8, n & 255];
  const key = [7, 1, 8, 2];
  return Buffer.concat([Buffer.from(head), Buffer.from(key), Buffer.from(payload.map((b, i) => b ^ (key[i % 4] as number)))]);
}

/** @returns the Chatter frames in complete server→client WebSocket messages of `data` */
function framesIn(data: Buffer): Frame[] {
  const out: Frame[] = [];
  let at = data.indexOf("\r\n\r\n") + 4;
  while (at + 2 <= data.length) {
    let n = (data[at + 1] as number) & 0x7f;
    let body = at + 2;
    if (n === 126) [n, body] = [data.readUInt16BE(at + 2), at + 4];
    else if (n === 127) [n, body] = [Number(data.readBigUInt64BE(at + 2)), at + 10];
    if (body + n > data.length) break;
    if (((data[at] as number) & 0x0f) === 2) out.push(...decodeFrames(data.subarray(body, body + n)));
    at = body + n;
  }
  return out;
}

/**
 * A client on a plain TCP socket that completes the handshake, then stops
 * reading: the server's buffer for it fills, as for a client on a bad network.
 */
async function stalledClient(port: number) {
  const sock = net.connect(port, "127.0.0.1");
  cleanup.push(() => sock.destroy());
  await new Promise((resolve) => sock.once("connect", resolve));
  let data = Buffer.alloc(0);
  sock.on("data", (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
  });
  const key = "dGhlIHNhbXBsZSBub25jZQ==";
  sock.write(`GET /?cid=stalled HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`);
  sock.write(`Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  sock.write(masked(encodeFrame([FrameType.Hello, PROTOCOL_VERSION, "stalled", crypto.randomUUID(), null, 0, 1, null])));
  await waitFor(() => framesIn(data).some((f) => f[0] === FrameType.Welcome), 3000, "WELCOME");
  sock.pause();
  return {
    /** Reads again. @returns every frame received */
    async drain(until: (frames: Frame[]) => boolean): Promise<Frame[]> {
      sock.resume();
      await waitFor(() => until(framesIn(data)), 10_000, "the backlog");
      return framesIn(data);
    },
  };
}

/** Broadcasts filler until the runtime holds bytes for `conn`'s socket. @returns how many went out */
async function fillUp(chatter: ChatterServer<unknown>, conn: ServerConnection<unknown>): Promise<number> {
  const blob = new Uint8Array(256 * 1024);
  let sent = 0;
  while (bufferedOf(conn) === 0) {
    if (sent > 400) throw new Error("the socket never backed up");
    chatter.broadcast("room", BULK, blob);
    sent++;
    await nextTurn(); // Lets queued frames reach the socket (Node's loop sends at the end of the tick).
  }
  return sent;
}

const events = (frames: Frame[], name: string) => frames.filter((f) => f[0] === FrameType.Event && f[2] === name);

describe("volatile broadcasts", () => {
  test("reach live subscribers with sequence number 0, outside the log, and the client handles every one", async () => {
    srv = startServer({ onOpen: (c) => c.subscribe("room") });
    const typing = recorder<string>();
    const notes = recorder<string>();
    const client = await srv.client();
    client.on(TYPING, typing.handler);
    client.on(NOTE, notes.handler);
    const raw = await rawSocket(srv.url);
    const log = coreOfServer(srv.chatter).topics.log;
    volatile(srv.chatter, ["room"], TYPING, "ann is typing");
    expect(log.seq).toBe(0);
    expect(log.isEmpty).toBe(true);
    srv.chatter.broadcast("room", NOTE, "hello");
    // After a numbered broadcast, seq 0 is still not a repeat: a client drops only numbered ones at or below lastEvent.
    volatile(srv.chatter, ["room"], TYPING, "bob is typing");
    expect(await raw.next(FrameType.Event)).toEqual([FrameType.Event, 0, "typing", "ann is typing"]);
    expect(await raw.next(FrameType.Event)).toEqual([FrameType.Event, 1, "note", "hello"]);
    expect(await raw.next(FrameType.Event)).toEqual([FrameType.Event, 0, "typing", "bob is typing"]);
    await waitFor(() => typing.seen.length === 2, 3000, "both indicators");
    expect(typing.seen).toEqual(["ann is typing", "bob is typing"]);
    expect(notes.seen).toEqual(["hello"]);
    expect(peerOfClient(client).lastEvent).toBe(1);
    raw.ws.close();
  });

  test("are not replayed to a session that was away, which still resumes with the numbered ones", async () => {
    srv = startServer({ onOpen: (c) => c.subscribe("room") });
    proxy = await tcpProxy(srv.bun.port as number);
    const client = await srv.client({ url: proxy.url, reconnect: { minDelay: 5, maxDelay: 20 } });
    const got: string[] = [];
    client.on(TYPING, (s) => void got.push(s));
    client.on(NOTE, (s) => void got.push(s));
    srv.chatter.broadcast("room", NOTE, "before");
    await waitFor(() => got.length === 1, 3000, "the first note");
    proxy.refuse(true);
    proxy.cutAll();
    await waitForState(client, ConnectionState.Disconnected);
    const conn = srv.chatter.find(() => true) as ServerConnection<unknown>;
    await waitFor(() => !conn.isConnected, 3000, "the server to notice");
    volatile(srv.chatter, ["room"], TYPING, "typing while away");
    srv.chatter.broadcast("room", NOTE, "while away");
    proxy.refuse(false);
    await waitForState(client, ConnectionState.Connected);
    expect(client.resumed).toBe(true);
    volatile(srv.chatter, ["room"], TYPING, "typing after");
    await waitFor(() => got.length === 3, 3000, "the replayed note and the new indicator");
    expect(got).toEqual(["before", "while away", "typing after"]);
  });

  test("skip a socket that is behind; it still gets every numbered broadcast (Bun, native publish)", async () => {
    srv = startServer({ maxBufferedBytes: 256 * 1024 * 1024, onOpen: (c) => c.subscribe("room") });
    await behindIsSkipped(srv.chatter, srv.bun.port as number, srv.url, true);
  }, 20_000);

  test("skip a socket that is behind; it still gets every numbered broadcast (Node, subscriber loop)", async () => {
    const chatter = createServer({ maxBufferedBytes: 256 * 1024 * 1024, onOpen: (c) => c.subscribe("room") });
    const node = await serveOnNode(chatter);
    cleanup.push(node.close);
    const port = node.port;
    await behindIsSkipped(chatter, port, `ws://127.0.0.1:${port}`, false);
  }, 20_000);
});

/** A stalled client and a healthy one in one room: the indicator reaches only the healthy one. */
async function behindIsSkipped(chatter: ChatterServer<unknown>, port: number, url: string, native: boolean): Promise<void> {
  const healthy = await rawSocket(url);
  cleanup.push(() => healthy.ws.close());
  const stalled = await stalledClient(port);
  await waitFor(() => chatter.connections.size === 2, 3000, "both sessions");
  expect(coreOfServer(chatter).topics.sockets.native !== null).toBe(native);
  const conn = chatter.filter((c) => c.clientId !== healthy.clientId)[0] as ServerConnection<unknown>;
  const filler = await fillUp(chatter, conn);
  volatile(chatter, ["room"], TYPING, "ann is typing");
  chatter.broadcast("room", NOTE, "last");
  await waitFor(() => healthy.inbox.some((f) => f[2] === "note"), 10_000, "the healthy client's note");
  expect(events(healthy.inbox, "typing")).toEqual([[FrameType.Event, 0, "typing", "ann is typing"]]);
  const frames = await stalled.drain((fs) => events(fs, "note").length === 1);
  expect(events(frames, "bulk").length).toBe(filler);
  expect(events(frames, "typing")).toEqual([]);
  expect(conn.isConnected).toBe(true);
}
