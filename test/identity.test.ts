/**
 * Client ids are proven, not claimed: an impostor who knows a victim's id
 * (it is not a secret) never receives or answers calls meant for the victim,
 * whenever it connects. Session ids are always the server's own.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { z } from "zod";
import { createProc, createServer } from "../src/index.ts";
import { FrameType } from "../src/wire/frames.ts";
import { rawSocket, startServer, type TestServer, waitFor } from "./helpers.ts";
import { tcpProxy } from "./proxy.ts";

// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
afterEach(() => srv?.stop());

const WHO = createProc({ name: "who", takes: z.string(), returns: z.string() });

/** A victim client that answers WHO, and its proven id. */
async function victim(options: Parameters<TestServer<unknown>["client"]>[0] = {}) {
  const client = await srv.client(options);
  client.on(WHO, (q) => `victim: ${q}`);
  return client;
}

describe("client ids", () => {
  test("an impostor claiming a connected victim's id gets a fresh id; callClient reaches only the victim", async () => {
    srv = startServer();
    const v = await victim();
    const impostor = await rawSocket(srv.url, true, { clientId: v.clientId });
    expect(impostor.clientId).not.toBe(v.clientId);
    expect(await srv.chatter.callClient(v.clientId, WHO, "one")).toBe("victim: one");
    expect(impostor.inbox.some((f) => f[0] === FrameType.Call)).toBe(false);
  });

  test("an impostor that connected before the victim's current session does not get its calls", async () => {
    srv = startServer();
    const first = await victim();
    const { clientId, clientKey } = first;
    first.close();
    await waitFor(() => srv.chatter.connections.size === 0);
    const impostor = await rawSocket(srv.url, true, { clientId });
    const again = await victim({ clientId, clientKey: clientKey as string });
    expect(again.clientId).toBe(clientId);
    expect(await srv.chatter.callClient(clientId, WHO, "two")).toBe("victim: two");
    expect(impostor.inbox.some((f) => f[0] === FrameType.Call)).toBe(false);
  });

  test("while the victim is parked (socket dropped, session kept), calls wait for it, not for an impostor", async () => {
    srv = startServer();
    const proxy = await tcpProxy(srv.bun.port as number);
    try {
      const v = await victim({ url: `ws://127.0.0.1:${proxy.port}` });
      proxy.refuse(true);
      proxy.cutAll();
      await waitFor(() => [...srv.chatter.connections].some((c) => !c.isConnected), 3000, "the victim to be parked");
      const impostor = await rawSocket(srv.url, true, { clientId: v.clientId });
      const answer = srv.chatter.callClient(v.clientId, WHO, "three");
      // A round trip on the impostor's socket: a CALL the server had sent it would have come before the PONG.
      impostor.send([FrameType.Ping, 0]);
      await impostor.next(FrameType.Pong);
      expect(impostor.inbox.some((f) => f[0] === FrameType.Call)).toBe(false);
      proxy.refuse(false);
      expect(await answer).toBe("victim: three");
      expect(impostor.inbox.some((f) => f[0] === FrameType.Call)).toBe(false);
    } finally {
      proxy.stop();
    }
  });

  test("a forged key is no proof", async () => {
    srv = startServer();
    const v = await victim();
    const forger = await rawSocket(srv.url, true, { clientId: v.clientId, clientKey: (v.clientKey as string).replace(/^./, "A") });
    expect(forger.clientId).not.toBe(v.clientId);
  });

  test("servers with the same secret accept each other's ids; with another secret the id is replaced", async () => {
    srv = startServer({ secret: "s".repeat(32) });
    const a = await victim();
    const other = startServer({ secret: "s".repeat(32) });
    const stranger = startServer({ secret: "t".repeat(32) });
    try {
      const same = await other.client({ clientId: a.clientId, clientKey: a.clientKey as string });
      expect(same.clientId).toBe(a.clientId);
      const fresh = await stranger.client({ clientId: a.clientId, clientKey: a.clientKey as string });
      expect(fresh.clientId).not.toBe(a.clientId);
    } finally {
      other.stop();
      stranger.stop();
    }
  });
});

describe("session ids", () => {
  test("a proposed session id is never taken, even a free one: the server makes its own", async () => {
    srv = startServer();
    const raw = await rawSocket(srv.url, false);
    raw.send([FrameType.Hello, 1, "raw-client", "my-own-session", null, 0, 1]);
    const welcome = await raw.next(FrameType.Welcome);
    expect(welcome[1]).not.toBe("my-own-session");
    expect(srv.chatter.find((c) => c.sessionId === "my-own-session")).toBeUndefined();
  });
});

test("a secret shorter than 32 bytes is refused: an empty or guessable key would let anyone sign ids", () => {
  expect(() => createServer({ secret: "" })).toThrow(/at least 32 bytes/);
  expect(() => createServer({ secret: "short" })).toThrow(/at least 32 bytes/);
  expect(() => createServer({ secret: "x".repeat(32) })).not.toThrow();
});
