/**
 * `client.onSession` (issue 12, item 2): a fresh session is set up before
 * the calls queued for it go out, so they find the server-side state the
 * app rebuilds there (rooms joined, logins redone).
 */
import { afterEach, expect, test } from "bun:test";
import { z } from "zod";
import { ChatterError, ConnectionState, createProc, type ServerConnection } from "../src/index.ts";
import { startServer, type TestServer, waitForState } from "./helpers.ts";
import { tcpProxy } from "./proxy.ts";

// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
let proxy: Awaited<ReturnType<typeof tcpProxy>> | undefined;
afterEach(() => {
  proxy?.stop();
  proxy = undefined;
  srv?.stop();
});

const JOIN = createProc({ name: "join", takes: z.object({ room: z.string() }) });
const POST = createProc({ name: "post", takes: z.string(), returns: z.string() });
/** A call the server makes to the client while joining; the client has no handler, and answers NOT_IMPLEMENTED. */
const ROUND_TRIP = createProc({ name: "round_trip" });

/** A server where posting needs a joined room, and which records the order calls arrive in. */
function chatServer(options: Parameters<typeof startServer>[0] = {}) {
  srv = startServer(options);
  const joined = new WeakSet<ServerConnection<unknown>>();
  const order: string[] = [];
  srv.chatter.on(JOIN, async ({ room }, conn) => {
    order.push(`join ${room}`);
    // Joining takes a round trip to the client: a post it sent without waiting for the join arrives first.
    await conn.call(ROUND_TRIP).catch(() => {});
    joined.add(conn);
  });
  srv.chatter.on(POST, (text, conn) => {
    order.push(`post ${text}`);
    if (!joined.has(conn)) throw new ChatterError("FORBIDDEN", "join general first");
    return `posted ${text}`;
  });
  return order;
}

test("calls queued before the first connection wait for onSession, whose calls go first", async () => {
  const order = chatServer();
  const client = await srv.client();
  client.close();
  // A second client, set up before it connects: its queued call must wait for the slow join.
  const { createClient } = await import("../src/index.ts");
  const second = createClient({ url: srv.url });
  second.onSession((c) => c.call(JOIN, { room: "general" }));
  const posted = second.call(POST, "hello");
  expect(await posted).toBe("posted hello");
  expect(order).toEqual(["join general", "post hello"]);
  second.close();
});

test("after a reset, calls queued during the outage go out only once onSession has rebuilt the state", async () => {
  const order = chatServer({ resumeWindow: 0 });
  proxy = await tcpProxy(srv.bun.port as number);
  const client = await srv.client({ url: proxy.url });
  let sessions = 0;
  client.onSession(async (c) => {
    sessions++;
    await c.call(JOIN, { room: "general" });
  });
  proxy.refuse(true);
  proxy.cutAll();
  await waitForState(client, ConnectionState.Disconnected);
  const queued = [client.call(POST, "one"), client.call(POST, "two")];
  proxy.refuse(false);
  expect(await Promise.all(queued)).toEqual(["posted one", "posted two"]);
  expect(order.slice(-3)).toEqual(["join general", "post one", "post two"]);
  expect(client.resumed).toBe(false);
  expect(sessions).toBe(1);
});

test("an onSession callback that throws goes to onError, and the queue still goes out", async () => {
  chatServer();
  srv.chatter.on(JOIN, () => {});
  const { createClient } = await import("../src/index.ts");
  const client = createClient({ url: srv.url });
  const errors: ChatterError[] = [];
  client.onError((e) => void errors.push(e));
  client.onSession(() => {
    throw new Error("could not re-authenticate");
  });
  await expect(client.call(POST, "anyway")).rejects.toMatchObject({ code: "FORBIDDEN" });
  expect(errors.map((e) => e.code)).toEqual(["HANDLER_ERROR"]);
  expect(errors[0]?.message).toContain("could not re-authenticate");
  client.close();
});

test("a held call renumbered after the setup's calls carries a watermark at or below its own id", async () => {
  const { Peer } = await import("../src/engine/peer.ts");
  const { decodeFrames, FrameType } = await import("../src/wire/frames.ts");
  const sent: unknown[][] = [];
  const peer = new Peer({ handlers: new Map(), side: "client" }, null);
  const held = peer.call(POST, "queued before the session");
  peer.attach({ send: (bytes) => void sent.push(...(decodeFrames(bytes) as unknown[][])) }, false, 0, true);
  const setup = peer.call(POST, "made by onSession");
  peer.receive([FrameType.Result, 2, "ok"]);
  await setup;
  peer.sendQueue();
  const last = sent.at(-1) as [number, number, string, unknown, number, number];
  expect(last[1]).toBe(3);
  expect(last[5]).toBeLessThanOrEqual(last[1]);
  peer.receive([FrameType.Result, 3, "posted"]);
  expect(await held).toBe("posted");
});

test("a url() that never settles is given up after connectTimeout and asked again", async () => {
  const { createClient } = await import("../src/index.ts");
  let asked = 0;
  const client = createClient({
    url: () => {
      asked++;
      return new Promise<string>(() => {});
    },
    connectTimeout: 50,
    reconnect: { minDelay: 10, maxDelay: 20 },
  });
  const { waitFor } = await import("./helpers.ts");
  await waitFor(() => asked >= 3, 3000, "url() to be asked again");
  client.close();
});
