/**
 * chatter/react against a real Chatter server, rendered with React 19 and
 * @testing-library/react in happy-dom.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { GlobalRegistrator } from "@happy-dom/global-registrator";
import { StrictMode, useEffect, useState } from "react";
import { z } from "zod";
import { peerOfClient } from "../src/client/internal.ts";
import { type ChatterClient, ConnectionState, createClient, createProc, type ServerConnection } from "../src/index.ts";
import { ChatterProvider, useChatter, useConnectionState, useHandler, useProc } from "../src/react.ts";
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
beforeAll(async () => {
  srv = startServer({ onOpen: (c) => c.subscribe("news") });
  srv.chatter.on(ADD, ({ a, b }) => a + b);
  srv.chatter.on(SLOW, async (ms) => {
    if (ms) await slowCalls.wait();
    return `slept ${ms}`;
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

const wrap = (ui: React.ReactNode, strict = false) => (
  <ChatterProvider client={client}>{strict ? <StrictMode>{ui}</StrictMode> : ui}</ChatterProvider>
);

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
