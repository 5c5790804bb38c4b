import { afterEach, describe, expect, jest, spyOn, test } from "bun:test";
import { awaitingPong } from "../src/client/internal.ts";
import { backoffDelay } from "../src/client/state.ts";
import { ConnectionState, createClient } from "../src/index.ts";
import { decodeFrames, encodeFrame, FrameType } from "../src/wire/frames.ts";
import { exitWithin, startServer, type TestServer, waitFor, waitForState, withFakeTimers } from "./helpers.ts";
import { peerOf } from "./internals.ts";
import { ADD, ECHO, SLOW } from "./procs.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
afterEach(() => srv?.stop());

/** Restarts the Bun server on the same port, as a redeploy would. */
function restart(s: TestServer<unknown>) {
  const port = s.bun.port;
  s.bun.stop(true);
  return () => {
    s.bun = Bun.serve({
      port,
      hostname: "127.0.0.1",
      fetch: (req, server) => s.chatter.upgrade(req, server),
      websocket: s.chatter.websocket,
    });
  };
}

describe("identity", () => {
  test("clientId and sessionId are UUIDs; each client has its own session", async () => {
    srv = startServer();
    const a = await srv.client();
    const b = await srv.client();
    expect(a.clientId).toMatch(UUID);
    expect(a.sessionId).toMatch(UUID);
    expect(a.sessionId).not.toBe(b.sessionId);
    expect(srv.chatter.find((c) => c.sessionId === a.sessionId)?.clientId).toBe(a.clientId);
  });

  test("clientId is kept in localStorage where one exists", async () => {
    const store = new Map<string, string>();
    const g = globalThis as { localStorage?: unknown };
    g.localStorage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => store.set(k, v) };
    try {
      srv = startServer();
      const a = await srv.client();
      const b = await srv.client();
      expect(store.get("chatter:clientId")).toBe(a.clientId);
      expect(store.get("chatter:clientKey")).toBe(a.clientKey as string);
      expect(b.clientId).toBe(a.clientId);
      expect(b.sessionId).not.toBe(a.sessionId);
    } finally {
      delete g.localStorage;
    }
  });

  test("without localStorage each process gets a fresh id; clientId with its clientKey keeps it across runs", async () => {
    srv = startServer();
    const a = await srv.client();
    expect(a.clientKey).toEqual(expect.any(String));
    const { clientId, clientKey } = a;
    a.close();
    const again = await srv.client({ clientId, clientKey: clientKey as string });
    expect(again.clientId).toBe(clientId);
    expect(srv.chatter.find((c) => c.clientId === clientId && c.isConnected)).toBeDefined();
  });

  test("a client id without its key is only a proposal: the server assigns a fresh one", async () => {
    srv = startServer();
    const a = await srv.client({ clientId: "device-7" });
    expect(a.clientId).not.toBe("device-7");
    expect(a.clientId).toMatch(UUID);
    expect(srv.chatter.find((c) => c.clientId === "device-7")).toBeUndefined();
  });
});

describe("state", () => {
  test("moves Connecting -> Connected; onStateChange reports it and unsubscribes", async () => {
    srv = startServer();
    const client = createClient({ url: srv.url });
    const states: ConnectionState[] = [];
    const off = client.onStateChange((s) => void states.push(s));
    expect(client.state).toBe(ConnectionState.Connecting);
    expect(client.isConnected).toBe(false);
    await waitForState(client, ConnectionState.Connected);
    expect(client.isConnected).toBe(true);
    off();
    client.close();
    expect(states).toEqual([ConnectionState.Connected]);
    expect(client.state).toBe(ConnectionState.Disconnected);
  });

  test("a failing async state listener is reported, not thrown", async () => {
    srv = startServer();
    const errors = spyOn(console, "error").mockImplementation(() => {});
    const client = createClient({ url: srv.url });
    const off = client.onStateChange(async () => {
      throw new Error("listener broke");
    });
    await waitForState(client, ConnectionState.Connected);
    await waitFor(() => errors.mock.calls.length > 0);
    expect(String(errors.mock.calls[0])).toContain("state listener failed");
    off();
    client.close();
    errors.mockRestore();
  });
});

describe("client.on", () => {
  test("the server calls a client handler, which gets the input and the client", async () => {
    srv = startServer();
    const client = await srv.client();
    client.on(ECHO, (x, c) => ({ x, same: c === client }));
    const conn = srv.chatter.find(() => true);
    expect(await conn?.call(ECHO, [1, 2])).toEqual({ x: [1, 2], same: true });
  });

  test("returns a function that removes the handler", async () => {
    srv = startServer();
    const client = await srv.client();
    const off = client.on(ECHO, (x) => x);
    off();
    await expect(srv.chatter.find(() => true)!.call(ECHO, 1)).rejects.toMatchObject({ code: "NOT_IMPLEMENTED" });
  });
});

describe("reconnect", () => {
  test("comes back after a server restart, and queued calls go out then", async () => {
    srv = startServer();
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    const client = await srv.client();
    const states: ConnectionState[] = [];
    client.onStateChange((s) => void states.push(s));
    const start = restart(srv);
    await waitForState(client, ConnectionState.Disconnected);
    const queued = client.call(ADD, { a: 20, b: 22 });
    start();
    expect(await queued).toBe(42);
    expect(states[0]).toBe(ConnectionState.Disconnected);
    expect(states.at(-1)).toBe(ConnectionState.Connected);
  });

  test("the offline queue is bounded: a call that does not fit fails at once", async () => {
    srv = startServer();
    const client = await srv.client({ maxQueue: 2 });
    const start = restart(srv);
    await waitForState(client, ConnectionState.Disconnected);
    const a = client.call(ECHO, 1);
    const b = client.call(ECHO, 2);
    await expect(client.call(ECHO, 3)).rejects.toMatchObject({
      code: "LIMIT",
      message: expect.stringContaining("offline queue is full (2 calls)"),
    });
    srv.chatter.on(ECHO, (x) => x);
    start();
    expect(await Promise.all([a, b])).toEqual([1, 2]);
  });

  test("a queued call whose timeout fired is never sent later", async () => {
    srv = startServer();
    let runs = 0;
    srv.chatter.on(SLOW, () => {
      runs++;
      return "ran";
    });
    const client = await srv.client();
    const start = restart(srv);
    await waitForState(client, ConnectionState.Disconnected);
    await expect(client.call(SLOW, 1, { timeout: 20 })).rejects.toMatchObject({ code: "TIMEOUT" });
    start();
    await waitForState(client, ConnectionState.Connected);
    expect(await client.call(SLOW, 2)).toBe("ran");
    expect(runs).toBe(1);
  });

  test("reconnect: false stays disconnected", async () => {
    srv = startServer();
    await withFakeTimers(async () => {
      const client = await srv.client({ reconnect: false });
      srv.chatter.find(() => true)?.close(1011, "bye");
      await waitForState(client, ConnectionState.Disconnected);
      // Any reconnect timer would fire in this minute and start connecting at once.
      jest.advanceTimersByTime(60_000);
      expect(client.state).toBe(ConnectionState.Disconnected);
    });
  });

  test("backoff grows exponentially, is capped, and is jittered", () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(30_000, 250 * 2 ** attempt);
      const samples = Array.from({ length: 50 }, () => backoffDelay(attempt, 250, 30_000));
      expect(Math.min(...samples)).toBeGreaterThanOrEqual(ceiling / 2);
      expect(Math.max(...samples)).toBeLessThanOrEqual(ceiling);
      expect(new Set(samples).size).toBeGreaterThan(1);
    }
  });

  test("an `online` event on window reconnects at once instead of waiting out the backoff", async () => {
    const g = globalThis as { window?: EventTarget };
    g.window = new EventTarget();
    try {
      srv = startServer();
      await withFakeTimers(async () => {
        const client = await srv.client({ reconnect: { minDelay: 60_000, maxDelay: 60_000 } });
        const start = restart(srv);
        await waitForState(client, ConnectionState.Disconnected);
        start();
        // The jittered backoff is at least 30 s: short of that, the server being back changes nothing.
        jest.advanceTimersByTime(29_000);
        expect(client.state).toBe(ConnectionState.Disconnected);
        g.window?.dispatchEvent(new Event("online"));
        await waitForState(client, ConnectionState.Connected, 2000);
      });
    } finally {
      delete g.window;
    }
  });

  test("verbose logging says what happened and why", async () => {
    srv = startServer();
    const logs: string[] = [];
    const spy = spyOn(console, "log").mockImplementation((...args: unknown[]) => void logs.push(args.join(" ")));
    try {
      const client = await srv.client({ verbose: true });
      srv.chatter.find(() => true)?.close(1011, "maintenance");
      await waitFor(() => logs.some((l) => l.includes("reconnecting in")));
      await waitForState(client, ConnectionState.Connected);
    } finally {
      spy.mockRestore();
    }
    expect(logs.find((l) => l.includes("reconnecting in"))).toContain("disconnected (1011 maintenance)");
    expect(logs.some((l) => l.startsWith("[chatter] client: handshake done"))).toBe(true);
  });
});

test("a socket that never completes its handshake is dropped after connectTimeout and retried", async () => {
  // A TCP server that accepts and never answers: the WebSocket upgrade hangs.
  let accepted = 0;
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: () => void accepted++, data() {} } });
  const client = createClient({ url: `ws://127.0.0.1:${silent.port}`, connectTimeout: 100, reconnect: { minDelay: 10, maxDelay: 20 } });
  const states: ConnectionState[] = [];
  client.onStateChange((s) => void states.push(s));
  try {
    await waitFor(() => accepted >= 2, 3000, "a second attempt");
    expect(states).toContain(ConnectionState.Disconnected);
    expect(client.isConnected).toBe(false);
  } finally {
    client.close();
    silent.stop(true);
  }
});

describe("keepalive", () => {
  test("pings every pingInterval and stays up while pongs come back", async () => {
    srv = startServer();
    let pings = 0;
    await withFakeTimers(async () => {
      const client = await srv.client({ pingInterval: 15 });
      const conn = srv.chatter.find(() => true)!;
      const peer = peerOf(conn);
      const receive = peer.receive.bind(peer);
      peer.receive = (f) => {
        if (f[0] === FrameType.Ping) pings++;
        receive(f);
      };
      for (let i = 1; i <= 3; i++) {
        jest.advanceTimersByTime(15_000);
        await waitFor(() => pings === i, 2000, `ping ${i}`);
        await waitFor(() => !awaitingPong(client), 2000, `pong ${i}`);
      }
      expect(client.isConnected).toBe(true);
    });
  });

  test("drops a socket whose pong never comes, with close code 4002", async () => {
    // A server that completes the handshake and never answers pings.
    let pings = 0;
    const closes: number[] = [];
    const mute = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (req, server) => (server.upgrade(req) ? undefined : new Response("no", { status: 400 })),
      websocket: {
        message(ws, msg) {
          for (const frame of decodeFrames(msg as Uint8Array)) {
            if (frame[0] === FrameType.Hello) ws.send(encodeFrame([FrameType.Welcome, frame[3], "t", false, 1, 1 << 20]));
            if (frame[0] === FrameType.Ping) pings++;
          }
        },
        close: (_ws, code) => void closes.push(code),
      },
    });
    try {
      await withFakeTimers(async () => {
        const client = createClient({ url: `ws://127.0.0.1:${mute.port}`, pingInterval: 15, reconnect: false });
        await waitForState(client, ConnectionState.Connected);
        jest.advanceTimersByTime(15_000);
        await waitFor(() => pings === 1);
        expect(client.isConnected).toBe(true);
        jest.advanceTimersByTime(15_000);
        expect(client.state).toBe(ConnectionState.Disconnected);
        await waitFor(() => closes.length === 1);
        expect(closes).toEqual([4002]);
        client.close();
      });
    } finally {
      mute.stop(true);
    }
  });
});

test("close() cancels every timer, so the process can exit", async () => {
  srv = startServer();
  const script = `
    import { createClient } from "${import.meta.dir}/../src/index.ts";
    const up = createClient({ url: "${srv.url}", pingInterval: 1 });
    const down = createClient({ url: "ws://127.0.0.1:1", reconnect: { minDelay: 10000, maxDelay: 10000 } });
    await new Promise((r) => up.onStateChange((s) => s === "connected" && r()));
    up.call({ name: "never", takes: null, returns: null, timeout: 60000 }).catch(() => {});
    up.close(); down.close();
    console.log("closed");
  `;
  const proc = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe" });
  const exited = await exitWithin(proc, 5000);
  expect(exited).toBe(0);
  expect(await new Response(proc.stdout).text()).toBe("closed\n");
});
