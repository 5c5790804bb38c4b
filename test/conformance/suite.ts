/**
 * The conformance suite: one set of behaviours, run against every server
 * adapter (Bun, Node, Deno) from every client runtime (Bun, Node 20 with `ws`, a
 * browser). It only uses the public client API and the fixture's procedures,
 * so it bundles for any runtime; its assertions are its own for that reason.
 */
import { type ChatterClient, ConnectionState, createClient, type WebSocketConstructor } from "../../src/index.ts";
import {
  ADD,
  BROADCAST,
  CALL_ME,
  COUNT_TAG,
  DROP,
  ECHO,
  ENDLESS,
  FAIL,
  FINISHED,
  HOOKS,
  MISSING,
  NOTE,
  READ_ME,
  RUNS,
  STREAM_FAIL,
  SUBSCRIBE,
  TICKS,
  UPPER,
  WHOAMI,
  WORK,
} from "./procs.ts";

/** The slice of a test runner the suite needs: bun:test, node:test and the browser runner all fit. */
export interface TestApi {
  describe(name: string, fn: () => void): unknown;
  test(name: string, fn: () => Promise<void>): unknown;
}

export interface Target {
  /** The fixture server's ws:// URL. */
  url: string;
  /** A WebSocket class, where the runtime has no global one. */
  WebSocket?: WebSocketConstructor;
}

function same(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

async function failsWith(promise: Promise<unknown>, code: string, what: string): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (err) {
    same((err as { code: string }).code, code, `${what} (error code)`);
    return err as { code: string; message: string };
  }
  throw new Error(`${what}: expected a ${code} error, but it succeeded`);
}

/** @returns every item of a stream */
async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** @returns the numbers 0 to n - 1 */
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Resolves once `check` holds (it may be async); polls, and fails naming `what` after `ms`. */
async function until(check: () => unknown, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function conformance(t: TestApi, target: Target): void {
  const open: ChatterClient[] = [];
  let n = 0;
  const unique = (name: string) => `${name}-${Date.now().toString(36)}-${n++}`;
  const connect = async (tag: string, wait = true) => {
    const url = new URL(target.url);
    url.searchParams.set("tag", tag);
    const client = createClient({
      url: url.toString(),
      reconnect: { minDelay: 10, maxDelay: 100 },
      ...(target.WebSocket ? { WebSocket: target.WebSocket } : {}),
    });
    open.push(client);
    if (wait) await until(() => client.isConnected, `${tag} to connect`);
    return client;
  };
  const done = () => {
    for (const c of open.splice(0)) c.close();
  };
  const test = (name: string, fn: () => Promise<void>) =>
    t.test(name, async () => {
      try {
        await fn();
      } finally {
        done();
      }
    });

  t.describe("calls", () => {
    test("client calls server and gets the parsed result", async () => {
      const c = await connect(unique("calls"));
      same(await c.call(ADD, { a: 20, b: 22 }), 42, "add");
      same(await c.call(ECHO, { nested: [1, "two", null] }), { nested: [1, "two", null] }, "echo");
    });

    test("errors arrive with stable codes: VALIDATION, NOT_IMPLEMENTED, and a handler's own code", async () => {
      const c = await connect(unique("errors"));
      const v = await failsWith(c.call(ADD, { a: 1 } as never), "VALIDATION", "bad input");
      same((v as unknown as { issues: { path: unknown[] }[] }).issues[0]?.path, ["b"], "issue path");
      await failsWith(c.call(MISSING), "NOT_IMPLEMENTED", "unknown procedure");
      const f = await failsWith(c.call(FAIL, "not yours"), "FORBIDDEN", "handler error");
      same(f.message, "not yours", "handler message");
    });

    test("server calls the client back, and learns when the client lacks a handler", async () => {
      const c = await connect(unique("back"));
      await failsWith(c.call(CALL_ME, 1), "NOT_IMPLEMENTED", "no client handler");
      c.on(ECHO, (x) => ({ echoed: x }));
      same(await c.call(CALL_ME, "hi"), { echoed: "hi" }, "server to client");
    });
  });

  t.describe("connections", () => {
    test("getConnectionData sees the upgrade URL; onOpen runs once; find and filter see the connection", async () => {
      const tag = unique("data");
      const c = await connect(tag);
      const me = await c.call(WHOAMI);
      same([me.clientId, me.sessionId, me.tag], [c.clientId, c.sessionId, tag], "whoami");
      same(await c.call(COUNT_TAG, tag), { found: true, count: 1 }, "find/filter");
      same(await c.call(HOOKS, tag), [`open ${tag}`], "hooks");
    });

    test("onClose runs when a client closes; the connection is gone from find", async () => {
      const tag = unique("close");
      const a = await connect(tag);
      const watcher = await connect(unique("watcher"));
      a.close();
      const hooks = () => watcher.call(HOOKS, tag);
      await until(async () => (await hooks()).length >= 2, "onClose to run");
      same(await hooks(), [`open ${tag}`, `close ${tag} 4004`], "hooks");
      same(await watcher.call(COUNT_TAG, tag), { found: false, count: 0 }, "find after close");
    });

    test("a refused upgrade never connects: the client is told why", async () => {
      const c = await connect("deny", false);
      const refusals: string[] = [];
      c.onError((err) => void refusals.push(err.code));
      await until(() => refusals.length > 0, "the refusal");
      same([refusals[0], c.state === ConnectionState.Connected], ["UNAUTHORIZED", false], "refusal, connected");
    });

    test("a call over the server's maxMessageBytes fails at once with LIMIT; the connection is unharmed", async () => {
      const c = await connect(unique("big"));
      const err = await failsWith(c.call(ECHO, "x".repeat(100 * 1024)), "LIMIT", "oversized call");
      same(/over the other end's maxMessageBytes \(65536\)/.test(err.message), true, `message: ${err.message}`);
      same(await c.call(ECHO, "x".repeat(1000)), "x".repeat(1000), "a call under the limit");
      same([c.isConnected, c.resumed], [true, false], "still on its first socket");
    });
  });

  t.describe("broadcast", () => {
    test("reaches each subscriber once, honours exclusions, and skips the sender unless asked", async () => {
      const topic = unique("room");
      const other = unique("other");
      const tags = [unique("a"), unique("b"), unique("c")];
      const clients = await Promise.all(tags.map((tag) => connect(tag)));
      const seen = clients.map(() => [] as string[]);
      for (const [i, c] of clients.entries()) c.on(NOTE, (text) => void seen[i]?.push(text));
      for (const c of clients) await c.call(SUBSCRIBE, topic);
      await clients[0]?.call(SUBSCRIBE, other);
      const [a, b] = clients as [ChatterClient, ChatterClient, ChatterClient];
      await a.call(BROADCAST, { topics: [topic, other], text: "to all, once" });
      await a.call(BROADCAST, { topics: [topic], text: "not to c", excludeTags: [tags[2] as string] });
      await b.call(BROADCAST, { topics: [topic], text: "from b", fromSelf: true });
      await a.call(BROADCAST, { topics: [topic], text: "end" });
      await until(() => seen.every((s) => s.includes("end")), "all to finish");
      same(
        seen,
        [
          ["to all, once", "not to c", "from b", "end"],
          ["to all, once", "not to c", "end"],
          ["to all, once", "from b", "end"],
        ],
        "deliveries",
      );
    });
  });

  t.describe("streams", () => {
    test("items arrive in order through a small window, and the loop ends", async () => {
      const c = await connect(unique("stream"));
      same(await collect(c.stream(TICKS, 300, { window: 8 })), upTo(300), "300 items");
      same(await collect(c.stream(TICKS, 0)), [], "no items");
    });

    test("leaving the loop early stops the server's generator: its finally runs", async () => {
      const c = await connect(unique("leave"));
      const key = unique("endless");
      const got: number[] = [];
      for await (const n of c.stream(ENDLESS, key)) {
        got.push(n);
        if (n === 5) break;
      }
      same(got, upTo(6), "items before leaving");
      await until(() => c.call(FINISHED, key), "the generator's finally");
    });

    test("an error thrown by the generator reaches the loop with its code, after the items before it", async () => {
      const c = await connect(unique("stream-fail"));
      const got: number[] = [];
      const read = async () => {
        for await (const n of c.stream(STREAM_FAIL, "no more")) got.push(n);
      };
      const err = await failsWith(read(), "FORBIDDEN", "generator error");
      same([got, err.message], [[1], "no more"], "items and message");
    });

    test("the server reads a stream from the client's generator", async () => {
      const c = await connect(unique("upper"));
      c.on(UPPER, async function* (text) {
        for (const word of text.split(" ")) yield word.toUpperCase();
      });
      same(await c.call(READ_ME, "from the client"), ["FROM", "THE", "CLIENT"], "items read by the server");
    });
  });

  t.describe("sessions", () => {
    test("after a drop the session resumes: calls in flight run once, subscriptions and missed broadcasts survive", async () => {
      const topic = unique("resume");
      const c = await connect(unique("resume"));
      const seen: string[] = [];
      c.on(NOTE, (text) => void seen.push(text));
      await c.call(SUBSCRIBE, topic);
      const sessionId = c.sessionId;
      const key = unique("work");
      const work = c.call(WORK, { key, ms: 150 });
      await c.call(BROADCAST, { topics: [topic], text: "while away", delay: 40 });
      await c.call(DROP);
      same(await work, `done ${key}`, "work result");
      await until(() => c.isConnected, "resume");
      same([c.resumed, c.sessionId], [true, sessionId], "resumed session");
      same(await c.call(RUNS, key), 1, "handler runs");
      await c.call(BROADCAST, { topics: [topic], text: "after" });
      await until(() => seen.includes("after"), "broadcast after resume");
      same(seen, ["while away", "after"], "broadcasts");
    });
  });
}

/** @returns how many tests `conformance` defines for one server, so a runner's count can be checked against it */
export function conformanceTestCount(): number {
  let count = 0;
  conformance({ describe: (_name, fn) => void fn(), test: () => void count++ }, { url: "ws://127.0.0.1:1" });
  return count;
}
