/**
 * The rest of the seed's API (issue 12, section 4), over real sockets: `server.in(topics)`, broadcasts that return
 * a promise, the seed's spelling of the limit options, and one procedure per name in `on`.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { z } from "zod";
import { type ChatterClient, createClient, createProc, createServer, type ServerConnection } from "../src/index.ts";
import { limitsOf, withSeedSpellings } from "../src/server/options.ts";
import { nextTurn, recorder, startServer, type TestServer, upgradeStatus, waitFor } from "./helpers.ts";
import { coreOfServer } from "./internals.ts";
import { ADD, NOTE } from "./procs.ts";

// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
afterEach(() => srv?.stop());

/** Connects n clients recording NOTE broadcasts, the i-th subscribed to topics(i). */
async function members(n: number, topics: (i: number) => string[]) {
  const out: { client: ChatterClient; conn: ServerConnection; seen: string[] }[] = [];
  for (let i = 0; i < n; i++) {
    const rec = recorder<string>();
    const client = await srv.client();
    client.on(NOTE, rec.handler);
    const conn = srv.chatter.find((c) => c.clientId === client.clientId) as ServerConnection;
    for (const t of topics(i)) conn.subscribe(t);
    out.push({ client, conn, seen: rec.seen });
  }
  return out;
}

/** Waits until every member saw `marker` (sent to "all"), so whatever was sent before it has arrived. */
async function settle(all: { seen: string[] }[], marker = "end") {
  await srv.chatter.broadcast("all", NOTE, marker);
  await waitFor(() => all.every((m) => m.seen.includes(marker)), 3000, "the marker");
  for (const m of all) m.seen.splice(m.seen.indexOf(marker), 1);
}

/** An upgrade's outcome, however the server refuses it: a 429, or a 101 followed by a RATE_LIMITED refusal. */
async function upgrade(url: string, headers: Record<string, string> = {}): Promise<number | "rate-limited"> {
  const status: number | string = await upgradeStatus(url, headers);
  return status === 429 || status === "RATE_LIMITED" ? "rate-limited" : Number(status);
}

/** A NOTE whose schema is async, as a remote lookup would make it. */
const CHECKED_NOTE = createProc({
  name: "note",
  takes: z.string().refine(async (s) => {
    await nextTurn();
    return s !== "bad";
  }, "refused by the async check"),
});

describe("server.in(topics).broadcast", () => {
  test("reaches the scope's subscribers once each, minus `exclude`", async () => {
    srv = startServer();
    const all = await members(3, (i) => ["all", ...(i === 0 ? ["a"] : ["a", "b"])]);
    await srv.chatter.in("a").broadcast(NOTE, "to a");
    await srv.chatter.in(["a", "b"]).broadcast(NOTE, "to a and b, not 2", { exclude: [all[2]!.conn] });
    await srv.chatter.in("b").broadcast(NOTE, "to b");
    await settle(all);
    expect(all.map((m) => m.seen)).toEqual([
      ["to a", "to a and b, not 2"],
      ["to a", "to a and b, not 2", "to b"],
      ["to a", "to b"],
    ]);
  });

  test("a scope keeps its topics: one made from a one-shot iterator serves every broadcast", async () => {
    srv = startServer();
    const all = await members(1, () => ["all", "room"]);
    const room = srv.chatter.in(new Set(["room"]).values());
    await room.broadcast(NOTE, "one");
    await room.broadcast(NOTE, "two");
    await settle(all);
    expect(all[0]!.seen).toEqual(["one", "two"]);
  });

  test("invalid input rejects with VALIDATION and nothing is sent", async () => {
    srv = startServer();
    const all = await members(1, () => ["all", "room"]);
    await expect(srv.chatter.in("room").broadcast(NOTE, 5 as never)).rejects.toMatchObject({
      code: "VALIDATION",
      message: expect.stringContaining('input of "note" failed its schema'),
    });
    await settle(all);
    expect(all[0]!.seen).toEqual([]);
  });
});

describe("broadcasts return a promise", () => {
  test("server.broadcast and connection.broadcast resolve once the broadcast is handed over", async () => {
    srv = startServer();
    const all = await members(2, () => ["all", "room"]);
    await expect(srv.chatter.broadcast("room", NOTE, "from the server")).resolves.toBeUndefined();
    await expect(all[0]!.conn.broadcast("room", NOTE, "from 0")).resolves.toBeUndefined();
    await settle(all);
    expect(all.map((m) => m.seen)).toEqual([["from the server"], ["from the server", "from 0"]]);
  });

  test("a sync schema failure rejects (no throw), so .catch sees it; nothing goes to onError", async () => {
    const errors: unknown[] = [];
    srv = startServer({ onError: (err) => void errors.push(err) });
    const all = await members(1, () => ["all", "room"]);
    let caught: unknown;
    expect(() => srv.chatter.broadcast("room", NOTE, 5 as never).catch((err) => (caught = err))).not.toThrow();
    const fromConn = all[0]!.conn.broadcast("room", NOTE, 6 as never, { includeSelf: true });
    await fromConn.catch((err: { code: string }) => errors.push(`caught ${err.code}`));
    await waitFor(() => caught !== undefined);
    expect(caught).toMatchObject({ code: "VALIDATION" });
    await settle(all);
    expect(errors).toEqual(["caught VALIDATION"]);
    expect(all[0]!.seen).toEqual([]);
  });

  test("with an async schema it resolves only after the check, once the broadcast went out", async () => {
    srv = startServer();
    const all = await members(1, () => ["all", "room"]);
    const log = coreOfServer(srv.chatter).topics.log;
    const before = log.seq;
    const sent = srv.chatter.broadcast("room", CHECKED_NOTE, "checked");
    expect(log.seq).toBe(before); // still checking
    await sent;
    expect(log.seq).toBe(before + 1);
    await settle(all);
    expect(all[0]!.seen).toEqual(["checked"]);
  });

  test("an async schema failure rejects with VALIDATION, not only onError", async () => {
    const errors: unknown[] = [];
    srv = startServer({ onError: (err) => void errors.push(err) });
    const all = await members(1, () => ["all", "room"]);
    await expect(all[0]!.conn.broadcast("room", CHECKED_NOTE, "bad", { includeSelf: true })).rejects.toMatchObject({
      code: "VALIDATION",
      message: expect.stringContaining("refused by the async check"),
    });
    await settle(all);
    expect(all[0]!.seen).toEqual([]);
    expect(errors).toEqual([]);
  });

  test("a failure nobody takes goes to onError, never an unhandled rejection, and the calling handler carries on", async () => {
    const errors: unknown[] = [];
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => void unhandled.push(err);
    process.on("unhandledRejection", onUnhandled);
    try {
      srv = startServer({ onError: (err) => void errors.push(err) });
      const ECHO_NOTE = createProc({ name: "echo_note", takes: z.string(), returns: z.string() });
      srv.chatter.on(ECHO_NOTE, (text, conn) => {
        conn.broadcast("room", NOTE, 5 as never); // fire and forget, as the seed's counter example does
        srv.chatter.broadcast("room", CHECKED_NOTE, "bad");
        return text;
      });
      const [member] = await members(1, () => ["room"]);
      expect(await member!.client.call(ECHO_NOTE, "still answered")).toBe("still answered");
      await waitFor(() => errors.length === 2, 3000, "both failures in onError");
      expect(errors).toMatchObject([{ code: "VALIDATION" }, { code: "VALIDATION" }]);
      // Bun reports a rejection left unhandled at the end of the turn it was made in.
      await nextTurn();
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  test("awaited inside a handler, a broadcast goes out before the handler answers", async () => {
    srv = startServer();
    const POST = createProc({ name: "post", takes: z.string(), returns: z.number() });
    srv.chatter.on(POST, async (text, conn) => {
      await conn.broadcast("room", CHECKED_NOTE, text, { includeSelf: true });
      return coreOfServer(srv.chatter).topics.log.seq;
    });
    const [member] = await members(1, () => ["all", "room"]);
    const seq = coreOfServer(srv.chatter).topics.log.seq;
    expect(await member!.client.call(POST, "posted")).toBe(seq + 1);
    // The handler let the broadcast's VALIDATION error through, so the caller gets that code.
    await expect(member!.client.call(POST, "bad")).rejects.toMatchObject({ code: "VALIDATION" });
  });
});

describe("the seed's limit options", () => {
  test("rateLimit.maxConnectionsPerMinute is a token bucket of that many per 60 s", async () => {
    srv = startServer({ rateLimit: { maxConnectionsPerMinute: 2 } });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push(await upgrade(srv.url));
    expect(statuses).toEqual([101, 101, "rate-limited", "rate-limited"]);
    expect(limitsOf(withSeedSpellings({ rateLimit: { maxConnectionsPerMinute: 2 } })).rateLimit).toEqual({ max: 2, windowMs: 60_000 });
  });

  test("rateLimit.trustProxy is the top-level trustProxy", async () => {
    srv = startServer({ rateLimit: { maxConnectionsPerMinute: 1, trustProxy: true } });
    expect(await upgrade(srv.url, { "X-Forwarded-For": "203.0.113.1" })).toBe(101);
    expect(await upgrade(srv.url, { "X-Forwarded-For": "203.0.113.2" })).toBe(101);
    expect(await upgrade(srv.url, { "X-Forwarded-For": "6.6.6.6, 203.0.113.1" })).toBe("rate-limited");
    srv.stop();
    // Without it the header is ignored: both upgrades come from 127.0.0.1.
    srv = startServer({ rateLimit: { maxConnectionsPerMinute: 1 } });
    expect(await upgrade(srv.url, { "X-Forwarded-For": "203.0.113.1" })).toBe(101);
    expect(await upgrade(srv.url, { "X-Forwarded-For": "203.0.113.2" })).toBe("rate-limited");
  });

  test("maxMessageBytes, spelled as the seed spells it, beside the seed's rateLimit", async () => {
    srv = startServer({ maxMessageBytes: 1024, rateLimit: { maxConnectionsPerMinute: 100 } });
    const ECHO = createProc({ name: "echo", takes: z.string(), returns: z.string() });
    srv.chatter.on(ECHO, (s) => s);
    const client = await srv.client({ reconnect: false });
    expect(await client.call(ECHO, "fits")).toBe("fits");
    await expect(client.call(ECHO, "x".repeat(2000))).rejects.toMatchObject({ message: expect.stringContaining("maxMessageBytes (1024)") });
  });

  test("a mix that cannot mean one thing throws at createServer, naming the option", () => {
    const mixed = { max: 5, windowMs: 1000, maxConnectionsPerMinute: 5 };
    expect(() => createServer({ rateLimit: mixed })).toThrow("not both");
    expect(() => createServer({ rateLimit: { maxConnectionsPerMinute: 0 } })).toThrow("maxConnectionsPerMinute must be a number >= 1");
    expect(() => createServer({ trustProxy: 2, rateLimit: { trustProxy: true } })).toThrow("differs from the top-level trustProxy");
    expect(() => createServer({ trustProxy: true, rateLimit: { trustProxy: true } }).close()).not.toThrow();
  });
});

describe("on: one procedure per name", () => {
  test("a different procedure of an implemented name throws, naming it, and the first keeps answering", async () => {
    srv = startServer();
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    const impostor = createProc({ name: "add", takes: z.unknown(), returns: z.number() });
    expect(() => srv.chatter.on(impostor, () => 0)).toThrow('[chatter] server.on("add"): a different procedure named "add"');
    const client = await srv.client();
    expect(await client.call(ADD, { a: 2, b: 3 })).toBe(5);
  });

  test("the same procedure again replaces its handler, and the old off function leaves the new one", async () => {
    srv = startServer();
    const offFirst = srv.chatter.on(ADD, ({ a, b }) => a + b);
    const offSecond = srv.chatter.on(ADD, ({ a, b }) => a * b);
    offFirst();
    const client = await srv.client();
    expect(await client.call(ADD, { a: 2, b: 3 })).toBe(6);
    offSecond();
    const other = createProc({ name: "add", takes: z.unknown(), returns: z.number() });
    srv.chatter.on(other, () => 42); // once removed, the name is free
    expect(await client.call(ADD, { a: 2, b: 3 })).toBe(42);
  });
});

test("client.on refuses a different procedure under a name it already implements, as server.on does", () => {
  const client = createClient({ url: "ws://127.0.0.1:9/", reconnect: false });
  try {
    client.on(createProc({ name: "twice" }), () => {});
    expect(() => client.on(createProc({ name: "twice" }), () => {})).toThrow(/different procedure named "twice"/);
  } finally {
    client.close();
  }
});
