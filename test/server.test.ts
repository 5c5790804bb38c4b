import { afterEach, describe, expect, test } from "bun:test";
import { type ChatterClient, createProc, type ServerConnection } from "../src/index.ts";
import { recorder, startServer, type TestServer, waitFor } from "./helpers.ts";
import { coreOfServer, hostOfServer } from "./internals.ts";
import { ADD, ECHO_TEXT, NOTE, WHOAMI } from "./procs.ts";

// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
afterEach(() => srv?.stop());

/** Connects n clients, each recording NOTE broadcasts, each subscribed to the given topics. */
async function clientsOn(n: number, topics: (i: number) => string[]) {
  const out: { client: ChatterClient; conn: ServerConnection<unknown>; seen: string[] }[] = [];
  for (let i = 0; i < n; i++) {
    const rec = recorder<string>();
    const client = await srv.client();
    client.on(NOTE, rec.handler);
    const conn = srv.chatter.find((c) => c.clientId === client.clientId) as ServerConnection<unknown>;
    for (const t of topics(i)) conn.subscribe(t);
    out.push({ client, conn, seen: rec.seen });
  }
  return out;
}

/** A final broadcast to all, so we know everything before it has arrived. */
async function flush(all: { seen: string[] }[], marker = "end") {
  srv.chatter.broadcast("all", NOTE, marker);
  await waitFor(() => all.every((x) => x.seen.includes(marker)), 3000, "flush marker");
  for (const x of all) x.seen.splice(x.seen.indexOf(marker), 1);
}

describe("server.on and calls", () => {
  test("a client calls a server procedure and gets its result", async () => {
    srv = startServer();
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    const client = await srv.client();
    expect(await client.call(ADD, { a: 2, b: 40 })).toBe(42);
  });

  test("the handler gets the calling connection as its second argument", async () => {
    srv = startServer({ getConnectionData: () => ({ user: "ann" }) });
    srv.chatter.on(WHOAMI, (_input, conn) => ({ clientId: conn.clientId, data: conn.data, session: conn.sessionId }));
    const client = await srv.client();
    expect(await client.call(WHOAMI)).toEqual({ clientId: client.clientId, data: { user: "ann" }, session: client.sessionId });
  });

  test("on() returns a function that removes the handler", async () => {
    srv = startServer();
    const off = srv.chatter.on(ADD, ({ a, b }) => a + b);
    const client = await srv.client();
    expect(await client.call(ADD, { a: 1, b: 1 })).toBe(2);
    off();
    await expect(client.call(ADD, { a: 1, b: 1 })).rejects.toMatchObject({ code: "NOT_IMPLEMENTED" });
  });

  test("many calls in flight all resolve to their own results", async () => {
    srv = startServer();
    const answers: (() => void)[] = [];
    srv.chatter.on(ADD, async ({ a, b }) => {
      await new Promise<void>((resolve) => answers.push(resolve));
      return a + b;
    });
    const client = await srv.client();
    const calls = Promise.all(Array.from({ length: 500 }, (_, i) => client.call(ADD, { a: i, b: 1 })));
    await waitFor(() => answers.length === 500, 3000, "all 500 handlers to run");
    // Answered last call first, so no answer can match its call by order.
    for (const answer of answers.reverse()) answer();
    expect(await calls).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
  });
});

describe("batching", () => {
  test("calls made in one tick travel in two messages (the first at once), and are answered in order", async () => {
    srv = startServer();
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    const client = await srv.client();
    let messages = 0;
    const host = hostOfServer(srv.chatter);
    const message = host.message.bind(host);
    host.message = (ticket, bytes) => {
      messages++;
      message(ticket, bytes);
    };
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => client.call(ADD, { a: i, b: 0 })));
    expect(results).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(messages).toBe(2);
  });

  test("a batch never grows past the server's maxMessageBytes", async () => {
    srv = startServer({ maxMessageBytes: 4096 });
    srv.chatter.on(ECHO_TEXT, (s) => s);
    const client = await srv.client();
    let messages = 0;
    const host = hostOfServer(srv.chatter);
    const message = host.message.bind(host);
    host.message = (ticket, bytes) => {
      messages++;
      expect(bytes.length).toBeLessThanOrEqual(4096);
      message(ticket, bytes);
    };
    const text = "x".repeat(1000);
    const results = await Promise.all(Array.from({ length: 20 }, () => client.call(ECHO_TEXT, text)));
    expect(results.every((r) => r === text)).toBe(true);
    expect(messages).toBeGreaterThanOrEqual(5);
  });
});

describe("topics", () => {
  test("subscribe, unsubscribe and isSubscribed", async () => {
    srv = startServer();
    const [x] = await clientsOn(1, () => []);
    const conn = x?.conn as ServerConnection<unknown>;
    expect(conn.isSubscribed("room")).toBe(false);
    conn.subscribe("room");
    expect(conn.isSubscribed("room")).toBe(true);
    conn.unsubscribe("room");
    expect(conn.isSubscribed("room")).toBe(false);
  });

  test("broadcast reaches every subscriber of the topic and nobody else", async () => {
    srv = startServer();
    const all = await clientsOn(4, (i) => (i < 3 ? ["all", "room"] : ["all"]));
    srv.chatter.broadcast("room", NOTE, "hi");
    await flush(all);
    expect(all.map((x) => x.seen)).toEqual([["hi"], ["hi"], ["hi"], []]);
  });

  test("an unsubscribed connection no longer gets the topic", async () => {
    srv = startServer();
    const all = await clientsOn(2, () => ["all", "room"]);
    all[0]?.conn.unsubscribe("room");
    srv.chatter.broadcast("room", NOTE, "hi");
    await flush(all);
    expect(all.map((x) => x.seen)).toEqual([[], ["hi"]]);
  });

  test("a subscriber of several named topics gets the broadcast once", async () => {
    srv = startServer();
    const all = await clientsOn(3, (i) => ["all", ...[["a", "b", "c"], ["b"], ["c", "a"]][i]!]);
    srv.chatter.broadcast(["a", "b", "c"], NOTE, "once");
    srv.chatter.broadcast(new Set(["c", "b"]), NOTE, "twice");
    await flush(all);
    expect(all.map((x) => x.seen)).toEqual([
      ["once", "twice"],
      ["once", "twice"],
      ["once", "twice"],
    ]);
  });

  test("exclude leaves out exactly the named connections, across all topics", async () => {
    srv = startServer();
    const all = await clientsOn(4, (i) => ["all", "a", ...(i % 2 ? ["b"] : [])]);
    srv.chatter.broadcast(["a", "b"], NOTE, "x", { exclude: [all[1]!.conn, all[2]!.conn] });
    await flush(all);
    expect(all.map((x) => x.seen)).toEqual([["x"], [], [], ["x"]]);
    // The excluded stay subscribed afterwards.
    expect(all[1]!.conn.isSubscribed("b")).toBe(true);
    srv.chatter.broadcast("b", NOTE, "y");
    await flush(all);
    expect(all.map((x) => x.seen)).toEqual([["x"], ["y"], [], ["x", "y"]]);
  });

  test("connection.broadcast excludes the sender unless includeSelf", async () => {
    srv = startServer();
    const all = await clientsOn(3, () => ["all", "room"]);
    all[0]!.conn.broadcast("room", NOTE, "from0");
    all[0]!.conn.broadcast("room", NOTE, "with-self", { includeSelf: true });
    all[0]!.conn.broadcast("room", NOTE, "not-2", { exclude: [all[2]!.conn] });
    await flush(all);
    expect(all.map((x) => x.seen)).toEqual([["with-self"], ["from0", "with-self", "not-2"], ["from0", "with-self"]]);
  });

  test("broadcast order is kept per subscriber", async () => {
    srv = startServer();
    const all = await clientsOn(3, () => ["all", "room"]);
    for (let i = 0; i < 200; i++) srv.chatter.broadcast("room", NOTE, String(i));
    await flush(all);
    for (const x of all) expect(x.seen).toEqual(Array.from({ length: 200 }, (_, i) => String(i)));
  });

  test("broadcast checks the input against `takes` before sending", async () => {
    srv = startServer();
    await clientsOn(1, () => ["room"]);
    // A promise, as the seed's is: the failure rejects it (so `.catch` sees it) instead of throwing.
    await expect(srv.chatter.broadcast("room", NOTE, 5 as unknown as string)).rejects.toThrow(/input of "note" failed its schema/);
  });

  test("a broadcast to a topic nobody is in is a no-op", async () => {
    srv = startServer();
    await clientsOn(1, () => ["all"]);
    expect(() => srv.chatter.broadcast("empty", NOTE, "x")).not.toThrow();
  });

  test("a closed connection leaves its topics", async () => {
    srv = startServer();
    const all = await clientsOn(2, () => ["all", "room"]);
    all[0]!.client.close();
    await waitFor(() => srv.chatter.connections.size === 1);
    expect(coreOfServer(srv.chatter).topics.index.get("room")?.size).toBe(1);
  });
});

describe("find and filter", () => {
  test("find returns the first match or undefined; filter returns all matches", async () => {
    let n = 0;
    srv = startServer({ getConnectionData: () => ({ n: n++, isLoggedIn: n % 2 === 0 }) });
    for (let i = 0; i < 4; i++) await srv.client();
    expect(srv.chatter.find((c) => (c.data as { n: number }).n === 2)?.data).toEqual({ n: 2, isLoggedIn: false });
    expect(srv.chatter.find((c) => (c.data as { n: number }).n === 9)).toBeUndefined();
    expect(srv.chatter.filter((c) => (c.data as { isLoggedIn: boolean }).isLoggedIn).length).toBe(2);
    expect(srv.chatter.filter(() => false)).toEqual([]);
  });

  test("closed connections are not found", async () => {
    srv = startServer();
    const client = await srv.client();
    client.close();
    await waitFor(() => srv.chatter.connections.size === 0);
    expect(srv.chatter.find((c) => c.clientId === client.clientId)).toBeUndefined();
  });
});

describe("hooks", () => {
  test("onOpen runs with the connection before its calls are handled; onClose gets code and reason", async () => {
    const events: string[] = [];
    srv = startServer({
      onOpen: (conn) => {
        events.push(`open ${conn.clientId}`);
        conn.subscribe("auto");
      },
      onClose: (conn, code, reason) => void events.push(`close ${conn.clientId} ${code} ${reason}`),
    });
    const PROBE = createProc({ name: "probe" });
    srv.chatter.on(PROBE, (_i, conn) => void events.push(`call subscribed=${conn.isSubscribed("auto")}`));
    const client = await srv.client();
    const id = client.clientId;
    await client.call(PROBE);
    client.close();
    await waitFor(() => events.length === 3);
    expect(events).toEqual([`open ${id}`, "call subscribed=true", `close ${id} 4004 client closed`]);
  });

  test("a throwing hook is reported to onError and harms nothing", async () => {
    const errors: unknown[] = [];
    srv = startServer({
      onOpen: () => {
        throw new Error("boom");
      },
      onError: (err) => void errors.push(err),
    });
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    const client = await srv.client();
    expect(await client.call(ADD, { a: 1, b: 2 })).toBe(3);
    expect(String(errors[0])).toContain("boom");
  });
});
