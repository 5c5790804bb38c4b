/** Sessions that survive a dropped socket: resume, exactly-once calls, missed broadcasts, and their limits. */
import { afterEach, describe, expect, test } from "bun:test";
import { ConnectionState, type ServerConnection } from "../src/index.ts";
import { CloseCode, FrameType, PROTOCOL_VERSION } from "../src/wire/frames.ts";
import { hold, rawSocket, recorder, startServer, type TestServer, waitFor, waitForState } from "./helpers.ts";
import { ECHO, NOTE, SLOW, WHOAMI } from "./procs.ts";
import { tcpProxy } from "./proxy.ts";

// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
let proxy: Awaited<ReturnType<typeof tcpProxy>> | undefined;
afterEach(() => {
  proxy?.stop();
  proxy = undefined;
  srv?.stop();
});

const only = () => srv.chatter.find(() => true) as ServerConnection<unknown>;

/** A client that reaches the server through a proxy we can cut. */
async function viaProxy(options: Parameters<TestServer<unknown>["client"]>[0] = {}) {
  proxy = await tcpProxy(srv.bun.port as number);
  return srv.client({ url: proxy.url, reconnect: { minDelay: 5, maxDelay: 20 }, ...options });
}

/** Cuts the network and keeps it down until `up()`. */
async function outage(client: { state: ConnectionState }) {
  proxy!.refuse(true);
  proxy!.cutAll();
  await waitForState(client as never, ConnectionState.Disconnected);
  await waitFor(() => !only()?.isConnected, 3000, "server to notice");
  return () => proxy!.refuse(false);
}

describe("resume", () => {
  test("a dropped client resumes its session: same connection, data and subscriptions; no second onOpen", async () => {
    const hooks: string[] = [];
    srv = startServer({
      getConnectionData: () => ({ user: "ann" }),
      onOpen: (c) => {
        hooks.push("open");
        c.subscribe("room");
      },
      onClose: () => void hooks.push("close"),
    });
    srv.chatter.on(WHOAMI, (_i, c) => c.data);
    const client = await viaProxy();
    const conn = only();
    const sessionId = client.sessionId;
    const up = await outage(client);
    up();
    await waitForState(client, ConnectionState.Connected);
    expect(client.resumed).toBe(true);
    expect(client.sessionId).toBe(sessionId);
    expect(only()).toBe(conn);
    expect(conn.isSubscribed("room")).toBe(true);
    expect(await client.call(WHOAMI)).toEqual({ user: "ann" });
    expect(hooks).toEqual(["open"]);
  });

  test("with a tiny maxMessageBytes the resume HELLO (token and key) still fits: the session resumes", async () => {
    srv = startServer({ maxMessageBytes: 100 });
    srv.chatter.on(ECHO, (x) => x);
    const client = await viaProxy();
    const up = await outage(client);
    up();
    await waitForState(client, ConnectionState.Connected);
    expect(client.resumed).toBe(true);
    expect(await client.call(ECHO, "small")).toBe("small");
    await expect(client.call(ECHO, "x".repeat(200))).rejects.toMatchObject({ code: "LIMIT" });
  });

  test("a session id without its token gets a new session, not the old one", async () => {
    srv = startServer({ getConnectionData: (i) => ({ who: i.clientId }) });
    const victim = await srv.client({ clientId: "victim" });
    const raw = await rawSocket(srv.url, false);
    raw.send([FrameType.Hello, PROTOCOL_VERSION, "thief", victim.sessionId, null, 0, 1]);
    const welcome = await raw.next(FrameType.Welcome);
    expect(welcome[1]).not.toBe(victim.sessionId);
    expect(welcome[3]).toBe(false);
    const forged = await rawSocket(srv.url, false);
    forged.send([FrameType.Hello, PROTOCOL_VERSION, "thief", victim.sessionId, "guessed-token", 0, 1]);
    expect((await forged.next(FrameType.Welcome))[1]).not.toBe(victim.sessionId);
    const session = srv.chatter.find((c) => c.sessionId === victim.sessionId);
    expect(session?.data).toEqual({ who: "victim" });
    expect(session?.isConnected).toBe(true);
  });

  test("a stale socket's late close does not end a session that resumed elsewhere", async () => {
    let closes = 0;
    srv = startServer({ onClose: () => void closes++ });
    const first = await rawSocket(srv.url, false);
    first.send([FrameType.Hello, PROTOCOL_VERSION, "c", "s-1", null, 0, 1]);
    const [, sessionId, token] = await first.next(FrameType.Welcome);
    const second = await rawSocket(srv.url, false);
    second.send([FrameType.Hello, PROTOCOL_VERSION, "c", sessionId as string, token as string, 0, 1]);
    expect((await second.next(FrameType.Welcome))[3]).toBe(true);
    expect((await first.closed).code).toBe(CloseCode.Replaced);
    // Bun counts a socket out only after its close handler ran: the late close has been handled.
    await waitFor(() => srv.bun.pendingWebSockets === 1, 3000, "the server to handle the old socket's close");
    expect(closes).toBe(0);
    expect(only().isConnected).toBe(true);
    second.send([FrameType.Ping, 0]);
    await second.next(FrameType.Pong);
  });

  test("past the resume window the session ends; the client gets a fresh one and a reset signal", async () => {
    const closes: number[] = [];
    srv = startServer({ resumeWindow: 50, onClose: (_c, code) => void closes.push(code) });
    const slow = hold(); // never released: the call is in flight when the session ends
    srv.chatter.on(SLOW, async () => {
      await slow.wait();
      return "done";
    });
    const client = await viaProxy();
    let resets = 0;
    client.onReset(() => void resets++);
    const oldSession = client.sessionId;
    const inFlight = client.call(SLOW, 0).catch((e) => e);
    await slow.entered;
    const up = await outage(client);
    await waitFor(() => closes.length === 1, 2000, "session to end");
    up();
    await waitForState(client, ConnectionState.Connected);
    expect(client.resumed).toBe(false);
    expect(resets).toBe(1);
    expect(client.sessionId).not.toBe(oldSession);
    expect(await inFlight).toMatchObject({ code: "DISCONNECTED", message: expect.stringContaining("may or may not have run") });
  });

  test("resumeWindow: 0 turns resume off", async () => {
    let closes = 0;
    srv = startServer({ resumeWindow: 0, onClose: () => void closes++ });
    const client = await viaProxy();
    proxy!.cutAll();
    await waitFor(() => closes === 1);
    await waitForState(client, ConnectionState.Connected);
    expect(client.resumed).toBe(false);
  });
});

describe("exactly once", () => {
  test("a call in flight when the socket drops stays pending, runs once, and answers once", async () => {
    srv = startServer();
    let runs = 0;
    const slow = hold();
    const finished = Promise.withResolvers<void>();
    srv.chatter.on(SLOW, async () => {
      runs++;
      await slow.wait();
      finished.resolve();
      return "finished";
    });
    const client = await viaProxy();
    const call = client.call(SLOW, 0);
    await slow.entered;
    const up = await outage(client);
    slow.release();
    await finished.promise; // the handler finishes while the client is away
    up();
    expect(await call).toBe("finished");
    expect(runs).toBe(1);
  });

  test("server-to-client calls made while the client is away go out when it resumes", async () => {
    srv = startServer();
    const client = await viaProxy();
    let runs = 0;
    client.on(ECHO, (x) => {
      runs++;
      return x;
    });
    const conn = only();
    const up = await outage(client);
    const call = conn.call(ECHO, "while away");
    expect(runs).toBe(0); // the network is down: nothing can reach the client before up()
    up();
    expect(await call).toBe("while away");
    expect(runs).toBe(1);
  });

  test("a call whose timeout fires while away is never run after the resume", async () => {
    srv = startServer();
    let runs = 0;
    srv.chatter.on(SLOW, () => {
      runs++;
      return "ran";
    });
    const client = await viaProxy();
    const up = await outage(client);
    await expect(client.call(SLOW, 1, { timeout: 30 })).rejects.toMatchObject({ code: "TIMEOUT" });
    up();
    await waitForState(client, ConnectionState.Connected);
    expect(await client.call(SLOW, 2)).toBe("ran");
    expect(runs).toBe(1);
  });

  test("a handler whose caller timed out while away is aborted on resume", async () => {
    srv = startServer();
    let signal: AbortSignal | undefined;
    srv.chatter.on(SLOW, (_ms, _c, ctx) => {
      signal = ctx.signal;
      return new Promise<string>(() => {});
    });
    const client = await viaProxy();
    const call = client.call(SLOW, 1, { timeout: 80 });
    await waitFor(() => signal);
    const up = await outage(client);
    await expect(call).rejects.toMatchObject({ code: "TIMEOUT" });
    expect(signal?.aborted).toBe(false);
    up();
    await waitFor(() => signal?.aborted, 3000, "the CANCEL after resume");
  });
});

describe("missed broadcasts", () => {
  test("broadcasts sent while away arrive after the resume, once and in order", async () => {
    srv = startServer({ onOpen: (c) => c.subscribe("room") });
    const client = await viaProxy();
    const rec = recorder<string>();
    client.on(NOTE, rec.handler);
    srv.chatter.broadcast("room", NOTE, "before");
    await waitFor(() => rec.seen.length === 1);
    const up = await outage(client);
    for (let i = 0; i < 5; i++) srv.chatter.broadcast("room", NOTE, `away ${i}`);
    srv.chatter.broadcast("other", NOTE, "not mine");
    up();
    await waitForState(client, ConnectionState.Connected);
    srv.chatter.broadcast("room", NOTE, "after");
    await waitFor(() => rec.seen.includes("after"));
    expect(rec.seen).toEqual(["before", "away 0", "away 1", "away 2", "away 3", "away 4", "after"]);
  });

  test("only broadcasts the session was subscribed to and not excluded from are replayed", async () => {
    srv = startServer({ onOpen: (c) => c.subscribe("a") });
    const client = await viaProxy();
    const rec = recorder<string>();
    client.on(NOTE, rec.handler);
    const conn = only();
    const up = await outage(client);
    srv.chatter.broadcast("a", NOTE, "excluded", { exclude: [conn] });
    srv.chatter.broadcast("b", NOTE, "before joining b");
    conn.subscribe("b");
    srv.chatter.broadcast(["a", "b"], NOTE, "a and b");
    conn.unsubscribe("a");
    srv.chatter.broadcast("a", NOTE, "after leaving a");
    srv.chatter.broadcast("b", NOTE, "b");
    up();
    await waitFor(() => rec.seen.includes("b"));
    expect(rec.seen).toEqual(["a and b", "b"]);
  });

  test("when the replay log overflows, the session cannot resume: reset signal, fresh session", async () => {
    srv = startServer({ replay: { maxMessages: 3 }, onOpen: (c) => c.subscribe("room") });
    const client = await viaProxy();
    let resets = 0;
    client.onReset(() => void resets++);
    const up = await outage(client);
    for (let i = 0; i < 5; i++) srv.chatter.broadcast("room", NOTE, `away ${i}`);
    up();
    await waitForState(client, ConnectionState.Connected);
    expect(client.resumed).toBe(false);
    expect(resets).toBe(1);
  });

  test("a session that only makes calls resumes however much the log has dropped; its call in flight settles once", async () => {
    srv = startServer({ replay: { maxMessages: 3 } });
    let runs = 0;
    const slow = hold();
    srv.chatter.on(SLOW, async () => {
      runs++;
      await slow.wait();
      return "done";
    });
    const client = await viaProxy();
    const busy = await rawSocket(srv.url);
    srv.chatter.find((c) => c.clientId === busy.clientId)?.subscribe("busy");
    let resets = 0;
    client.onReset(() => void resets++);
    const pending = client.call(SLOW, 0);
    await slow.entered;
    const up = await outage(client);
    for (let i = 0; i < 20; i++) srv.chatter.broadcast("busy", NOTE, `busy ${i}`);
    up();
    await waitForState(client, ConnectionState.Connected);
    expect(client.resumed).toBe(true);
    slow.release(); // it answers after the resume
    expect(await pending).toBe("done");
    expect(runs).toBe(1);
    expect(resets).toBe(0);
    busy.ws.close();
  });

  test("a subscriber of a quiet topic resumes while one of a busy topic that lost broadcasts is reset", async () => {
    srv = startServer({ replay: { maxMessages: 3 } });
    srv.chatter.on(ECHO, (topic, conn) => void conn.subscribe(topic as string));
    proxy = await tcpProxy(srv.bun.port as number);
    const quiet = await srv.client({ url: proxy.url, reconnect: { minDelay: 5, maxDelay: 20 } });
    const loud = await srv.client({ url: proxy.url, reconnect: { minDelay: 5, maxDelay: 20 } });
    await quiet.call(ECHO, "quiet");
    await loud.call(ECHO, "busy");
    proxy.refuse(true);
    proxy.cutAll();
    await waitFor(() => [...srv.chatter.connections].every((c) => !c.isConnected), 3000, "both parked");
    for (let i = 0; i < 20; i++) srv.chatter.broadcast("busy", NOTE, `busy ${i}`);
    proxy.refuse(false);
    await waitFor(() => quiet.isConnected && loud.isConnected, 3000, "both back");
    expect(quiet.resumed).toBe(true);
    expect(loud.resumed).toBe(false);
  });

  test("a session that left a busy topic while away still cannot resume past the broadcasts it missed there", async () => {
    srv = startServer({ replay: { maxMessages: 3 }, onOpen: (c) => c.subscribe("busy") });
    const client = await viaProxy();
    const up = await outage(client);
    for (let i = 0; i < 20; i++) srv.chatter.broadcast("busy", NOTE, `busy ${i}`);
    only().unsubscribe("busy");
    const other = await rawSocket(srv.url);
    srv.chatter.find((c) => c.clientId === other.clientId)?.subscribe("busy");
    for (let i = 0; i < 5; i++) srv.chatter.broadcast("busy", NOTE, `later ${i}`);
    up();
    await waitForState(client, ConnectionState.Connected);
    expect(client.resumed).toBe(false);
    other.ws.close();
  });

  test("a session that left a topic while its broadcasts were dropped at once (an empty log) cannot resume past them", async () => {
    srv = startServer({ replay: { maxMessages: 0 }, onOpen: (c) => c.subscribe("t") });
    const client = await viaProxy();
    const up = await outage(client);
    srv.chatter.broadcast("t", NOTE, "missed, and dropped from the log at once");
    only().unsubscribe("t");
    up();
    await waitForState(client, ConnectionState.Connected);
    expect(client.resumed).toBe(false);
  });

  test("the replay log is bounded in bytes too", async () => {
    srv = startServer({ replay: { maxBytes: 200 }, onOpen: (c) => c.subscribe("room") });
    const client = await viaProxy();
    const up = await outage(client);
    srv.chatter.broadcast("room", NOTE, "x".repeat(300));
    up();
    await waitForState(client, ConnectionState.Connected);
    expect(client.resumed).toBe(false);
  });
});
