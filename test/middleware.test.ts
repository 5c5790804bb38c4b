/**
 * Middleware around incoming calls and broadcasts (`server.use`,
 * `client.use`), and the server's `formatError`, over real sockets.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { z } from "zod";
import type { CallContext } from "../src/engine/context.ts";
import type { Middleware } from "../src/engine/middleware.ts";
import { type ChatterClient, ChatterError, createProc, type ServerConnection } from "../src/index.ts";
import { FrameType } from "../src/wire/frames.ts";
import { nextTurn, rawSocket, startServer, type TestServer, waitFor } from "./helpers.ts";
import { ADD, ECHO, NOTE, SLOW } from "./procs.ts";

let srv: TestServer<unknown>;
afterEach(() => srv?.stop());

/** Registers middlewares on a server or a client, in order, with its public `use`. */
function hook(end: TestServer<unknown> | ChatterClient, hooks: { middleware: Middleware<never>[] }): void {
  for (const m of hooks.middleware) {
    if ("chatter" in end) end.chatter.use(m as Middleware<ServerConnection>);
    else end.use(m as Middleware<ChatterClient>);
  }
}

const only = () => srv.chatter.find(() => true) as ServerConnection<unknown>;
const SHOUT = createProc({ name: "shout", takes: z.string().transform((s) => s.toUpperCase()), returns: z.string() });

describe("server middleware", () => {
  test("runs in registration order around the handler, with the parsed input, the connection and ctx.proc", async () => {
    srv = startServer();
    const seen: unknown[] = [];
    const trace =
      (tag: string): Middleware<ServerConnection> =>
      async (input, conn, ctx, next) => {
        seen.push(`${tag} in: ${ctx.proc} ${String(input)} ${conn === only()}`);
        const out = await next();
        seen.push(`${tag} out: ${String(out)}`);
        return out;
      };
    hook(srv, { middleware: [trace("a"), trace("b")] });
    srv.chatter.on(SHOUT, (s) => {
      seen.push("handler");
      return `${s}!`;
    });
    const client = await srv.client();
    expect(await client.call(SHOUT, "hi")).toBe("HI!");
    expect(seen).toEqual(["a in: shout HI true", "b in: shout HI true", "handler", "b out: HI!", "a out: HI!"]);
  });

  test("next(input) passes a changed input on; a middleware may change and time the result", async () => {
    srv = startServer();
    let took = -1;
    hook(srv, {
      middleware: [
        async (_input, _conn, _ctx, next) => {
          const t0 = performance.now();
          const out = await next();
          took = performance.now() - t0;
          return (out as number) * 10;
        },
        (input, _conn, _ctx, next) => next({ ...(input as object), b: 100 }),
      ],
    });
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    const client = await srv.client();
    expect(await client.call(ADD, { a: 1, b: 2 })).toBe(1010);
    expect(took).toBeGreaterThanOrEqual(0);
  });

  test("a thrown ChatterError refuses the call before the handler, and arrives with its code and message as written", async () => {
    srv = startServer();
    let ran = false;
    hook(srv, {
      middleware: [
        (input, _conn, ctx, next) => {
          if (ctx.proc === "add" && (input as { a: number }).a < 0) throw new ChatterError("FORBIDDEN", "not yours");
          return next();
        },
      ],
    });
    srv.chatter.on(ADD, ({ a, b }) => {
      ran = true;
      return a + b;
    });
    const client = await srv.client();
    await expect(client.call(ADD, { a: -1, b: 2 })).rejects.toMatchObject({ code: "FORBIDDEN", message: "not yours" });
    expect(ran).toBe(false);
    expect(await client.call(ADD, { a: 1, b: 2 })).toBe(3);
  });

  test("a handler's error passes back through sync and async middlewares with no rejection left unhandled", async () => {
    srv = startServer();
    hook(srv, { middleware: [async (_i, _c, _x, next) => next(), (_i, _c, _x, next) => next()] });
    srv.chatter.on(ADD, async ({ a }) => {
      if (a === 0) throw new ChatterError("FORBIDDEN", "sync path");
      await nextTurn();
      throw new ChatterError("FORBIDDEN", "async path");
    });
    const client = await srv.client();
    // Bun fails a test on a rejection that had no handler for a microtask inside a WebSocket handler.
    await expect(client.call(ADD, { a: 0, b: 0 })).rejects.toMatchObject({ code: "FORBIDDEN", message: "sync path" });
    await expect(client.call(ADD, { a: 1, b: 0 })).rejects.toMatchObject({ code: "FORBIDDEN", message: "async path" });
  });

  test("`returns` checks the result after the whole chain", async () => {
    srv = startServer();
    hook(srv, { middleware: [async (_i, _c, _x, next) => `${await next()}`] });
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    const client = await srv.client();
    await expect(client.call(ADD, { a: 1, b: 2 })).rejects.toMatchObject({ code: "VALIDATION" });
  });

  test("input that fails `takes` is refused before any middleware runs", async () => {
    srv = startServer();
    let calls = 0;
    hook(srv, {
      middleware: [
        (_i, _c, _x, next) => {
          calls++;
          return next();
        },
      ],
    });
    srv.chatter.on(ADD, ({ a, b }) => a + b);
    const raw = await rawSocket(srv.url);
    raw.send([FrameType.Call, 1, "add", { a: "one" }, 0, 1]);
    const [, , error] = await raw.next(FrameType.Error);
    expect(error).toMatchObject({ code: "VALIDATION" });
    expect(calls).toBe(0);
    raw.ws.close();
  });

  test("calling next() twice rejects instead of running the handler again", async () => {
    srv = startServer();
    let runs = 0;
    hook(srv, {
      middleware: [
        async (_i, _c, _x, next) => {
          await next();
          return next();
        },
      ],
    });
    srv.chatter.on(ADD, ({ a, b }) => {
      runs++;
      return a + b;
    });
    const client = await srv.client();
    const err = (await client.call(ADD, { a: 1, b: 2 }).catch((e) => e)) as ChatterError;
    expect(err.code).toBe("HANDLER_ERROR");
    expect(err.message).toContain('called next() twice for "add"');
    expect(runs).toBe(1);
  });

  test("a middleware may answer without calling next: the handler does not run", async () => {
    srv = startServer();
    hook(srv, { middleware: [(input, _c, ctx, next) => (ctx.proc === "echo" && input === "cached" ? "from cache" : next())] });
    srv.chatter.on(ECHO, () => "from handler");
    const client = await srv.client();
    expect(await client.call(ECHO, "cached")).toBe("from cache");
    expect(await client.call(ECHO, "other")).toBe("from handler");
  });

  test("ctx.signal aborts inside a middleware when the caller gives up", async () => {
    srv = startServer();
    let aborted: unknown = null;
    hook(srv, {
      middleware: [
        (_i, _c, ctx, next) => {
          ctx.signal.addEventListener("abort", () => {
            aborted = ctx.signal.reason;
          });
          return next();
        },
      ],
    });
    srv.chatter.on(SLOW, () => new Promise<string>(() => {}));
    const client = await srv.client();
    await expect(client.call(SLOW, 1, { timeout: 30 })).rejects.toMatchObject({ code: "TIMEOUT" });
    await waitFor(() => aborted !== null, 3000, "the abort");
    expect(aborted).toMatchObject({ code: "ABORTED" });
  });
});

describe("client middleware", () => {
  test("wraps the server's calls to the client, with the client as owner", async () => {
    srv = startServer();
    const client = await srv.client();
    const seen: string[] = [];
    hook(client, {
      middleware: [
        async (input, owner, ctx, next) => {
          seen.push(`${ctx.proc} ${String(input)} ${owner === client}`);
          return `${await next(`${input}?`)}!`;
        },
      ],
    });
    client.on(SHOUT, (s) => s);
    expect(await only().call(SHOUT, "hey")).toBe("HEY?!");
    expect(seen).toEqual(["shout HEY true"]);
  });

  test("wraps broadcasts (EVENT frames): changes their input, and may drop them", async () => {
    srv = startServer({ onOpen: (c) => c.subscribe("room") });
    const client = await srv.client();
    const got: string[] = [];
    const procs: string[] = [];
    hook(client, {
      middleware: [
        (input, _owner, ctx, next) => {
          procs.push(ctx.proc);
          if (input === "spam") throw new ChatterError("FORBIDDEN", "muted");
          return next(`<${input}>`);
        },
      ],
    });
    client.on(NOTE, (s) => void got.push(s));
    for (const note of ["hi", "spam", "bye"]) srv.chatter.broadcast("room", NOTE, note);
    await waitFor(() => got.length === 2, 3000, "two broadcasts");
    expect(got).toEqual(["<hi>", "<bye>"]);
    expect(procs).toEqual(["note", "note", "note"]);
  });
});

describe("formatError", () => {
  /** Hides what the app did not mean to show; passes the app's own ChatterErrors. */
  const production = (err: unknown) => (err instanceof ChatterError ? err : new ChatterError("INTERNAL", "something went wrong"));

  test("hides an unexpected error's message; a ChatterError the app threw arrives as written", async () => {
    srv = startServer({ formatError: production });
    srv.chatter.on(ADD, ({ a }) => {
      if (a === 0) throw new ChatterError("FORBIDDEN", "not yours");
      throw new Error("connection to db://admin:hunter2@db failed");
    });
    const client = await srv.client();
    const leak = (await client.call(ADD, { a: 1, b: 1 }).catch((e) => e)) as ChatterError;
    expect({ code: leak.code, message: leak.message }).toEqual({ code: "INTERNAL", message: "something went wrong" });
    await expect(client.call(ADD, { a: 0, b: 1 })).rejects.toMatchObject({ code: "FORBIDDEN", message: "not yours" });
  });

  test("sees every error that leaves: validation on arrival, middleware, NOT_IMPLEMENTED and LIMIT refusals, bad results", async () => {
    const seen: string[] = [];
    srv = startServer({
      maxConcurrentCalls: 1,
      formatError: (err, ctx: CallContext) => {
        const code = err instanceof ChatterError ? err.code : "thrown";
        seen.push(`${ctx.proc}: ${code}`);
        return new ChatterError(`APP_${code}`, "shaped");
      },
    });
    hook(srv, { middleware: [(input, _c, _x, next) => (input === "halt" ? Promise.reject(new Error("stop")) : next())] });
    srv.chatter.on(ADD, () => "not a number" as never);
    srv.chatter.on(SLOW, () => new Promise<string>(() => {}));
    srv.chatter.on(NOTE, () => {});
    const raw = await rawSocket(srv.url);
    const answer = async (frame: unknown[]) => {
      raw.send(frame as never);
      return ((await raw.next(FrameType.Error))[2] as { code: string }).code;
    };
    expect(await answer([FrameType.Call, 1, "add", { a: "x" }, 0, 1])).toBe("APP_VALIDATION");
    expect(await answer([FrameType.Call, 2, "add", { a: 1, b: 2 }, 0, 1])).toBe("APP_VALIDATION");
    expect(await answer([FrameType.Call, 3, "nope", null, 0, 1])).toBe("APP_NOT_IMPLEMENTED");
    expect(await answer([FrameType.Call, 4, "note", "halt", 0, 1])).toBe("APP_thrown");
    raw.send([FrameType.Call, 5, "slow", 1, 0, 1]);
    expect(await answer([FrameType.Call, 6, "slow", 2, 0, 1])).toBe("APP_LIMIT");
    expect(seen).toEqual(["add: VALIDATION", "add: VALIDATION", "nope: NOT_IMPLEMENTED", "note: thrown", "slow: LIMIT"]);
    raw.ws.close();
  });

  test("one that throws or returns something else is reported, and the caller gets a generic HANDLER_ERROR", async () => {
    const reported: unknown[] = [];
    let owner: unknown = null;
    let mode = "throw";
    srv = startServer({
      formatError: () => {
        if (mode === "throw") throw new Error("formatter bug");
        return { code: "X", message: "not an error" } as never;
      },
      onError: (err, conn) => {
        reported.push(err);
        owner = conn;
      },
    });
    srv.chatter.on(ADD, () => {
      throw new Error("secret detail");
    });
    const client = await srv.client();
    for (const m of ["throw", "return"]) {
      mode = m;
      const err = (await client.call(ADD, { a: 1, b: 1 }).catch((e) => e)) as ChatterError;
      expect({ code: err.code, message: err.message }).toEqual({ code: "HANDLER_ERROR", message: 'call to "add" failed' });
    }
    expect(reported.map((e) => (e as Error).message)).toEqual([
      "formatter bug",
      '[chatter] formatError returned a value of type object for "add", not a ChatterError',
    ]);
    expect(owner).toBe(only());
  });
});
