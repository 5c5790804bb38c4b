/**
 * What an idle session keeps (#16): no engine until a call is made either way (a PING alone does not make
 * one), no record of a subscription made before any broadcast of its life, and no leftovers of its handshake.
 */

import { isRope, estimateShallowMemoryUsageOf as shallow } from "bun:jsc";
import { afterEach, expect, test } from "bun:test";
import type { ServerConnection } from "../src/index.ts";
import { sessionOf } from "../src/server/connection.ts";
import { FrameType, PROTOCOL_VERSION } from "../src/wire/frames.ts";
import { rawSocket, startServer, type TestServer, waitFor } from "./helpers.ts";
import { ECHO, NOTE } from "./procs.ts";

let srv: TestServer<unknown>;
afterEach(() => srv?.stop());

/** The session of the connection with this client id. */
function sessionFor(clientId: string) {
  const conn = srv.chatter.find((c) => c.clientId === clientId) as ServerConnection<unknown>;
  return sessionOf(conn);
}

test("an idle session has no engine and no subscription history, answers PING without one, and makes one on its first call", async () => {
  srv = startServer({ onOpen: (c) => c.subscribe("room"), getConnectionData: () => ({ user: "ann" }) });
  srv.chatter.on(ECHO, (x) => x);
  const early = await rawSocket(srv.url);
  await srv.chatter.broadcast("room", NOTE, "before"); // The log is not empty when the next session joins.
  const raw = await rawSocket(srv.url);
  const session = sessionFor(raw.clientId);
  expect(session.madePeer).toBeNull();
  expect(session.changes).toBeNull();
  expect(session.state?.data).toBeUndefined(); // Handed to the session, which has it.
  expect(session.data).toEqual({ user: "ann" });
  expect(session.state?.clientId).toBe(raw.clientId);

  raw.send([FrameType.Ping, 1]);
  expect(await raw.next(FrameType.Pong)).toEqual([FrameType.Pong, 1]);
  expect(session.madePeer).toBeNull();

  raw.send([FrameType.Call, 1, "echo", "hi", 5000, 1]);
  expect(await raw.next(FrameType.Result)).toEqual([FrameType.Result, 1, "hi"]);
  expect(session.madePeer).not.toBeNull();
  raw.send([FrameType.Ping, 2]);
  expect(await raw.next(FrameType.Pong)).toEqual([FrameType.Pong, 1]);
  early.ws.close();
  raw.ws.close();
});

test("a session resumed with lastEvent 0 gets the broadcasts since it began, none from before", async () => {
  srv = startServer({ onOpen: (c) => c.subscribe("room") });
  const early = await rawSocket(srv.url); // A subscriber, so the broadcast is logged.
  await srv.chatter.broadcast("room", NOTE, "before");
  const raw = await rawSocket(srv.url);
  const { sessionId, token } = sessionFor(raw.clientId);
  await srv.chatter.broadcast("room", NOTE, "after");
  await raw.next(FrameType.Event);
  raw.ws.close(4000, "dropped");
  await raw.closed;
  const back = await rawSocket(srv.url, false);
  back.send([FrameType.Hello, PROTOCOL_VERSION, raw.clientId, sessionId, token, 0, 1]);
  expect((await back.next(FrameType.Welcome))[3]).toBe(true); // Resumed.
  // What is replayed goes out before anything that follows WELCOME: by the PONG, all of it is here.
  back.send([FrameType.Ping, 1]);
  await back.next(FrameType.Pong);
  expect(back.inbox.filter((f) => f[0] === FrameType.Event).map((f) => f[3])).toEqual(["after"]);
  early.ws.close();
  back.ws.close();
});

test("a session in one topic keeps the topic's string; joins and leaves through none, one and two stay exact, and a resume rejoins and replays it", async () => {
  srv = startServer();
  const raw = await rawSocket(srv.url);
  const conn = srv.chatter.find((c) => c.clientId === raw.clientId) as ServerConnection<unknown>;
  const session = sessionOf(conn);
  conn.subscribe("a");
  expect(session.topics).toBe("a");
  conn.subscribe("b");
  expect(session.topics).toEqual(["a", "b"]);
  conn.unsubscribe("a");
  conn.unsubscribe("b");
  conn.subscribe("b");
  conn.unsubscribe("b");
  expect(session.topics).toEqual([]);
  conn.unsubscribe("b"); // Not in it: nothing changes.
  conn.subscribe("room");
  expect(session.topics).toBe("room");
  expect([conn.isSubscribed("room"), conn.isSubscribed("r"), conn.isSubscribed("a")]).toEqual([true, false, false]);
  expect(await srv.chatter.presence("room")).toBe(1);
  expect(await srv.chatter.presence("r")).toBe(0);

  await srv.chatter.broadcast("room", NOTE, "first");
  const first = await raw.next(FrameType.Event);
  raw.ws.close(4000, "dropped");
  await raw.closed;
  await srv.chatter.broadcast("room", NOTE, "missed");
  const back = await rawSocket(srv.url, false);
  back.send([FrameType.Hello, PROTOCOL_VERSION, raw.clientId, session.sessionId, session.token, first[1] as number, 1]);
  expect((await back.next(FrameType.Welcome))[3]).toBe(true);
  await srv.chatter.broadcast("room", NOTE, "after");
  await waitFor(() => back.inbox.filter((f) => f[0] === FrameType.Event).length === 2, 3000, "both events");
  expect(back.inbox.filter((f) => f[0] === FrameType.Event).map((f) => f[3])).toEqual(["missed", "after"]);
  conn.close();
  expect(await srv.chatter.presence("room")).toBe(0);
  back.ws.close();
});

test("an idle session's own objects stay in their heap cells: session 112 bytes, socket state 64, public face 32", async () => {
  srv = startServer({ onOpen: (c) => c.subscribe("room") });
  const raw = await rawSocket(srv.url);
  const conn = srv.chatter.find((c) => c.clientId === raw.clientId) as ServerConnection<unknown>;
  const session = sessionOf(conn);
  // A field more, or an accessor JSC counts, moves an object to the next cell size (see bench/session-heap.ts).
  expect(shallow(session)).toBeLessThanOrEqual(112);
  expect(shallow(session.state as object)).toBeLessThanOrEqual(64);
  expect(shallow(conn)).toBeLessThanOrEqual(32);
  expect(session.topics).toBe("room");
  expect(isRope(session.sessionId)).toBe(false);
  expect(shallow(session.sessionId)).toBeLessThanOrEqual(shallow(crypto.randomUUID()));
  raw.ws.close();
});
