/**
 * The Deno adapter where the conformance suite does not reach: requests that
 * are no upgrade, messages past a limit, slow consumers and drains. The server
 * runs on Deno in its own process (fixtures/deno-server.ts: maxMessageBytes
 * 8 KiB, maxBufferedBytes 1 MiB); the clients are Bun's, over real sockets.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { type ChatterClient, ConnectionState, createClient } from "../src/index.ts";
import { encodeFrame, FrameType, PROTOCOL_VERSION } from "../src/wire/frames.ts";
import { denoRun, spawnReady } from "./conformance/servers.ts";
import { BLOB, BURST, CHUNK, FLOOD } from "./fixtures/deno-procs.ts";
import { rawSocket, waitFor, waitForState } from "./helpers.ts";
import { ADD } from "./procs.ts";

const server = await spawnReady(denoRun(`${import.meta.dir}/fixtures/deno-server.ts`));
afterAll(() => server.proc.kill());
const url = `ws://127.0.0.1:${server.port}`;

const clients: ChatterClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

async function client(): Promise<ChatterClient> {
  const c = createClient({ url, reconnect: false });
  clients.push(c);
  await waitForState(c, ConnectionState.Connected);
  return c;
}

/** Sends a request by hand over TCP. @returns the status of the response */
async function status(request: string): Promise<number> {
  const sock = connect({ host: "127.0.0.1", port: server.port });
  sock.write(request);
  const head = await new Promise<string>((resolve) => sock.once("data", (b) => resolve(b.toString())));
  sock.destroy();
  return Number(head.split(" ")[1]);
}

/** A client that upgrades and sends HELLO over raw TCP, reads WELCOME, then stops reading: a slow consumer. */
async function stalledClient(): Promise<{ sock: Socket; closeFrame(): Promise<{ code: number; reason: string }> }> {
  const sock = connect({ host: "127.0.0.1", port: server.port });
  let bytes = Buffer.alloc(0);
  sock.on("data", (b: Buffer) => {
    bytes = Buffer.concat([bytes, b]);
  });
  sock.write(
    "GET /?cid=stalled HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  await waitFor(() => bytes.includes("\r\n\r\n"), 3000, "the 101");
  const hello = encodeFrame([FrameType.Hello, PROTOCOL_VERSION, "stalled", "stalled-session", null, 0, 1]);
  // One masked binary frame; a HELLO is under 126 bytes. The mask is 0, which leaves the payload as it is.
  sock.write(Buffer.concat([Buffer.from([0x82, 0x80 | hello.byteLength, 0, 0, 0, 0]), hello]));
  const afterUpgrade = bytes.length;
  await waitFor(() => bytes.length > afterUpgrade, 3000, "WELCOME");
  sock.pause();
  const frames = () => bytes.subarray(bytes.indexOf("\r\n\r\n") + 4);
  const closeFrame = async () => {
    sock.resume();
    await waitFor(() => findClose(frames()), 10_000, "the close frame");
    return findClose(frames()) as { code: number; reason: string };
  };
  return { sock, closeFrame };
}

/** @returns the code and reason of the close frame among a server's (unmasked) frames, once it has come */
function findClose(frames: Buffer): { code: number; reason: string } | null {
  for (let at = 0; at + 2 <= frames.length; ) {
    let length = frames[at + 1] as number;
    let start = at + 2;
    if (length === 126) [length, start] = [frames.readUInt16BE(at + 2), at + 4];
    else if (length === 127) [length, start] = [Number(frames.readBigUInt64BE(at + 2)), at + 10];
    if (start + length > frames.length) return null;
    if (((frames[at] as number) & 0x0f) === 0x8) {
      return { code: frames.readUInt16BE(start), reason: frames.subarray(start + 2, start + length).toString() };
    }
    at = start + length;
  }
  return null;
}

describe("upgrade", () => {
  test("a request that is no WebSocket upgrade gets 426", async () => {
    const res = await fetch(url.replace("ws:", "http:"));
    expect(res.status).toBe(426);
    expect(res.headers.get("upgrade")).toBe("websocket");
  });

  test("an upgrade Deno cannot accept (no Sec-WebSocket-Key) gets 400, and the server carries on", async () => {
    const request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    expect(await status(request)).toBe(400);
    expect(await (await client()).call(ADD, { a: 1, b: 2 })).toBe(3);
  });
});

describe("limits", () => {
  test("a message over maxMessageBytes closes with 1009, a malformed one with 1002; others carry on", async () => {
    const good = await client();
    const big = await rawSocket(url);
    big.send(new Uint8Array(16 * 1024));
    expect((await big.closed).code).toBe(1009);
    const bad = await rawSocket(url);
    bad.send(new Uint8Array([0xc1, 0xff, 0x00]));
    const closed = await bad.closed;
    expect(closed.code).toBe(1002);
    expect(closed.reason).toContain("malformed frame");
    expect(await good.call(ADD, { a: 2, b: 2 })).toBe(4);
  });

  test("a client that stops reading is closed with 4003; a subscriber that reads gets every broadcast", async () => {
    const fast = await client();
    let chunks = 0;
    fast.on(CHUNK, () => void chunks++);
    const stalled = await stalledClient();
    // 200 broadcasts of 64 KiB: far past maxBufferedBytes and what the kernel buffers for the stalled one.
    expect(await fast.call(FLOOD, { count: 200, bytes: 64 * 1024 })).toBe(200);
    await waitFor(() => chunks === 200, 5000, "every broadcast");
    expect(await stalled.closeFrame()).toEqual({ code: 4003, reason: "slow consumer: more than 1048576 bytes waiting" });
    stalled.sock.destroy();
    expect(fast.state).toBe(ConnectionState.Connected);
    expect(await fast.call(ADD, { a: 3, b: 4 })).toBe(7);
  }, 20_000);
});

describe("drain", () => {
  test("a burst of calls from the server, 12.5 MiB in all, waits out backpressure and completes on one socket", async () => {
    const c = await client();
    c.on(BLOB, (blob) => blob.byteLength);
    const states: ConnectionState[] = [];
    c.onStateChange((state) => void states.push(state));
    // Past the high-water mark the adapter reports "queued" and the rest are held until the poll sees the drain;
    // without the drain they would hang, and without the hold the socket would pass maxBufferedBytes and be closed.
    expect(await c.call(BURST, { count: 200, bytes: 64 * 1024 }, { timeout: 15_000 })).toBe(200 * 64 * 1024);
    expect(states).toEqual([]);
  }, 20_000);
});
