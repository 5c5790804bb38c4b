/**
 * Upgrades no real client sends, over raw TCP on both adapters: malformed ones get a 400 that names what was
 * wrong, before any app code, and harm nothing. Then X-Forwarded-For and the upgrade rate limiter.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect as tcpConnect } from "node:net";
import { build } from "esbuild";
import { type ChatterClient, ConnectionState, createClient } from "../src/index.ts";
import { RateLimiter } from "../src/server/rate-limit.ts";
import { startServer, type TestServer, upgradeOutcome, waitFor, waitForState } from "./helpers.ts";
import { readUntil } from "./processes.ts";
import { ECHO } from "./procs.ts";

const ARTIFACTS = `${import.meta.dir}/../test-artifacts/upgrade-hardening`;

/** What a server's getConnectionData saw, one entry per call. */
interface Seen {
  url: string;
  ip: string | null;
  /** Set once getConnectionData has returned (the Node servers only). */
  answered?: boolean;
}

/** A server under test: where it listens, and what its getConnectionData has seen so far. */
interface Target {
  port: number;
  /** The path Chatter is served on. */
  path: string;
  seen(): Promise<Seen[]>;
  alive(): boolean;
}

// Two Chatter servers on Node (one on every path, one attached with `path`), each reporting what getConnectionData saw on GET /seen.
const NODE_SERVER = `
import { createServer as createHttp } from "node:http";
import { createServer } from "../src/index.ts";
import { attach } from "../src/node.ts";
import { ECHO } from "./procs.ts";

function serve(path) {
  const seen = [];
  const chatter = createServer({
    trustProxy: true,
    rateLimit: { max: 2, windowMs: 8000 },
    getConnectionData: async (info) => {
      const entry = { url: info.url.href, ip: info.ip };
      seen.push(entry);
      if (info.url.searchParams.get("cid") === "slow") await new Promise((r) => setTimeout(r, 150));
      entry.answered = true;
      return {};
    },
  });
  chatter.on(ECHO, (x) => x);
  const http = createHttp((_req, res) => res.end(JSON.stringify(seen)));
  attach(chatter, http, path ? { path } : {});
  return new Promise((resolve) => http.listen(0, "127.0.0.1", () => resolve(http.address().port)));
}

const ports = await Promise.all([serve(undefined), serve("/chatter")]);
console.log("READY " + ports.join(" "));
`;

/** Starts NODE_SERVER under Node 20. */
async function startNodeServers() {
  const outfile = `${ARTIFACTS}/serve-node.mjs`;
  const stdin = { contents: NODE_SERVER, resolveDir: import.meta.dir, loader: "ts" as const };
  await build({ stdin, bundle: true, format: "esm", platform: "node", packages: "external", outfile, logLevel: "silent" });
  const proc = Bun.spawn(["node", outfile], { stdout: "pipe", stderr: "pipe" });
  const ready = await readUntil(proc.stdout as ReadableStream<Uint8Array>, /READY \d+ \d+/);
  const [, plain, pathed] = /READY (\d+) (\d+)/.exec(ready)!.map(Number);
  const target = (port: number, path: string): Target => ({
    port,
    path,
    seen: async () => (await fetch(`http://127.0.0.1:${port}/seen`)).json() as Promise<Seen[]>,
    alive: () => proc.exitCode === null,
  });
  return { proc, plain: target(plain!, "/"), pathed: target(pathed!, "/chatter") };
}

/** An HTTP response read off a raw socket. */
interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

// Every upgrade gets its own X-Forwarded-For address unless it names one, so the rate limit counts only where a test means it to.
let nextAddress = 1;

/**
 * Sends an upgrade request by hand over raw TCP: `head` is the request line and the headers that differ
 * from a valid upgrade, with `{host}` standing for the server's address.
 * @returns the response, once it is complete (a 101's headers, or another status's body)
 */
async function rawUpgrade(port: number, head: string): Promise<RawResponse> {
  const forwarded = /x-forwarded-for/i.test(head) ? [] : [`X-Forwarded-For: 192.0.2.${nextAddress++ % 250}`];
  const request = [
    head.replaceAll("{host}", `127.0.0.1:${port}`),
    ...forwarded,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
  ];
  const { promise, resolve, reject } = Promise.withResolvers<RawResponse>();
  let text = "";
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(s, chunk) {
        text += chunk.toString("latin1");
        const response = parseResponse(text);
        if (response) resolve(response);
        if (response) s.end();
      },
      close: () => reject(new Error(`closed without a complete response: ${JSON.stringify(text)}`)),
    },
  });
  sock.write(`${request.join("\r\n")}\r\n\r\n`);
  return promise;
}

/** @returns the response in `text`, or null while it is incomplete */
function parseResponse(text: string): RawResponse | null {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) headers[line.slice(0, line.indexOf(":")).toLowerCase()] = line.slice(line.indexOf(":") + 1).trim();
  const status = Number(statusLine.split(" ")[1]);
  const body = text.slice(end + 4);
  if (status !== 101 && body.length < Number(headers["content-length"] ?? 0)) return null;
  return { status, headers, body };
}

/** Upgrades that are malformed on every runtime, each with the body its 400 must carry. */
const MALFORMED: [string, string, string][] = [
  ["a Host with a space", "GET {path}?cid=m HTTP/1.1\r\nHost: a b", "Malformed Host header"],
  ["a Host with userinfo", "GET {path} HTTP/1.1\r\nHost: evil@127.0.0.1", "Malformed Host header"],
  ["a Host with a path", "GET {path} HTTP/1.1\r\nHost: a/b", "Malformed Host header"],
  ["a Host whose port is out of range", "GET {path} HTTP/1.1\r\nHost: a:99999", "Malformed Host header"],
  ["two Host headers", "GET {path} HTTP/1.1\r\nHost: a\r\nHost: b", "Malformed Host header"],
];

/** Malformed upgrades only Node hands over: Bun answers these itself, or rewrites the target before Chatter sees it. */
const NODE_MALFORMED: [string, string, string][] = [
  ["an absolute-form target with a bad authority", "GET http://[{path} HTTP/1.1\r\nHost: {host}", "Malformed request target"],
  ["an asterisk-form target", "GET * HTTP/1.1\r\nHost: {host}", "Malformed request target"],
  ["no Host header", "GET {path} HTTP/1.1", "Missing Host header"],
];

/** A Chatter client connected to the target, the way a healthy connection looks. */
async function healthyClient(target: Target): Promise<ChatterClient> {
  const client = createClient({ url: `ws://127.0.0.1:${target.port}${target.path}`, reconnect: false });
  await waitForState(client, ConnectionState.Connected);
  expect(await client.call(ECHO, "before")).toBe("before");
  return client;
}

/** Sends every malformed upgrade to `target` and checks each gets its 400, nothing reaches the app, and nothing else is harmed. */
async function expectMalformedHarmless(target: Target, cases: [string, string, string][]): Promise<void> {
  const client = await healthyClient(target);
  const seenBefore = (await target.seen()).length;
  for (const [what, head, body] of cases) {
    const response = await rawUpgrade(target.port, head.replaceAll("{path}", target.path));
    expect({ what, status: response.status, body: response.body }).toEqual({ what, status: 400, body });
  }
  expect(target.alive()).toBe(true);
  expect((await target.seen()).length).toBe(seenBefore);
  // The open connection still works, and the server still takes upgrades.
  expect(await client.call(ECHO, "after")).toBe("after");
  expect((await rawUpgrade(target.port, `GET ${target.path}?cid=good HTTP/1.1\r\nHost: {host}`)).status).toBe(101);
  client.close();
}

/** An absolute-form target is served from its path and query; the Host header names the server. */
async function expectAbsoluteForm(target: Target): Promise<void> {
  const response = await rawUpgrade(target.port, `GET http://elsewhere.example${target.path}?cid=absolute HTTP/1.1\r\nHost: {host}`);
  expect(response.status).toBe(101);
  expect((await target.seen()).at(-1)?.url).toBe(`http://127.0.0.1:${target.port}${target.path}?cid=absolute`);
}

/** @returns the status of the response to `head`, or "closed" if the server closed the socket without one */
async function statusOrClosed(port: number, head: string): Promise<number | "closed"> {
  return rawUpgrade(port, head).then(
    (r) => r.status,
    () => "closed",
  );
}

/** Resolves once the target's getConnectionData has run more than `count` times. */
async function seenMoreThan(target: Target, count: number): Promise<void> {
  await waitFor(async () => (await target.seen()).length > count, 3000, "getConnectionData to run");
}

/** @returns what a process that exited wrote to stderr, to show why */
async function stderrOf(proc: { stderr: unknown; exitCode: number | null }): Promise<string> {
  if (proc.exitCode === null) return "";
  return new Response(proc.stderr as ReadableStream).text();
}

describe("Bun", () => {
  let srv: TestServer<unknown>;
  const seen: Seen[] = [];
  let target: Target;
  beforeAll(() => {
    srv = startServer({
      rateLimit: false,
      getConnectionData: (info) => void seen.push({ url: info.url.href, ip: info.ip }),
      onError: () => {},
    });
    srv.chatter.on(ECHO, (x) => x);
    target = { port: srv.bun.port!, path: "/", seen: async () => seen, alive: () => true };
  });
  afterAll(() => srv.stop());

  test("every malformed upgrade gets a 400 naming what was wrong, before getConnectionData, and harms nothing", async () => {
    await expectMalformedHarmless(target, MALFORMED);
  });

  test("an absolute-form target is served from its path and query", async () => {
    await expectAbsoluteForm(target);
  });

  test("a refusal over the rate limit carries the time until the next token, rounded up to whole seconds", async () => {
    const limited = startServer({ rateLimit: { max: 1, windowMs: 3000 } });
    try {
      const first = await upgradeOutcome(limited.url);
      const second = await upgradeOutcome(limited.url);
      expect([first.status, first.refusal, second.status, second.refusal]).toEqual([
        101,
        null,
        101,
        { code: "RATE_LIMITED", message: expect.any(String), retryAfter: 3000 },
      ]);
    } finally {
      limited.stop();
    }
  });
});

describe("Node 20", () => {
  let servers: Awaited<ReturnType<typeof startNodeServers>>;
  beforeAll(async () => {
    servers = await startNodeServers();
  });
  afterAll(() => servers.proc.kill());

  test("every malformed upgrade gets a 400 naming what was wrong, before getConnectionData, and harms nothing", async () => {
    await expectMalformedHarmless(servers.plain, [...MALFORMED, ...NODE_MALFORMED]);
  });

  test("with attach's path, malformed upgrades get the same 400s and other paths are still refused", async () => {
    await expectMalformedHarmless(servers.pathed, [...MALFORMED, ...NODE_MALFORMED]);
    const other = await statusOrClosed(servers.pathed.port, "GET /other HTTP/1.1\r\nHost: {host}");
    expect(other).toBe("closed");
    expect(servers.pathed.alive()).toBe(true);
  });

  test("an absolute-form target is served from its path and query", async () => {
    await expectAbsoluteForm(servers.plain);
    await expectAbsoluteForm(servers.pathed);
  });

  test("a client that resets its socket while getConnectionData runs harms nothing", async () => {
    const target = servers.plain;
    const sock = tcpConnect({ host: "127.0.0.1", port: target.port });
    await new Promise((r) => sock.once("connect", r));
    sock.on("error", () => {});
    const seenBefore = (await target.seen()).length;
    sock.write(
      "GET /?cid=slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 192.0.2.251\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    await seenMoreThan(target, seenBefore);
    sock.resetAndDestroy();
    // getConnectionData answers 150 ms after it starts, to a socket long gone.
    await waitFor(
      async () => servers.proc.exitCode !== null || (await target.seen()).at(-1)?.answered,
      3000,
      "getConnectionData to answer",
    );
    expect(servers.proc.exitCode, await stderrOf(servers.proc)).toBeNull();
    expect((await rawUpgrade(target.port, "GET /?cid=good HTTP/1.1\r\nHost: {host}")).status).toBe(101);
  });

  test("a refusal over the rate limit carries the time until the next token, rounded up to whole seconds", async () => {
    const outcomes = [];
    const url = `ws://127.0.0.1:${servers.plain.port}/?cid=limited`;
    for (let i = 0; i < 3; i++) outcomes.push(await upgradeOutcome(url, { "X-Forwarded-For": "198.51.100.7" }));
    expect(outcomes.map((o) => o.refusal?.code ?? o.status)).toEqual([101, 101, "RATE_LIMITED"]);
    // Two per 8 s: a token every 4 s, and the third attempt came a few ms after the first two.
    expect(outcomes[2]?.refusal?.retryAfter).toBe(4000);
  });
});

describe("trustProxy", () => {
  /** The address getConnectionData sees for each X-Forwarded-For value, on a server with these options. */
  async function addressesSeen(trustProxy: boolean | number, forwarded: string[]): Promise<(string | null)[]> {
    const seen: (string | null)[] = [];
    const srv = startServer({ rateLimit: false, trustProxy, getConnectionData: (info) => void seen.push(info.ip) });
    try {
      for (const value of forwarded) await rawUpgrade(srv.bun.port!, `GET / HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: ${value}`);
      return seen;
    } finally {
      srv.stop();
    }
  }

  test("true takes the address the one trusted proxy appended (the rightmost), not the client-controlled leftmost", async () => {
    expect(
      await addressesSeen(true, ["6.6.6.6, 203.0.113.1", "203.0.113.2", " 2001:db8::1 ", "[2001:db8::2]:443", "203.0.113.3:8080"]),
    ).toEqual(["203.0.113.1", "203.0.113.2", "2001:db8::1", "2001:db8::2", "203.0.113.3"]);
  });

  test("n takes the entry n hops from the right, or the leftmost when there are fewer", async () => {
    expect(await addressesSeen(2, ["6.6.6.6, 203.0.113.1, 10.0.0.1", "203.0.113.2, 10.0.0.1", "203.0.113.3"])).toEqual([
      "203.0.113.1",
      "203.0.113.2",
      "203.0.113.3",
    ]);
  });

  test("an entry that is not an IP address falls back to the socket's address", async () => {
    const seen = await addressesSeen(true, [
      "1.2.3.4, not-an-ip",
      "1.2.3.4, 999.1.1.1",
      `1.2.3.4, ${"1".repeat(100)}`,
      "1.2.3.4, fe80::1%eth0",
    ]);
    for (const ip of seen) expect(ip).toMatch(/127\.0\.0\.1/);
  });
});

describe("the upgrade rate limiter", () => {
  /** @returns how many of `n` attempts from `ip` at time `now` pass */
  const passed = (limiter: RateLimiter, n: number, now: number, ip = "203.0.113.1") =>
    Array.from({ length: n }, () => limiter.take(ip, now)).filter((wait) => wait === 0).length;

  test("is a token bucket: across a window boundary max passes, not twice max, and the long-run rate is max per window", () => {
    const limiter = new RateLimiter({ max: 100, windowMs: 1000 });
    // Fixed windows let 200 through here: 100 just before the boundary and 100 just after.
    expect(passed(limiter, 1, 0) + passed(limiter, 99, 999) + passed(limiter, 100, 1000)).toBe(101);
    expect(passed(limiter, 100, 2000)).toBe(100);
    let total = 0;
    for (let t = 3000; t <= 13_000; t += 10) total += passed(limiter, 5, t);
    expect(total).toBe(1000 + 100); // ten windows' worth, and the full bucket at the start
  });

  test("returns the milliseconds until the next token", () => {
    const limiter = new RateLimiter({ max: 2, windowMs: 1000 });
    expect([limiter.take("a", 0), limiter.take("a", 0), limiter.take("a", 0)]).toEqual([0, 0, 500]);
    expect(limiter.take("a", 250)).toBe(250);
    expect(limiter.take("a", 500)).toBe(0);
  });

  test("an IPv6 /64 shares one bucket, and IPv4-mapped IPv6 shares the IPv4 address's", () => {
    const limiter = new RateLimiter({ max: 2, windowMs: 60_000 });
    expect(passed(limiter, 1, 0, "2001:db8:1:2::1") + passed(limiter, 1, 0, "2001:db8:1:2:ffff:ffff:ffff:ffff")).toBe(2);
    expect(passed(limiter, 1, 0, "2001:0db8:0001:0002:0:0:0:9")).toBe(0);
    expect(passed(limiter, 1, 0, "2001:db8:1:3::1")).toBe(1); // the next /64
    expect(passed(limiter, 1, 0, "198.51.100.1") + passed(limiter, 1, 0, "::ffff:198.51.100.1")).toBe(2);
    expect(passed(limiter, 1, 0, "::FFFF:c633:6401")).toBe(0);
  });

  test("keeps its table bounded: full buckets are pruned, and past the cap the least recently used goes", () => {
    const limiter = new RateLimiter({ max: 1, windowMs: 1000 }, 3);
    for (const ip of ["10.0.0.1", "10.0.0.2", "10.0.0.3"]) limiter.take(ip, 0);
    expect(limiter.take("10.0.0.1", 10)).toBeGreaterThan(0); // refused, and now the most recently used
    limiter.take("10.0.0.4", 20);
    expect(limiter.size).toBe(3);
    expect(limiter.take("10.0.0.2", 30)).toBe(0); // evicted, so it starts full
    expect(limiter.take("10.0.0.1", 40)).toBeGreaterThan(0); // kept
    limiter.take("fresh", 5000);
    expect(limiter.size).toBe(1);
  });
});
