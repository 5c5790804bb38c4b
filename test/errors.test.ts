import { afterEach, describe, expect, test } from "bun:test";
import { z } from "zod";
import { ChatterError, ConnectionState, createProc, type ServerConnection } from "../src/index.ts";
import { encode } from "../src/wire/codec.ts";
import { FrameType } from "../src/wire/frames.ts";
import { hold, rawSocket, startServer, type TestServer, waitFor } from "./helpers.ts";
import { bunSocketOf } from "./internals.ts";
import { ADD, ECHO, GREET, SLOW } from "./procs.ts";

// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
afterEach(() => srv?.stop());

const connOf = (client: { clientId: string }) => srv.chatter.find((c) => c.clientId === client.clientId) as ServerConnection<unknown>;

describe("VALIDATION", () => {
  test("bad input fails before it is sent, with the issues and their paths", async () => {
    srv = startServer();
    let ran = 0;
    srv.chatter.on(ADD, ({ a, b }) => {
      ran++;
      return a + b;
    });
    const client = await srv.client();
    const err = (await client.call(ADD, { a: 1, b: "2" as unknown as number }).catch((e) => e)) as ChatterError;
    expect(err).toBeInstanceOf(ChatterError);
    expect(err.code).toBe("VALIDATION");
    expect(err.message).toContain('input of "add" failed its schema');
    expect(err.issues).toEqual([{ message: expect.stringContaining("expected number"), path: ["b"] }]);
    expect(ran).toBe(0);
  });

  test("bad input is also caught on arrival (a peer that skips the check)", async () => {
    srv = startServer();
    srv.chatter.on(GREET, ({ name }) => `hi ${name}`);
    const raw = await rawSocket(srv.url);
    raw.send([FrameType.Call, 1, "greet", { name: 7 }, 0, 1]);
    const frame = await raw.next(FrameType.Error);
    expect(frame).toEqual([
      FrameType.Error,
      1,
      { code: "VALIDATION", message: expect.stringContaining("greet"), issues: [{ message: expect.any(String), path: ["name"] }] },
    ]);
  });

  test("a handler result that fails `returns` is refused on the handler's side", async () => {
    srv = startServer();
    srv.chatter.on(ADD, () => "not a number" as unknown as number);
    const client = await srv.client();
    await expect(client.call(ADD, { a: 1, b: 2 })).rejects.toMatchObject({
      code: "VALIDATION",
      message: expect.stringContaining('result of "add" failed its schema'),
    });
  });

  test("a result that fails `returns` is caught on arrival by the caller", async () => {
    srv = startServer();
    const raw = await rawSocket(srv.url);
    const conn = srv.chatter.find((c) => c.clientId === raw.clientId) as ServerConnection<unknown>;
    const pending = conn.call(ADD, { a: 1, b: 2 });
    const call = await raw.next(FrameType.Call);
    raw.send([FrameType.Result, call[1] as number, "three"]);
    await expect(pending).rejects.toMatchObject({ code: "VALIDATION", issues: [{ path: [] }] });
  });

  test("transforms run once, on the receiving side", async () => {
    const LEN = createProc({ name: "len", takes: z.string().transform((s) => s.length), returns: z.number().transform((n) => `${n}!`) });
    srv = startServer();
    srv.chatter.on(LEN, (n) => n * 2);
    const client = await srv.client();
    expect(await client.call(LEN, "abc")).toBe("6!");
  });

  test("async schemas work on both ends", async () => {
    const ASYNC = createProc({ name: "async", takes: z.string().refine(async (s) => s !== "bad"), returns: z.string() });
    srv = startServer();
    srv.chatter.on(ASYNC, async (s) => s.toUpperCase());
    const client = await srv.client();
    expect(await client.call(ASYNC, "ok")).toBe("OK");
    await expect(client.call(ASYNC, "bad")).rejects.toMatchObject({ code: "VALIDATION" });
  });
});

describe("NOT_IMPLEMENTED", () => {
  test("client to server names the procedure", async () => {
    srv = startServer();
    const client = await srv.client();
    await expect(client.call(ADD, { a: 1, b: 1 })).rejects.toMatchObject({
      code: "NOT_IMPLEMENTED",
      message: '"add" is not implemented on the server',
    });
  });

  test("server to client names the procedure", async () => {
    srv = startServer();
    const client = await srv.client();
    await expect(connOf(client).call(ECHO, 1)).rejects.toMatchObject({
      code: "NOT_IMPLEMENTED",
      message: '"echo" is not implemented on the client',
    });
  });
});

describe("TIMEOUT", () => {
  test("gives the procedure and the milliseconds; the late result is ignored", async () => {
    srv = startServer();
    const slow = hold();
    srv.chatter.on(SLOW, async () => {
      await slow.wait();
      return "late";
    });
    const client = await srv.client();
    await expect(client.call(SLOW, 0, { timeout: 30 })).rejects.toMatchObject({
      code: "TIMEOUT",
      message: 'call to "slow" timed out after 30 ms',
    });
    // The late result comes first and is dropped; the connection is still healthy afterwards.
    slow.release();
    expect(await client.call(SLOW, 1)).toBe("late");
  });

  test("the proc's own timeout applies when the call sets none", async () => {
    const QUICK = createProc({ name: "quick", timeout: 25 });
    srv = startServer();
    srv.chatter.on(QUICK, () => new Promise(() => {})); // never answers
    const client = await srv.client();
    await expect(client.call(QUICK)).rejects.toMatchObject({ code: "TIMEOUT", message: expect.stringContaining("25 ms") });
  });

  test("a timeout reaches the handler as an aborted signal", async () => {
    srv = startServer();
    let aborted: unknown;
    srv.chatter.on(
      SLOW,
      (ms, _conn, ctx) =>
        new Promise<string>((resolve) => {
          const t = setTimeout(() => resolve("done"), ms);
          ctx.signal.addEventListener("abort", () => {
            clearTimeout(t);
            aborted = ctx.signal.reason;
            resolve("stopped");
          });
        }),
    );
    const client = await srv.client();
    await expect(client.call(SLOW, 1000, { timeout: 20 })).rejects.toMatchObject({ code: "TIMEOUT" });
    await waitFor(() => aborted);
    expect(aborted).toMatchObject({ code: "ABORTED" });
  });
});

describe("ABORTED", () => {
  test("aborting the signal rejects at once and cancels the remote handler", async () => {
    srv = startServer();
    let handlerSaw = false;
    const running = Promise.withResolvers<void>();
    srv.chatter.on(SLOW, (_ms, _c, ctx) => {
      running.resolve();
      // Answers only once its signal aborts.
      return new Promise<string>((resolve) =>
        ctx.signal.addEventListener("abort", () => {
          handlerSaw = ctx.signal.aborted;
          resolve("x");
        }),
      );
    });
    const client = await srv.client();
    const ac = new AbortController();
    const p = client.call(SLOW, 50, { signal: ac.signal });
    await running.promise;
    ac.abort(new Error("user left"));
    await expect(p).rejects.toMatchObject({ code: "ABORTED", message: 'call to "slow" was aborted: user left' });
    await waitFor(() => handlerSaw, 1000, "handler to see the abort");
  });

  test("an already-aborted signal never sends the call", async () => {
    srv = startServer();
    let ran = 0;
    srv.chatter.on(ADD, () => ++ran);
    const client = await srv.client();
    await expect(client.call(ADD, { a: 1, b: 1 }, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: "ABORTED" });
    expect(await client.call(ADD, { a: 1, b: 1 })).toBe(1);
  });
});

describe("HANDLER_ERROR", () => {
  test("carries the handler's message and no stack by default", async () => {
    srv = startServer();
    srv.chatter.on(ADD, () => {
      throw new Error("division by zebra");
    });
    const client = await srv.client();
    const err = (await client.call(ADD, { a: 1, b: 1 }).catch((e) => e)) as ChatterError;
    expect(err.code).toBe("HANDLER_ERROR");
    expect(err.message).toBe('handler for "add" failed: division by zebra');
    expect(err.remoteStack).toBeUndefined();
  });

  test("sends the stack when exposeStack is set", async () => {
    srv = startServer({ exposeStack: true });
    srv.chatter.on(ADD, async () => {
      throw new Error("with stack");
    });
    const client = await srv.client();
    const err = (await client.call(ADD, { a: 1, b: 1 }).catch((e) => e)) as ChatterError;
    expect(err.remoteStack).toContain("with stack");
  });

  test("a thrown ChatterError keeps its own code (server to client too)", async () => {
    srv = startServer();
    const client = await srv.client();
    client.on(ECHO, () => {
      throw new ChatterError("FORBIDDEN", "not yours");
    });
    await expect(connOf(client).call(ECHO, 1)).rejects.toMatchObject({ code: "FORBIDDEN", message: "not yours" });
  });
});

describe("DISCONNECTED", () => {
  test("in-flight calls fail when the connection drops, saying they may have run", async () => {
    srv = startServer();
    const slow = hold(); // never released: the handler is still running when the socket drops
    srv.chatter.on(SLOW, async () => {
      await slow.wait();
      return "x";
    });
    const client = await srv.client();
    const p = client.call(SLOW, 500);
    await slow.entered;
    connOf(client).close(1011, "test drop"); // ends the session: no resume
    await expect(p).rejects.toMatchObject({ code: "DISCONNECTED", message: expect.stringContaining("may or may not have run") });
  });

  test("server-to-client calls fail when the client goes away", async () => {
    srv = startServer();
    const client = await srv.client();
    const stuck = hold(); // never released
    client.on(ECHO, () => stuck.wait());
    const p = connOf(client).call(ECHO, 1);
    await stuck.entered;
    client.close();
    await expect(p).rejects.toMatchObject({ code: "DISCONNECTED" });
  });

  test("calls on a closed client fail at once", async () => {
    srv = startServer();
    const client = await srv.client();
    client.close();
    expect(client.state).toBe(ConnectionState.Disconnected);
    await expect(client.call(ADD, { a: 1, b: 1 })).rejects.toMatchObject({ code: "DISCONNECTED" });
  });
});

describe("PROTOCOL", () => {
  test("a malformed frame closes that socket with 1002 and a reason; others keep working", async () => {
    srv = startServer();
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    const good = await srv.client();
    const bad = await rawSocket(srv.url);
    bad.send(new Uint8Array([0xc1, 0xff, 0x00]));
    const closed = await bad.closed;
    expect(closed.code).toBe(1002);
    expect(closed.reason).toContain("malformed frame");
    expect(await good.call(ADD, { a: 2, b: 2 })).toBe(4);
  });

  test("a text frame, an unknown frame type and a frame before HELLO are each refused", async () => {
    srv = startServer();
    const text = await rawSocket(srv.url);
    text.send("hello?");
    expect(await text.closed).toEqual({ code: 1002, reason: "text frames are not part of the protocol" });
    const unknown = await rawSocket(srv.url);
    unknown.send(encode([99]));
    expect((await unknown.closed).reason).toBe("malformed frame: unknown frame type 99");
    const early = await rawSocket(srv.url, false);
    early.send([FrameType.Ping, 0]);
    expect((await early.closed).reason).toBe("the first frame must be HELLO");
  });

  test("the client drops a server that sends garbage, then reconnects and resumes", async () => {
    srv = startServer();
    const client = await srv.client();
    const states: string[] = [];
    client.onStateChange((s) => void states.push(s));
    const conn = connOf(client);
    bunSocketOf(conn)!.send(new Uint8Array([1, 2, 3]));
    await waitFor(() => states.at(-1) === ConnectionState.Connected, 3000, "reconnect");
    expect(states).toEqual([ConnectionState.Disconnected, ConnectionState.Connecting, ConnectionState.Connected]);
    expect(client.resumed).toBe(true);
    expect(connOf(client)).toBe(conn);
  });
});
