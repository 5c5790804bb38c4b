/** One test per limit: each shows the clear error or close code it produces. */
import { afterEach, describe, expect, test } from "bun:test";
import { connect as tcpConnect } from "node:net";
import { z } from "zod";
import { createProc, type ServerConnection } from "../src/index.ts";
import { RateLimiter } from "../src/server/rate-limit.ts";
import { encodeFrame, FrameType, PROTOCOL_VERSION } from "../src/wire/frames.ts";
import { hold, startServer, type TestServer, upgradeStatus, waitFor } from "./helpers.ts";
import { bunSocketOf, peerOf } from "./internals.ts";
import { ECHO, SLOW } from "./procs.ts";

// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
afterEach(() => srv?.stop());

const BLOB = createProc({ name: "blob", takes: z.instanceof(Uint8Array) });

/**
 * A client that completes the WebSocket handshake and its HELLO by hand over
 * a raw TCP socket, then stops reading: a slow consumer.
 */
async function stalledClient(url: string) {
  const { hostname, port } = new URL(url);
  const sock = tcpConnect({ host: hostname, port: Number(port) });
  await new Promise((r) => sock.once("connect", r));
  sock.write(
    "GET /?cid=stalled HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  await new Promise((r) => sock.once("data", r));
  // One masked binary frame: the HELLO.
  sock.write(maskedFrame(encodeFrame([FrameType.Hello, PROTOCOL_VERSION, "stalled", "stalled-session", null, 0, 1])));
  await new Promise((r) => sock.once("data", r)); // the WELCOME
  sock.pause();
  return sock;
}

/** One masked binary WebSocket frame, as a client must send it. */
function maskedFrame(payload: Uint8Array): Buffer {
  const mask = [1, 2, 3, 4];
  const len = payload.length;
  const head =
    len < 126
      ? [0x82, 0x80 | len]
      : len < 65536
        ? [0x82, 0x80 | 126, len >> 8, len & 0xff]
        : [0x82, 0x80 | 127, 0, 0, 0, 0, (len >>> 24) & 0xff, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff];
  return Buffer.concat([Buffer.from([...head, ...mask]), Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)))]);
}

/** Records the close codes the server gives a connection's socket. */
function watchCloses(conn: ServerConnection<unknown>) {
  const codes: { code?: number; reason?: string }[] = [];
  const socket = bunSocketOf(conn)!;
  const close = socket.close.bind(socket);
  socket.close = (code?: number, reason?: string) => {
    codes.push({ code, reason });
    close(code, reason);
  };
  return codes;
}

describe("slow consumers", () => {
  test("a socket whose outgoing buffer passes maxBufferedBytes is closed with 4003 (answers it does not read)", async () => {
    srv = startServer({ maxBufferedBytes: 64 * 1024 });
    srv.chatter.on(ECHO, (x) => x);
    const big = new Uint8Array(200 * 1024);
    const sock = await stalledClient(srv.url);
    await waitFor(() => srv.chatter.connections.size === 1);
    const conn = srv.chatter.find(() => true) as ServerConnection<unknown>;
    const codes = watchCloses(conn);
    // It still sends calls, but never reads the answers.
    for (let i = 1; i <= 60; i++) sock.write(maskedFrame(encodeFrame([FrameType.Call, i, "echo", big, 0, 1])));
    await waitFor(() => codes.length > 0, 5000, "the slow consumer to be closed");
    expect(codes[0]).toEqual({ code: 4003, reason: "slow consumer: more than 65536 bytes waiting" });
    sock.destroy();
  });

  test("calls to a backpressured client wait for drain instead of piling up", async () => {
    srv = startServer({ maxBufferedBytes: 1024 * 1024 });
    const sock = await stalledClient(srv.url);
    await waitFor(() => srv.chatter.connections.size === 1);
    const conn = srv.chatter.find(() => true) as ServerConnection<unknown>;
    const codes = watchCloses(conn);
    const big = new Uint8Array(256 * 1024);
    const calls = Array.from({ length: 100 }, () => conn.call(BLOB, big, { timeout: 0 }).catch((e) => e.code));
    await waitFor(() => bunSocketOf(conn)!.getBufferedAmount() > 0, 3000, "the socket to push back");
    // Some went out until the socket pushed back; the rest are held, and the buffer stays bounded.
    expect(codes).toEqual([]);
    expect(bunSocketOf(conn)!.getBufferedAmount()).toBeLessThan(2 * 1024 * 1024);
    expect(peerOf(conn).pendingCount).toBe(100);
    conn.close(1000, "test over");
    expect(await Promise.all(calls)).toEqual(Array(100).fill("DISCONNECTED"));
    sock.destroy();
  });

  test("the same holds for broadcasts through native publish", async () => {
    srv = startServer({ maxBufferedBytes: 64 * 1024, onOpen: (c) => c.subscribe("firehose") });
    const sock = await stalledClient(srv.url);
    await waitFor(() => srv.chatter.connections.size === 1);
    const stalled = [...srv.chatter.connections][0] as ServerConnection<unknown>;
    const fast = await srv.client();
    let received = 0;
    fast.on(BLOB, () => void received++);
    const codes = watchCloses(stalled);
    const big = new Uint8Array(256 * 1024);
    for (let i = 1; i <= 200 && codes.length === 0; i++) {
      srv.chatter.broadcast("firehose", BLOB, big);
      // The healthy subscriber keeps up: the next broadcast waits until it has this one.
      await waitFor(() => received === i || codes.length > 0, 3000, `broadcast ${i} to reach the healthy subscriber`);
    }
    await waitFor(() => codes.length > 0, 5000, "the slow consumer to be closed");
    expect(codes[0]?.code).toBe(4003);
    // The healthy subscriber is still connected.
    expect(srv.chatter.find((c) => c.clientId === fast.clientId)?.isConnected).toBe(true);
    sock.destroy();
  });
});

describe("server limits", () => {
  test("maxConcurrentCalls refuses extra calls with LIMIT instead of queueing them", async () => {
    srv = startServer({ maxConcurrentCalls: 2 });
    const slow = hold();
    srv.chatter.on(SLOW, async () => {
      await slow.wait();
      return "ok";
    });
    const client = await srv.client();
    const calls = [client.call(SLOW, 0), client.call(SLOW, 0), client.call(SLOW, 0)];
    // The third is refused while the first two are still running.
    await calls[2]?.catch(() => {});
    slow.release();
    const [a, b, c] = await Promise.allSettled(calls);
    expect(a).toEqual({ status: "fulfilled", value: "ok" });
    expect(b).toEqual({ status: "fulfilled", value: "ok" });
    expect((c as PromiseRejectedResult).reason).toMatchObject({
      code: "LIMIT",
      message: 'too many concurrent calls: "slow" refused, limit is 2',
    });
    expect(await client.call(SLOW, 1)).toBe("ok");
  });

  test("upgrades per address are rate-limited with 429", async () => {
    srv = startServer({ rateLimit: { max: 3, windowMs: 60_000 } });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push(await upgradeStatus(srv.url));
    expect(statuses).toEqual([101, 101, 101, "RATE_LIMITED", "RATE_LIMITED"]);
  });

  test("trustProxy keys the limit on the X-Forwarded-For entry the proxy appended; without it the header is ignored", async () => {
    srv = startServer({ rateLimit: { max: 1, windowMs: 60_000 }, trustProxy: true });
    expect(await upgradeStatus(srv.url, { "X-Forwarded-For": "6.6.6.6, 203.0.113.1" })).toBe(101);
    expect(await upgradeStatus(srv.url, { "X-Forwarded-For": "203.0.113.2" })).toBe(101);
    // The client controls everything left of what the proxy appended: a fresh lie there buys nothing.
    expect(await upgradeStatus(srv.url, { "X-Forwarded-For": "7.7.7.7, 203.0.113.1" })).toBe("RATE_LIMITED");
    srv.stop();
    srv = startServer({ rateLimit: { max: 1, windowMs: 60_000 } });
    expect(await upgradeStatus(srv.url, { "X-Forwarded-For": "203.0.113.1" })).toBe(101);
    expect(await upgradeStatus(srv.url, { "X-Forwarded-For": "203.0.113.2" })).toBe("RATE_LIMITED");
  });

  test("the rate-limit table is pruned of addresses whose buckets are full again", () => {
    const limiter = new RateLimiter({ max: 1, windowMs: 1000 });
    for (let i = 0; i < 100; i++) limiter.take(`10.0.0.${i}`, 0);
    expect(limiter.size).toBe(100);
    expect(limiter.take("10.0.0.1", 500)).toBe(500);
    limiter.take("fresh", 1500);
    expect(limiter.size).toBe(1);
  });

  test("allowedOrigins refuses other browser origins with 403", async () => {
    srv = startServer({ allowedOrigins: ["https://app.example"] });
    expect(await upgradeStatus(srv.url, { Origin: "https://evil.example" })).toBe("FORBIDDEN");
    expect(await upgradeStatus(srv.url, { Origin: "https://app.example" })).toBe(101);
    expect(await upgradeStatus(srv.url)).toBe(101); // not a browser
  });
});
