import { afterEach, describe, expect, test } from "bun:test";
import { type ConnectionRequest, ConnectionState, createClient } from "../src/index.ts";
import { FrameType, PROTOCOL_VERSION } from "../src/wire/frames.ts";
import { hold, rawSocket, startServer, type TestServer, upgradeStatus, waitFor } from "./helpers.ts";
import { bunSocketOf } from "./internals.ts";
import { ADD, ECHO, SLOW } from "./procs.ts";

// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
afterEach(() => srv?.stop());

describe("getConnectionData", () => {
  test("gets the request, URL, headers, cookies, client id and IP before the socket opens", async () => {
    let info: ConnectionRequest | undefined;
    const order: string[] = [];
    srv = startServer({
      getConnectionData: async (i) => {
        info = i;
        order.push("data");
        return { user: i.cookies.session === "abc" ? "ann" : "nobody" };
      },
      onOpen: (conn) => void order.push(`open ${(conn.data as { user: string }).user}`),
    });
    const status = await upgradeStatus(srv.url, { Cookie: "session=abc; theme=dark%20blue", "X-Test": "yes" });
    expect(status).toBe(101);
    expect(info?.request).toBeInstanceOf(Request);
    expect(info?.url.searchParams.get("cid")).toBe("probe");
    expect(info?.headers.get("x-test")).toBe("yes");
    expect(info?.cookies).toEqual({ session: "abc", theme: "dark blue" });
    expect(info?.clientId).toBe("probe");
    expect(info?.ip).toContain("127.0.0.1");
    const raw = await rawSocket(srv.url);
    await waitFor(() => order.length === 3);
    expect(order).toEqual(["data", "data", "open nobody"]);
    raw.ws.close();
  });

  test("throwing refuses the upgrade with 401 and no connection is made", async () => {
    let opened = 0;
    srv = startServer<unknown>({
      getConnectionData: () => {
        throw new Error("no token");
      },
      onOpen: () => void opened++,
    });
    expect(await upgradeStatus(srv.url)).toBe("UNAUTHORIZED");
    expect(opened).toBe(0);
    expect(srv.chatter.connections.size).toBe(0);
  });

  test("returning or throwing a Response refuses with that response", async () => {
    srv = startServer({
      getConnectionData: (i) => {
        if (i.headers.get("x-mode") === "throw") throw new Response("banned", { status: 403 });
        return new Response("slow down", { status: 429 });
      },
    });
    expect(await upgradeStatus(srv.url, { "X-Mode": "throw" })).toBe("FORBIDDEN");
    expect(await upgradeStatus(srv.url)).toBe("RATE_LIMITED");
  });

  test("a plain HTTP request gets 426", async () => {
    srv = startServer();
    const res = await fetch(srv.url.replace("ws:", "http:"));
    expect(res.status).toBe(426);
  });
});

describe("limits", () => {
  test("a frame over maxMessageBytes closes the socket with 1009 before it is decoded", async () => {
    srv = startServer({ maxMessageBytes: 1024 });
    srv.chatter.on(ECHO, (x) => x);
    const client = await srv.client({ reconnect: false });
    expect(await client.call(ECHO, "x".repeat(900))).toBe("x".repeat(900));
    // The client knows the limit from WELCOME and refuses to send; a raw socket that does send is closed.
    await expect(client.call(ECHO, "x".repeat(2000))).rejects.toMatchObject({
      code: "LIMIT",
      message: expect.stringContaining("maxMessageBytes (1024)"),
    });
    const raw = await rawSocket(srv.url);
    raw.send(new Uint8Array(4096));
    expect((await raw.closed).code).toBe(1009);
  });

  test("a socket that sends no HELLO is closed with 4001", async () => {
    srv = startServer({ handshakeTimeout: 50 });
    const raw = await rawSocket(srv.url, false);
    expect(await raw.closed).toEqual({ code: 4001, reason: "no HELLO received in time" });
  });

  test("another protocol version is refused with 4000 and the client stops retrying", async () => {
    srv = startServer();
    const raw = await rawSocket(srv.url, false);
    raw.send([FrameType.Hello, PROTOCOL_VERSION + 1, "x", "y", null, 0, 1]);
    expect(await raw.closed).toEqual({
      code: 4000,
      reason: `protocol version ${PROTOCOL_VERSION + 1} unsupported; server speaks ${PROTOCOL_VERSION}`,
    });
  });
});

describe("close()", () => {
  test("waits for running handlers, then closes every socket with 1001 and refuses new ones", async () => {
    srv = startServer();
    const slow = hold();
    srv.chatter.on(SLOW, async () => {
      await slow.wait();
      return "finished";
    });
    const client = await srv.client({ reconnect: false });
    const codes: number[] = [];
    srv.chatter.connections.forEach((c) => {
      const socket = bunSocketOf(c)!;
      const close = socket.close.bind(socket);
      socket.close = (code?: number, reason?: string) => {
        codes.push(code ?? 0);
        close(code, reason);
      };
    });
    const call = client.call(SLOW, 0);
    await slow.entered;
    const closing = srv.chatter.close({ timeout: 2000 });
    expect(await upgradeStatus(srv.url)).toBe("UNAVAILABLE");
    slow.release();
    expect(await call).toBe("finished");
    await closing;
    expect(codes).toEqual([1001]);
    await waitFor(() => client.state === ConnectionState.Disconnected);
  });

  test("gives up waiting at the deadline", async () => {
    srv = startServer();
    const slow = hold(); // never released: the handler outlives close's deadline
    srv.chatter.on(SLOW, async () => {
      await slow.wait();
      return "finished";
    });
    const client = await srv.client({ reconnect: false });
    const call = client.call(SLOW, 0).catch((e) => e.code);
    await slow.entered;
    const started = Date.now();
    await srv.chatter.close({ timeout: 50 });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await call).toBe("DISCONNECTED");
  });
});

test("clients that never connect leave the server untouched", async () => {
  srv = startServer();
  srv.chatter.on(ADD, ({ a, b }) => a + b);
  const ghost = createClient({ url: "ws://127.0.0.1:1", reconnect: false });
  await waitFor(() => ghost.state === ConnectionState.Disconnected);
  ghost.close();
  const client = await srv.client();
  expect(await client.call(ADD, { a: 1, b: 2 })).toBe(3);
});
