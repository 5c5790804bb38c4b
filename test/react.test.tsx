/**
 * chatter/react against a real Chatter server, rendered with React 19 and
 * @testing-library/react in happy-dom.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { GlobalRegistrator } from "@happy-dom/global-registrator";
import { StrictMode, useEffect, useState } from "react";
import { z } from "zod";
import { peerOfClient } from "../src/client/internal.ts";
import { type ChatterClient, ChatterError, ConnectionState, createClient, createProc, type ServerConnection } from "../src/index.ts";
import { inputKey } from "../src/react/stream.ts";
import { ChatterProvider, useChatter, useConnectionState, useHandler, useProc, useStream } from "../src/react.ts";
import { hold, startServer, type TestServer, waitFor } from "./helpers.ts";
import { dropSocket } from "./internals.ts";
import { ADD, NOTE, SLOW } from "./procs.ts";

// Keep Bun's own WebSocket: the client must talk to the real server, not to a DOM stand-in.
const NativeWebSocket = globalThis.WebSocket;
let rtl: typeof import("@testing-library/react");
beforeAll(async () => {
  GlobalRegistrator.register();
  // We clean up ourselves; its automatic hook would register inside this one.
  process.env.RTL_SKIP_AUTO_CLEANUP = "true";
  rtl = await import("@testing-library/react");
});
afterAll(() => GlobalRegistrator.unregister());

let srv: TestServer<unknown>;
let client: ChatterClient;
/** SLOW answers at once when asked for 0 ms, and otherwise once the test releases this. */
const slowCalls = hold();
/** Yields `label0`, `label1`... `count` items, then ends, fails with `GONE`, or waits to be cancelled. */
const TICKS = createProc({
  name: "ticks",
  takes: z.object({ label: z.string(), count: z.number(), ending: z.enum(["end", "fail", "hang"]) }),
  yields: z.string(),
});
/** The server's TICKS generators, by label: which started, which run now, and which reached `finally`. */
const ticks = { started: [] as string[], running: new Set<string>(), finished: [] as string[] };
beforeAll(async () => {
  srv = startServer({ onOpen: (c) => c.subscribe("news") });
  srv.chatter.on(ADD, ({ a, b }) => a + b);
  srv.chatter.on(SLOW, async (ms) => {
    if (ms) await slowCalls.wait();
    return `slept ${ms}`;
  });
  srv.chatter.on(TICKS, async function* ({ label, count, ending }, _conn, ctx) {
    ticks.started.push(label);
    ticks.running.add(label);
    try {
      for (let i = 0; i < count; i++) yield `${label}${i}`;
      if (ending === "fail") throw new ChatterError("GONE", `ticks "${label}" ran out`);
      if (ending === "hang" && !ctx.signal.aborted) await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
    } finally {
      ticks.running.delete(label);
      ticks.finished.push(label);
    }
  });
});
afterEach(() => {
  rtl.cleanup();
  client?.close();
});
afterAll(() => srv.stop());

async function connected() {
  client = createClient({ url: srv.url, WebSocket: NativeWebSocket, reconnect: { minDelay: 5, maxDelay: 20 } });
  await waitFor(() => client.isConnected);
  return srv.chatter.find((c) => c.clientId === client.clientId) as ServerConnection<unknown>;
}

/** The client's registered handlers, to check registration and cleanup. */
const handlers = (c: ChatterClient) => peerOfClient(c).opts.handlers;

/** StrictMode goes outermost: React 19.3 runs effects twice only under a StrictMode at the root, not under a nested one. */
const wrap = (ui: React.ReactNode, strict = false) => {
  const tree = <ChatterProvider client={client}>{ui}</ChatterProvider>;
  return strict ? <StrictMode>{tree}</StrictMode> : tree;
};

describe("ChatterProvider and useChatter", () => {
  test("useChatter returns the provided client; without a provider it says what is missing", async () => {
    await connected();
    let seen: ChatterClient | undefined;
    function Probe() {
      seen = useChatter();
      return null;
    }
    rtl.render(wrap(<Probe />));
    expect(seen).toBe(client);
    const spy = console.error;
    console.error = () => {};
    try {
      expect(() => rtl.render(<Probe />)).toThrow("useChatter needs a <ChatterProvider client={...}>");
    } finally {
      console.error = spy;
    }
  });
});

describe("useHandler", () => {
  test("a server broadcast re-renders the component", async () => {
    await connected();
    function News() {
      const [text, setText] = useState("nothing yet");
      useHandler(NOTE, (note) => setText(note));
      return <p data-testid="news">{text}</p>;
    }
    const view = rtl.render(wrap(<News />));
    await rtl.waitFor(() => expect(handlers(client).has("note")).toBe(true));
    srv.chatter.broadcast("news", NOTE, "extra! extra!");
    await rtl.waitFor(() => expect(view.getByTestId("news").textContent).toBe("extra! extra!"));
  });

  test("under StrictMode one handler is registered, the latest closure runs, and unmount removes it", async () => {
    const conn = await connected();
    const ECHO_NAME = createProc({ name: "who", returns: z.string() });
    function Who({ name }: { name: string }) {
      useHandler(ECHO_NAME, () => name);
      return null;
    }
    const view = rtl.render(wrap(<Who name="first" />, true));
    await rtl.waitFor(() => expect(handlers(client).has("who")).toBe(true));
    expect(await conn.call(ECHO_NAME)).toBe("first");
    view.rerender(wrap(<Who name="second" />, true));
    expect(await conn.call(ECHO_NAME)).toBe("second");
    expect(handlers(client).size).toBe(1);
    view.unmount();
    expect(handlers(client).size).toBe(0);
    await expect(conn.call(ECHO_NAME)).rejects.toMatchObject({ code: "NOT_IMPLEMENTED" });
  });
});

describe("useProc", () => {
  function Adder({ input }: { input: { a: number; b: number } }) {
    const add = useProc(ADD);
    return (
      <div>
        <button type="button" onClick={() => add.call(input).catch(() => {})}>
          add
        </button>
        <p data-testid="status">{add.status}</p>
        <p data-testid="result">{String(add.result)}</p>
        <p data-testid="error">{add.error?.code ?? ""}</p>
      </div>
    );
  }

  test("moves idle -> pending -> success with the result", async () => {
    await connected();
    const statuses: string[] = [];
    function Tracked() {
      const add = useProc(ADD);
      statuses.push(add.status);
      useEffect(() => {
        if (add.status === "idle") add.call({ a: 2, b: 3 });
      }, [add]);
      return <p data-testid="result">{String(add.result)}</p>;
    }
    const view = rtl.render(wrap(<Tracked />));
    await rtl.waitFor(() => expect(view.getByTestId("result").textContent).toBe("5"));
    expect([...new Set(statuses)]).toEqual(["idle", "pending", "success"]);
  });

  test("reports error codes: VALIDATION before sending, NOT_IMPLEMENTED from the server", async () => {
    await connected();
    const view = rtl.render(wrap(<Adder input={{ a: 1, b: "x" as unknown as number }} />));
    rtl.fireEvent.click(view.getByText("add"));
    await rtl.waitFor(() => expect(view.getByTestId("status").textContent).toBe("error"));
    expect(view.getByTestId("error").textContent).toBe("VALIDATION");
    const MISSING = createProc({ name: "not_on_server" });
    function Missing() {
      const p = useProc(MISSING);
      useEffect(() => {
        if (p.status === "idle") p.call().catch(() => {});
      }, [p]);
      return <p data-testid="missing">{p.error?.code ?? p.status}</p>;
    }
    const other = rtl.render(wrap(<Missing />));
    await rtl.waitFor(() => expect(other.getByTestId("missing").textContent).toBe("NOT_IMPLEMENTED"));
  });

  test("only the latest call's result wins", async () => {
    await connected();
    let slow: ReturnType<typeof useProc<typeof SLOW>> | undefined;
    function Sleeper() {
      slow = useProc(SLOW);
      return <p data-testid="slept">{slow.result ?? slow.status}</p>;
    }
    const view = rtl.render(wrap(<Sleeper />));
    const first = slow!.call(120);
    const second = slow!.call(0);
    await second;
    await rtl.waitFor(() => expect(view.getByTestId("slept").textContent).toBe("slept 0"));
    // The first answers last; act renders whatever its result set before returning.
    slowCalls.release();
    await rtl.act(async () => {
      await first;
    });
    expect(view.getByTestId("slept").textContent).toBe("slept 0");
  });

  test("a call made after unmount is harmless", async () => {
    await connected();
    let add: ReturnType<typeof useProc<typeof ADD>> | undefined;
    function Holder() {
      add = useProc(ADD);
      return null;
    }
    const view = rtl.render(wrap(<Holder />));
    view.unmount();
    const errors: unknown[] = [];
    const spy = console.error;
    console.error = (...a: unknown[]) => void errors.push(a);
    try {
      expect(await add!.call({ a: 1, b: 1 })).toBe(2);
    } finally {
      console.error = spy;
    }
    expect(errors).toEqual([]);
  });
});

describe("useConnectionState", () => {
  test("follows a forced reconnect: resumes, then reports a reset", async () => {
    const conn = await connected();
    const seen: string[] = [];
    function Status() {
      const s = useConnectionState();
      seen.push(`${s.state}${s.resumed ? " resumed" : ""}${s.reset ? " reset" : ""}`);
      return <p data-testid="state">{`${s.state}|${s.resumed}|${s.reset}|${s.resets}`}</p>;
    }
    const view = rtl.render(wrap(<Status />, true));
    expect(view.getByTestId("state").textContent).toBe("connected|false|false|0");
    // A drop the session survives.
    dropSocket(conn, 4010, "test drop");
    await rtl.waitFor(() => expect(seen).toContain("connected resumed"));
    expect(seen).toContain(ConnectionState.Disconnected);
    // A session the server ends: the client comes back with a fresh one.
    conn.close(1000, "reset by test");
    await rtl.waitFor(() => expect(view.getByTestId("state").textContent).toBe("connected|false|true|1"));
  });
});

describe("useStream", () => {
  type TicksInput = { label: string; count: number; ending: "end" | "fail" | "hang" };
  let renders = 0;
  /** Builds its input as a new object literal on every render, as an app would. */
  function Ticks({ label, count = 3, ending = "hang", enabled }: Partial<TicksInput> & { label: string; enabled?: boolean }) {
    const s = useStream(TICKS, { label, count, ending }, { enabled });
    renders++;
    return (
      <div>
        <p data-testid="items">{s.items.join(",")}</p>
        <p data-testid="latest">{String(s.latest)}</p>
        <p data-testid="status">{s.status}</p>
        <p data-testid="error">{s.error?.code ?? ""}</p>
      </div>
    );
  }
  const text = (view: ReturnType<typeof rtl.render>, id: string) => view.getByTestId(id).textContent;

  test("shows every item in order, the latest, and done when the generator ends", async () => {
    await connected();
    const view = rtl.render(wrap(<Ticks label="order" count={50} ending="end" />));
    expect(text(view, "status")).toBe("streaming");
    await rtl.waitFor(() => expect(text(view, "status")).toBe("done"));
    expect(text(view, "items")).toBe(Array.from({ length: 50 }, (_, i) => `order${i}`).join(","));
    expect(text(view, "latest")).toBe("order49");
  });

  test("items re-render once per animation frame, not once per item; the end shows at once", async () => {
    await connected();
    const frames: FrameRequestCallback[] = [];
    const { requestAnimationFrame: raf, cancelAnimationFrame: caf } = globalThis;
    globalThis.requestAnimationFrame = (fn) => frames.push(fn);
    globalThis.cancelAnimationFrame = (id) => {
      frames[id - 1] = () => {};
    };
    try {
      renders = 0;
      const view = rtl.render(wrap(<Ticks label="frames" count={200} ending="end" />));
      // No frame ever comes: the items wait for one, and the end brings them all.
      await rtl.waitFor(() => expect(text(view, "status")).toBe("done"));
      expect(text(view, "items")?.split(",")).toHaveLength(200);
      expect(frames).toHaveLength(1);
      expect(renders).toBe(2);
      view.unmount();
      // A generator that keeps going shows its items when a frame comes.
      const live = rtl.render(wrap(<Ticks label="live" count={3} />));
      await rtl.waitFor(() => {
        for (const fn of frames.splice(0)) fn(0);
        expect(text(live, "items")).toBe("live0,live1,live2");
      });
      expect(text(live, "status")).toBe("streaming");
    } finally {
      Object.assign(globalThis, { requestAnimationFrame: raf, cancelAnimationFrame: caf });
    }
  });

  test("unmount cancels the server's generator", async () => {
    await connected();
    const view = rtl.render(wrap(<Ticks label="unmount" />));
    await rtl.waitFor(() => expect(text(view, "items")).toBe("unmount0,unmount1,unmount2"));
    expect(ticks.running.has("unmount")).toBe(true);
    view.unmount();
    await waitFor(() => ticks.finished.includes("unmount"), 3000, "the generator's finally");
    expect(ticks.running.has("unmount")).toBe(false);
  });

  test("an equal input keeps the stream; a new one stops it and starts afresh, never mixing the two", async () => {
    await connected();
    const seen: string[] = [];
    function Watch({ label }: { label: string }) {
      const s = useStream(TICKS, { label, count: 2, ending: "hang" });
      seen.push(s.items.join(","));
      return <p data-testid="items">{s.items.join(",")}</p>;
    }
    const view = rtl.render(wrap(<Watch label="first" />));
    await rtl.waitFor(() => expect(text(view, "items")).toBe("first0,first1"));
    view.rerender(wrap(<Watch label="first" />));
    view.rerender(wrap(<Watch label="first" />));
    expect(ticks.started.filter((l) => l === "first")).toHaveLength(1);
    view.rerender(wrap(<Watch label="second" />));
    expect(text(view, "items")).toBe("");
    await rtl.waitFor(() => expect(text(view, "items")).toBe("second0,second1"));
    await waitFor(() => ticks.finished.includes("first"), 3000, "the first generator's finally");
    expect(ticks.running.has("second")).toBe(true);
    expect(seen.filter((items) => items.includes("first") && items.includes("second"))).toEqual([]);
    view.unmount();
    await waitFor(() => ticks.finished.includes("second"), 3000, "the second generator's finally");
  });

  test("a failing generator shows status error with its code, and keeps the items so far", async () => {
    await connected();
    const view = rtl.render(wrap(<Ticks label="fails" count={2} ending="fail" />));
    await rtl.waitFor(() => expect(text(view, "status")).toBe("error"));
    expect(text(view, "error")).toBe("GONE");
    expect(text(view, "items")).toBe("fails0,fails1");
  });

  test("enabled: false stops the generator and resets to idle; enabling again starts afresh", async () => {
    await connected();
    const view = rtl.render(wrap(<Ticks label="toggle" count={1} enabled={false} />));
    expect(text(view, "status")).toBe("idle");
    view.rerender(wrap(<Ticks label="toggle" count={1} />));
    await rtl.waitFor(() => expect(text(view, "items")).toBe("toggle0"));
    view.rerender(wrap(<Ticks label="toggle" count={1} enabled={false} />));
    expect(text(view, "status")).toBe("idle");
    expect(text(view, "items")).toBe("");
    await waitFor(() => ticks.finished.includes("toggle"), 3000, "the generator's finally");
    view.rerender(wrap(<Ticks label="toggle" count={1} />));
    expect(text(view, "items")).toBe("");
    await rtl.waitFor(() => expect(text(view, "items")).toBe("toggle0"));
    expect(ticks.started.filter((l) => l === "toggle")).toHaveLength(2);
  });

  test("under StrictMode exactly one generator starts, and unmount stops it", async () => {
    await connected();
    const view = rtl.render(wrap(<Ticks label="strict" />, true));
    await rtl.waitFor(() => expect(text(view, "items")).toBe("strict0,strict1,strict2"));
    expect(ticks.started.filter((l) => l === "strict")).toHaveLength(1);
    expect(ticks.running.has("strict")).toBe(true);
    view.unmount();
    await waitFor(() => ticks.finished.includes("strict"), 3000, "the generator's finally");
    expect(ticks.started.filter((l) => l === "strict")).toHaveLength(1);
  });
  test("types: items are the yields schema's output; useStream wants yields, and useProc's call refuses a stream", () => {
    // Never rendered: tsc checks it.
    function Typed() {
      const s = useStream(TICKS, { label: "t", count: 1, ending: "end" }, { enabled: false, timeout: 0 });
      const first: string | undefined = s.items[0] ?? s.latest;
      // @ts-expect-error ADD has no yields: call it with useProc
      useStream(ADD, { a: 1, b: 2 });
      // @ts-expect-error TICKS yields: read it with useStream
      useProc(TICKS).call({ label: "t", count: 1, ending: "end" });
      return first ?? null;
    }
    expect(Typed).toBeFunction();
  });
});

describe("inputKey", () => {
  test("equal exactly when the wire would carry equal values", () => {
    expect(inputKey({ a: 1, b: [2, { c: 3 }] })).toBe(inputKey({ b: [2, { c: 3 }], a: 1 }));
    expect(inputKey(new Map([["k", 1]]))).not.toBe(inputKey(new Map([["k", 2]])));
    expect(inputKey(new Set([1]))).not.toBe(inputKey(new Set([2])));
    expect(inputKey(new Map())).not.toBe(inputKey({}));
    expect(inputKey(1n)).not.toBe(inputKey(1));
    expect(inputKey("1")).not.toBe(inputKey(1));
    expect(inputKey(new Date(1))).not.toBe(inputKey(new Date(2)));
    expect(inputKey(new Uint8Array([1, 2]))).not.toBe(inputKey([1, 2]));
    expect(inputKey({ a: undefined })).not.toBe(inputKey({}));
    expect(inputKey(null)).not.toBe(inputKey(undefined));
    const shared = { x: 1 };
    expect(inputKey([shared, shared])).toBe(inputKey([{ x: 1 }, { x: 1 }]));
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    expect(() => inputKey(loop)).toThrow("refers to itself");
  });
});
