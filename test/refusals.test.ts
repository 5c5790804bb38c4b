/**
 * A refused connection is an error the client sees (issue 12, item 1): the
 * server accepts the socket only to say why, and the client reports it,
 * fails what waits, and retries only when retrying can help.
 */
import { afterEach, expect, jest, test } from "bun:test";
import { type ChatterError, ChatterError as ChatterErrorClass, ConnectionState, createClient } from "../src/index.ts";
import { startServer, type TestServer, waitFor, waitForState, withFakeTimers } from "./helpers.ts";
import { ADD } from "./procs.ts";

// biome-ignore lint/suspicious/noExplicitAny: each test picks its own connection data type
let srv: TestServer<any>;
afterEach(() => srv?.stop());

/** A client that records the errors it reports. */
function watched(options: Parameters<typeof createClient>[0]) {
  const client = createClient({ reconnect: { minDelay: 20, maxDelay: 100 }, ...options });
  const errors: ChatterError[] = [];
  client.onError((err) => void errors.push(err));
  return { client, errors };
}

test("refused by getConnectionData: onError gets UNAUTHORIZED, waiting calls fail with it, and the client stops", async () => {
  let attempts = 0;
  srv = startServer({
    getConnectionData: () => {
      attempts++;
      throw new Error("no session cookie");
    },
  });
  await withFakeTimers(async () => {
    const { client, errors } = watched({ url: srv.url });
    const queued = client.call(ADD, { a: 1, b: 2 });
    await expect(queued).rejects.toMatchObject({ code: "UNAUTHORIZED" });
    expect(errors.map((e) => e.code)).toEqual(["UNAUTHORIZED"]);
    // Its message says nothing of the server's internals.
    expect(errors[0]?.message).not.toContain("no session cookie");
    await waitForState(client, ConnectionState.Disconnected);
    // A retry timer would fire in this minute and start connecting at once.
    jest.advanceTimersByTime(60_000);
    expect(client.state).toBe(ConnectionState.Disconnected);
    expect(attempts).toBe(1);
    client.close();
  });
});

test("a ChatterError thrown by getConnectionData reaches the client with its own code and message", async () => {
  srv = startServer({
    getConnectionData: () => {
      throw new ChatterErrorClass("BANNED", "this account is suspended");
    },
  });
  const { client, errors } = watched({ url: srv.url });
  await waitFor(() => errors.length === 1, 3000, "the refusal");
  expect(errors[0]?.code).toBe("BANNED");
  expect(errors[0]?.message).toContain("this account is suspended");
  client.close();
});

test("a bad origin is FORBIDDEN", async () => {
  srv = startServer({ allowedOrigins: ["https://app.example"] });
  class FromElsewhere extends WebSocket {
    constructor(url: string) {
      super(url, { headers: { Origin: "https://evil.example" } } as never);
    }
  }
  const { client, errors } = watched({ url: srv.url, WebSocket: FromElsewhere });
  await waitFor(() => errors.length === 1, 3000, "the refusal");
  expect(errors[0]?.code).toBe("FORBIDDEN");
  client.close();
});

test("RATE_LIMITED carries retryAfter, and the client waits at least that long before it tries again", async () => {
  srv = startServer({ rateLimit: { max: 1, windowMs: 1000 } });
  srv.chatter.on(ADD, ({ a, b }) => a + b);
  const first = await srv.client();
  const { client, errors } = watched({ url: srv.url });
  await waitFor(() => errors.length === 1, 3000, "the refusal");
  const refusedAt = performance.now();
  const error = errors[0] as ChatterError & { retryAfter?: number };
  expect(error.code).toBe("RATE_LIMITED");
  expect(error.retryAfter).toBe(1000);
  await waitForState(client, ConnectionState.Connected, 5000);
  expect(performance.now() - refusedAt).toBeGreaterThanOrEqual(950);
  expect(await client.call(ADD, { a: 2, b: 3 })).toBe(5);
  first.close();
  client.close();
});

test("with url() the client keeps trying after UNAUTHORIZED, with fresh credentials each attempt; logs never show them", async () => {
  srv = startServer({
    getConnectionData: ({ url }) => {
      if (url.searchParams.get("token") !== "fresh-secret") throw new Error("stale token");
      return { user: "ann" };
    },
  });
  srv.chatter.on(ADD, ({ a, b }) => a + b);
  const tokens = ["stale-secret", "stale-secret", "fresh-secret"];
  const logs: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => void logs.push(args.join(" "));
  try {
    const { client, errors } = watched({ url: async () => `${srv.url}/?token=${tokens.shift() ?? "fresh-secret"}`, verbose: true });
    await waitForState(client, ConnectionState.Connected, 5000);
    expect(errors.map((e) => e.code)).toEqual(["UNAUTHORIZED", "UNAUTHORIZED"]);
    expect(await client.call(ADD, { a: 1, b: 1 })).toBe(2);
    client.close();
  } finally {
    console.log = log;
  }
  expect(logs.some((l) => l.includes("connecting to"))).toBe(true);
  expect(logs.join("\n")).not.toContain("secret");
});

test("a server error from getConnectionData (a 5xx Response) is UNAVAILABLE: the client waits and tries again", async () => {
  let attempts = 0;
  srv = startServer({
    getConnectionData: () => {
      attempts++;
      return attempts < 3 ? new Response("database is down", { status: 502, headers: { "Retry-After": "0" } }) : { ok: true };
    },
  });
  srv.chatter.on(ADD, ({ a, b }) => a + b);
  const { client, errors } = watched({ url: srv.url });
  await waitForState(client, ConnectionState.Connected, 5000);
  expect(errors.map((e) => e.code)).toEqual(["UNAVAILABLE", "UNAVAILABLE"]);
  expect(errors[0]?.message).toBe("database is down");
  expect(await client.call(ADD, { a: 1, b: 2 })).toBe(3);
  client.close();
});
