/** Shared test helpers: real Bun servers on port 0, real clients, raw sockets. */
import { jest } from "bun:test";
import { createServer as createHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type ChatterClient,
  type ChatterServer,
  type ClientOptions,
  ConnectionState,
  createClient,
  createServer,
  type ServerOptions,
} from "../src/index.ts";
import { attach } from "../src/node.ts";
import { decodeFrames, encodeFrame, type Frame, FrameType, PROTOCOL_VERSION, type Refusal } from "../src/wire/frames.ts";

export type TestServer<TData> = Awaited<ReturnType<typeof startServer<TData>>>;

/** Starts a Chatter server on Bun, on a free port. */
export function startServer<TData = unknown>(options: ServerOptions<TData> = {}) {
  const chatter = createServer<TData>(options);
  const bun = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req, server) {
      return chatter.upgrade(req, server);
    },
    websocket: chatter.websocket,
  });
  const url = `ws://127.0.0.1:${bun.port}`;
  const clients: ChatterClient[] = [];
  return {
    chatter,
    bun,
    url,
    /** A client that is connected by the time it is returned. */
    async client(options: Partial<ClientOptions> = {}): Promise<ChatterClient> {
      const client = createClient({ url, reconnect: { minDelay: 20, maxDelay: 200 }, ...options });
      clients.push(client);
      await waitForState(client, ConnectionState.Connected);
      return client;
    },
    async stop() {
      for (const c of clients) c.close();
      bun.stop(true);
    },
  };
}

/**
 * Serves a Chatter server through the Node adapter (`chatter/node`'s attach to a `node:http` server), on a free port.
 * @returns its port and WebSocket URL, and `close`, which detaches at once and closes the HTTP server
 */
export async function serveOnNode(chatter: ChatterServer<unknown>) {
  const http = createHttpServer();
  const attachment = attach(chatter, http);
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const port = (http.address() as AddressInfo).port;
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    async close() {
      await attachment.close({ timeout: 0 });
      http.close();
    },
  };
}

let fakeTime = false;

/** Runs `fn` under fake timers; waitFor keeps working on real time meanwhile. */
export async function withFakeTimers(fn: () => Promise<void>): Promise<void> {
  jest.useFakeTimers();
  fakeTime = true;
  try {
    await fn();
  } finally {
    fakeTime = false;
    jest.useRealTimers();
  }
}

/**
 * Resolves when `check` holds (it may be async, and is asked again until it does); fails after `ms` of real time.
 * @param every - ms between two asks; raise it where asking has a cost (a call that sends something)
 */
export async function waitFor(check: () => unknown, ms = 3000, what = "condition", every = 5): Promise<void> {
  const deadline = Bun.nanoseconds() + ms * 1e6;
  while (!(await check())) {
    if (Bun.nanoseconds() > deadline) throw new Error(`timed out waiting for ${what}`);
    // The one poll interval in the tests. Under fake timers Bun.sleep never wakes, but setImmediate still lets socket I/O run.
    await (fakeTime ? nextTurn() : Bun.sleep(every));
  }
}

/** One turn of the event loop: lets work queued for a later task run. It waits for no amount of time. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Holds handlers until the test lets them go, so a call is surely running, or surely finished, when the test
 * acts. A handler awaits `wait()`; `entered` resolves once one has; `release()` lets every held and later one on.
 */
export function hold() {
  const entered = Promise.withResolvers<void>();
  const released = Promise.withResolvers<void>();
  return {
    entered: entered.promise,
    wait(): Promise<void> {
      entered.resolve();
      return released.promise;
    },
    release: () => released.resolve(),
  };
}

/** Waits for a process to exit, and kills it if it has not after `ms`. @returns its exit code, or "hung" */
export async function exitWithin(proc: { exited: Promise<number>; kill(): void }, ms: number): Promise<number | "hung"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<"hung">((resolve) => {
    timer = setTimeout(() => resolve("hung"), ms);
  });
  const code = await Promise.race([proc.exited, hung]);
  clearTimeout(timer);
  if (code === "hung") proc.kill();
  return code;
}

export function waitForState(client: ChatterClient, state: ConnectionState, ms = 3000): Promise<void> {
  return waitFor(() => client.state === state, ms, `state ${state}`);
}

/** A bare WebSocket speaking frames by hand, to send what a real client never would. */
export async function rawSocket(url: string, hello = true, claim: { clientId?: string; sessionId?: string; clientKey?: string } = {}) {
  const claimed = claim.clientId ?? "raw-client";
  const ws = new WebSocket(`${url}/?cid=${claimed}`);
  ws.binaryType = "arraybuffer";
  const inbox: Frame[] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.onclose = (ev) => resolve({ code: ev.code, reason: ev.reason });
  });
  // The server may batch several frames into one message.
  ws.onmessage = (ev) => inbox.push(...decodeFrames(new Uint8Array(ev.data as ArrayBuffer)));
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const raw = {
    ws,
    inbox,
    closed,
    /** The client id the server assigned in WELCOME (the raw socket claims "raw-client" but cannot prove it). */
    clientId: "",
    send(frame: Frame | Uint8Array | string) {
      ws.send(typeof frame === "string" || frame instanceof Uint8Array ? frame : encodeFrame(frame));
    },
    /** The next frame of a type, waiting for it; fails at once if the socket closes first. */
    async next(type: number): Promise<Frame> {
      await waitFor(
        () => {
          if (inbox.some((f) => f[0] === type)) return true;
          if (ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed before a frame of type ${type} came`);
        },
        3000,
        `frame type ${type}`,
      );
      const i = inbox.findIndex((f) => f[0] === type);
      return inbox.splice(i, 1)[0] as Frame;
    },
  };
  if (hello) {
    const sessionId = claim.sessionId ?? crypto.randomUUID();
    raw.send([FrameType.Hello, PROTOCOL_VERSION, claimed, sessionId, null, 0, 1, claim.clientKey ?? null]);
    raw.clientId = (await raw.next(FrameType.Welcome))[6] as string;
  }
  return raw;
}

/** Records what a client-side handler receives. */
export function recorder<T>() {
  const seen: T[] = [];
  return { seen, handler: (input: T) => void seen.push(input) };
}

/** What an upgrade got: its HTTP status, and the REFUSED frame the server sent after a 101, if it did. */
export interface UpgradeOutcome {
  status: number;
  refusal: Refusal | null;
}

/**
 * Sends a WebSocket upgrade request by hand. A refused connection is upgraded and then told why (a browser
 * cannot read an upgrade's HTTP status), so after a 101 this waits briefly for a REFUSED frame.
 * @returns the HTTP status, or the refusal's code when the server refused after the 101
 */
export async function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number | string> {
  const outcome = await upgradeOutcome(url, headers);
  return outcome.refusal?.code ?? outcome.status;
}

/** Sends a WebSocket upgrade request by hand. @returns its status and any REFUSED frame that followed */
export async function upgradeOutcome(url: string, headers: Record<string, string> = {}): Promise<UpgradeOutcome> {
  const { hostname, port, pathname, searchParams } = new URL(url);
  if (!searchParams.has("cid")) searchParams.set("cid", "probe");
  const lines = [
    `GET ${pathname}?${searchParams} HTTP/1.1`,
    `Host: ${hostname}:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  const { promise, resolve, reject } = Promise.withResolvers<UpgradeOutcome>();
  let bytes = Buffer.alloc(0);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const sock = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data(s, chunk) {
        bytes = Buffer.concat([bytes, chunk]);
        const end = bytes.indexOf("\r\n\r\n");
        if (end < 0) return;
        const status = Number(/^HTTP\/1\.1 (\d+)/.exec(bytes.toString("latin1"))?.[1]);
        const done = (refusal: Refusal | null) => {
          clearTimeout(timer);
          resolve({ status, refusal });
          s.end();
        };
        if (status !== 101) return done(null);
        const refusal = refusalIn(bytes.subarray(end + 4));
        if (refusal) return done(refusal);
        timer ??= setTimeout(() => done(null), 100);
      },
      close: () => reject(new Error("closed without a response")),
    },
  });
  sock.write(`${lines.join("\r\n")}\r\n\r\n`);
  return promise;
}

/** @returns the REFUSED frame in the first server WebSocket frame of `data`, once it is complete, or null */
function refusalIn(data: Buffer): Refusal | null {
  if (data.length < 2 || (data[0] as number) !== 0x82) return null;
  let length = (data[1] as number) & 0x7f;
  let at = 2;
  if (length === 126) {
    length = data.readUInt16BE(2);
    at = 4;
  }
  if (data.length < at + length) return null;
  const [frame] = decodeFrames(data.subarray(at, at + length));
  return frame?.[0] === FrameType.Refused ? frame[1] : null;
}

/**
 * Cuts every connection through a proxy (test/proxy.ts) after a random `min` to `min + spread` reads of
 * traffic, again and again, so cuts land at points in the traffic rather than in time.
 * @returns a function that stops the cutting; it resolves once the cutter is done
 */
export function cutAtRandom(proxy: { readonly chunks: number; cutAll(): void }, min = 10, spread = 50): () => Promise<void> {
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      const at = proxy.chunks + min + Math.floor(Math.random() * spread);
      await waitFor(() => stopped || proxy.chunks >= at, 20_000, "traffic to cut", 1);
      if (!stopped) proxy.cutAll();
    }
  })();
  return async () => {
    stopped = true;
    await done;
  };
}
