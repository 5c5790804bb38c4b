/**
 * Several Chatter servers acting as one through Redis: a real redis-server on
 * a free port, three instance processes, clients spread over them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { Redis } from "ioredis";
import { type ChatterClient, createClient } from "../src/index.ts";
import { type CallFrame, encodeFrame, FrameType, PROTOCOL_VERSION } from "../src/wire/frames.ts";
import {
  ABORT_HELD,
  BROADCAST,
  CALL_CLIENT,
  CALL_HELD,
  ECHO,
  ECHO_LATER,
  HOLD,
  MEMBERS,
  NOTE,
  PRESENCE,
  SHUT_DOWN,
  SLOW,
  STATS,
  SUBSCRIBE,
  WHO_AM_I,
} from "./cluster/procs.ts";
import { rawSocket, waitFor } from "./helpers.ts";
import { freePort, readUntil, startRedis } from "./processes.ts";
import { tcpProxy } from "./proxy.ts";

const REDIS = "/usr/bin/redis-server";
let redis: ReturnType<typeof Bun.spawn> | undefined;
let redisPort = 0;
const instances: { proc: ReturnType<typeof Bun.spawn>; url: string }[] = [];
const clients: ChatterClient[] = [];
const prefix = `test-${Date.now()}`;

/** Redis keeps an append-only file here, so a restart loses nothing. */
const dataDir = mkdtempSync(`${tmpdir()}/chatter-cluster-`);

async function startRedisHere() {
  redis = await startRedis(redisPort, { dataDir });
}

async function startInstance(prefix: string) {
  const proc = Bun.spawn([process.execPath, `${import.meta.dir}/cluster/serve.ts`], {
    env: {
      ...process.env,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      PREFIX: prefix,
      SECRET: `cluster-test-secret-of-32-bytes-${prefix}`,
    },
    stdout: "pipe",
    stderr: "inherit",
  });
  const port = Number(/READY (\d+)/.exec(await readUntil(proc.stdout as ReadableStream<Uint8Array>, /READY \d+/))?.[1]);
  instances.push({ proc, url: `ws://127.0.0.1:${port}` });
}

async function client(instance: number, seen?: string[], url = instances[instance]?.url as string, name = "anon") {
  const c = createClient({ url: `${url}/?name=${name}`, reconnect: { minDelay: 20, maxDelay: 200 } });
  clients.push(c);
  if (seen) c.on(NOTE, (text) => void seen.push(text));
  await waitFor(() => c.isConnected, 5000, "client to connect");
  return c;
}

/** The port of instance `i`, for pointing a proxy at it. */
const port = (i: number) => Number(new URL(instances[i]?.url as string).port);

/** Waits until the session's record in Redis has `topic`: only then can another instance find or take it over. */
async function recorded(sessionId: string, topic: string) {
  const store = new Redis(`redis://127.0.0.1:${redisPort}`);
  try {
    await waitFor(async () => (await store.getBuffer(`${prefix}:kv:session:${sessionId}`))?.includes(topic), 3000, "the record");
  } finally {
    store.disconnect();
  }
}

beforeAll(async () => {
  if (!existsSync(REDIS)) throw new Error(`no ${REDIS}: apt-get install -y redis-server (.ci/run does)`);
  redisPort = freePort();
  await startRedisHere();
  for (let i = 0; i < 3; i++) await startInstance(prefix);
});

afterAll(() => {
  for (const c of clients) c.close();
  for (const i of instances) i.proc.kill();
  redis?.kill();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("a cluster of three instances", () => {
  test("a broadcast reaches every subscriber on every instance exactly once, and the sender is excluded", async () => {
    const seen = Array.from({ length: 6 }, () => [] as string[]);
    const cs: ChatterClient[] = [];
    for (let i = 0; i < 6; i++) cs.push(await client(i % 3, seen[i]));
    for (const c of cs) await c.call(SUBSCRIBE, "room");
    await cs[0]?.call(BROADCAST, { topic: "room", text: "to all", fromSelf: false });
    await cs[1]?.call(BROADCAST, { topic: "room", text: "from 1", fromSelf: true });
    await waitFor(() => seen.every((s, i) => s.length === (i === 1 ? 1 : 2)), 5000, "deliveries");
    // A negative check: no event says the last copy has come (copies may take another path), so duplicates get 100 ms to show.
    await Bun.sleep(100);
    // Order holds per sending instance; two instances' broadcasts may interleave differently, so compare sets.
    expect(seen.map((s) => [...s].sort())).toEqual(seen.map((_, i) => (i === 1 ? ["to all"] : ["from 1", "to all"])));
  });

  test("a targeted call reaches a client on another instance and returns its answer; an unknown client is NOT_FOUND", async () => {
    const caller = await client(0);
    const target = await client(2);
    target.on(ECHO, (text) => `echo from instance 2: ${text}`);
    expect(await caller.call(CALL_CLIENT, { clientId: target.clientId, text: "hi" })).toBe("echo from instance 2: hi");
    await expect(caller.call(CALL_CLIENT, { clientId: "nobody", text: "hi" })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  test("a client id is proven cluster-wide: an impostor on another instance gets a fresh id, calls reach the real client", async () => {
    const caller = await client(0);
    const target = await client(2);
    target.on(ECHO, (text) => `real: ${text}`);
    const impostor = await rawSocket(instances[1]?.url as string, true, { clientId: target.clientId });
    expect(impostor.clientId).not.toBe(target.clientId);
    for (let i = 0; i < 5; i++) expect(await caller.call(CALL_CLIENT, { clientId: target.clientId, text: `${i}` })).toBe(`real: ${i}`);
    expect(impostor.inbox.some((f) => f[0] === FrameType.Call)).toBe(false);
    // The same secret on every instance: the real client keeps its id on another instance.
    const moved = createClient({ url: instances[1]?.url as string, clientId: target.clientId, clientKey: target.clientKey as string });
    clients.push(moved);
    await waitFor(() => moved.isConnected, 5000, "the moved client");
    expect(moved.clientId).toBe(target.clientId);
    impostor.ws.close();
  });

  test("a client proposing a victim's session id cannot make broadcasts skip the victim on another instance", async () => {
    const seen: string[] = [];
    const v = await client(0, seen);
    await v.call(SUBSCRIBE, "exclusions");
    const attacker = await rawSocket(instances[1]?.url as string, true, { sessionId: v.sessionId });
    attacker.send([FrameType.Call, 1, "broadcast", { topic: "exclusions", text: "from attacker", fromSelf: true }, 0, 1]);
    await attacker.next(FrameType.Result);
    await waitFor(() => seen.includes("from attacker"), 5000, "the victim to get the broadcast");
    attacker.ws.close();
  });

  test("aborting a call's signal rejects it with ABORTED, and cancels the client's handler on another instance", async () => {
    const caller = await client(0);
    const target = await client(2);
    let started = false;
    let cancelled: unknown;
    target.on(HOLD, (_key, _client, ctx) => {
      started = true;
      return new Promise<string>((resolve) =>
        ctx.signal.addEventListener("abort", () => {
          cancelled = ctx.signal.reason;
          resolve("too late");
        }),
      );
    });
    // Caught at once: it fails while the test is still busy aborting it.
    const held = caller.call(CALL_HELD, { clientId: target.clientId, key: "abort", timeout: 0 }).catch((err: unknown) => err);
    await waitFor(() => started, 5000, "the call to reach the client");
    await caller.call(ABORT_HELD, "abort");
    expect(await held).toMatchObject({ code: "ABORTED", message: expect.stringContaining('call to "hold" was aborted') });
    await waitFor(() => cancelled, 5000, "the handler to be cancelled");
    expect(cancelled).toMatchObject({ code: "ABORTED" });
  });

  test("a call with timeout 0 reaches a client on another instance with no deadline there, and its answer comes back", async () => {
    const caller = await client(0);
    const target = await rawSocket(instances[2]?.url as string);
    const held = caller.call(CALL_HELD, { clientId: target.clientId, key: "forever", timeout: 0 });
    const call = (await target.next(FrameType.Call)) as CallFrame;
    expect([call[2], call[3], call[4]]).toEqual(["hold", "forever", 0]);
    target.send([FrameType.Result, call[1], "answered"]);
    expect(await held).toBe("answered");
    // A timeout is kept: unanswered, the call fails with TIMEOUT.
    const timed = caller.call(CALL_HELD, { clientId: target.clientId, key: "timed", timeout: 100 }).catch((err: unknown) => err);
    expect(((await target.next(FrameType.Call)) as CallFrame)[4]).toBe(100);
    expect(await timed).toMatchObject({ code: "TIMEOUT" });
    target.ws.close();
  });

  test("closing a server fails its calls to other instances with DISCONNECTED, cancels them there, and lets the process exit", async () => {
    const target = await client(1);
    let started = false;
    let cancelled = false;
    target.on(HOLD, (_key, _client, ctx) => {
      started = true;
      ctx.signal.addEventListener("abort", () => {
        cancelled = true;
      });
      return new Promise<string>(() => {});
    });
    const proc = Bun.spawn([process.execPath, `${import.meta.dir}/cluster/close.ts`], {
      env: {
        ...process.env,
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        PREFIX: prefix,
        SECRET: `cluster-test-secret-of-32-bytes-${prefix}`,
        TARGET: target.clientId,
      },
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    });
    try {
      await readUntil(proc.stdout as ReadableStream<Uint8Array>, /CALLING/);
      await waitFor(() => started, 5000, "the call to reach the client");
      await proc.stdin?.end();
      expect(await readUntil(proc.stdout as ReadableStream<Uint8Array>, /CALL \w+/)).toContain("CALL DISCONNECTED");
      await waitFor(() => cancelled, 5000, "the handler to be cancelled");
      // Nothing it opened (Redis connections, timers) may keep it alive: it exits well before this deadline.
      let deadline: ReturnType<typeof setTimeout> | undefined;
      const stillRunning = new Promise((resolve) => {
        deadline = setTimeout(resolve, 3000, "still running after 3 s");
      });
      expect(await Promise.race([proc.exited, stillRunning])).toBe(0);
      clearTimeout(deadline);
    } finally {
      proc.kill();
    }
  });

  test("presence counts subscribers across instances, and is right again after an instance is killed with SIGKILL", async () => {
    const probe = await client(0);
    const cs = [await client(1), await client(2), await client(2)];
    for (const c of cs) await c.call(SUBSCRIBE, "presence-topic");
    const presence = () => probe.call(PRESENCE, "presence-topic");
    await waitFor(async () => (await presence()) === 3, 5000, "presence to count all three subscribers", 20);
    instances[2]?.proc.kill("SIGKILL");
    await waitFor(async () => (await presence()) === 1, 5000, "presence to drop the killed instance's two", 20);
  });

  test("a client that moves to another instance resumes without a reset: calls in flight settle once through a relay, then the session moves", async () => {
    const balancer = await tcpProxy(port(0));
    try {
      const seen: string[] = [];
      const c = await client(0, seen, balancer.url, "mo");
      let echoes = 0;
      c.on(ECHO, (text) => {
        echoes++;
        return `${text}!`;
      });
      let resets = 0;
      c.onReset(() => void resets++);
      await c.call(SUBSCRIBE, "moving");
      const slow = c.call(SLOW, 400);
      const echoLater = c.call(ECHO_LATER, 300);
      const me = await c.call(WHO_AM_I);
      balancer.retarget(port(1));
      balancer.cutAll();
      await waitFor(() => !c.isConnected, 3000, "the drop");
      await waitFor(() => c.isConnected, 5000, "the resume through another instance");
      expect(c.resumed).toBe(true);
      expect(c.sessionId).toBe(me.sessionId);
      expect(await slow).toBe(me.instance); // ran once, on the old instance, and its answer came through the new one
      expect(await echoLater).toBe("later!");
      expect(echoes).toBe(1);
      expect(await c.call(WHO_AM_I)).toEqual(me); // the session still lives where it began; this socket is relayed to it
      // Nothing is in flight now: at the next reconnect the session moves to the instance that has the socket.
      balancer.cutAll();
      await waitFor(() => !c.isConnected, 3000, "the second drop");
      await waitFor(() => c.isConnected, 5000, "the resume that moves the session");
      const moved = await c.call(WHO_AM_I);
      expect(moved).toEqual({ ...me, instance: expect.any(String) });
      expect(moved.instance).not.toBe(me.instance);
      expect(c.resumed).toBe(true);
      const sender = await client(1);
      await sender.call(BROADCAST, { topic: "moving", text: "to-the-mover", fromSelf: false });
      await waitFor(() => seen.includes("to-the-mover"), 3000, "a broadcast after the move, so its topics moved too");
      const members = await sender.call(MEMBERS, "moving");
      expect(members).toEqual([{ clientId: c.clientId, name: "mo" }]);
      expect(resets).toBe(0);
    } finally {
      balancer.stop();
    }
  }, 20_000);

  test("hostile HELLOs for a session on another instance: a wrong token gets a fresh session, frames before WELCOME and malformed or oversized HELLOs are closed naming why", async () => {
    const victim = await client(1);
    await victim.call(SUBSCRIBE, "hostile");
    await recorded(victim.sessionId, "hostile");
    const hello = (sessionId: unknown, token: unknown) =>
      encodeFrame([FrameType.Hello, PROTOCOL_VERSION, "raw", sessionId, token, 0, 1, null] as never);
    const wrong = await rawSocket(instances[0]?.url as string, false);
    wrong.send(hello(victim.sessionId, "not-the-token"));
    const welcome = await wrong.next(FrameType.Welcome);
    expect(welcome[3]).toBe(false); // not resumed
    expect(welcome[1]).not.toBe(victim.sessionId);
    wrong.ws.close();
    const early = await rawSocket(instances[0]?.url as string, false);
    early.send(hello(victim.sessionId, "not-the-token-either"));
    early.send([FrameType.Call, 1, "echo", "x", 0, 1]);
    expect(await early.closed).toEqual({ code: 1002, reason: "a frame came before WELCOME, while the HELLO was handled" });
    const malformed = await rawSocket(instances[0]?.url as string, false);
    malformed.send(hello(42, "token"));
    expect(await malformed.closed).toEqual({ code: 1002, reason: "malformed frame: HELLO fields" });
    const huge = await rawSocket(instances[0]?.url as string, false);
    huge.send(hello(crypto.randomUUID(), "t".repeat(1_100_000))); // over the default maxMessageBytes (1 MiB)
    expect((await huge.closed).code).toBe(1009);
    expect((await victim.call(WHO_AM_I)).sessionId).toBe(victim.sessionId); // the victim's session is untouched
  });

  test("a rolling deploy: an instance that closes on purpose has its sessions taken over at once, with their data and topics", async () => {
    await startInstance(prefix);
    const leaving = instances.length - 1;
    const balancer = await tcpProxy(port(leaving));
    try {
      const seen: string[] = [];
      const c = await client(leaving, seen, balancer.url, "rolly");
      let resets = 0;
      c.onReset(() => void resets++);
      await c.call(SUBSCRIBE, "deploy");
      const me = await c.call(WHO_AM_I);
      await recorded(c.sessionId, "deploy");
      balancer.retarget(port(0));
      const started = Date.now();
      await c.call(SHUT_DOWN);
      await waitFor(() => !c.isConnected, 3000, "the instance to close");
      await waitFor(() => c.isConnected, 10_000, "the resume on another instance");
      // Well inside a presence lifetime and a half (heartbeat 200 ms here): it did not wait out a silence.
      expect(Date.now() - started).toBeLessThan(900);
      expect(c.resumed).toBe(true);
      expect(resets).toBe(0);
      const now = await c.call(WHO_AM_I);
      expect(now).toEqual({ ...me, instance: expect.any(String) });
      expect(now.instance).not.toBe(me.instance);
      await (await client(0)).call(BROADCAST, { topic: "deploy", text: "after-deploy", fromSelf: false });
      await waitFor(() => seen.includes("after-deploy"), 3000, "a broadcast on its topic after the deploy");
    } finally {
      balancer.stop();
    }
  }, 20_000);

  test("broadcasts made while redis-server restarts wait, then reach every subscriber once and in order; nothing is lost", async () => {
    const seen: string[] = [];
    const sender = await client(0);
    const receiver = await client(1, seen);
    await receiver.call(SUBSCRIBE, "outage");
    await sender.call(BROADCAST, { topic: "outage", text: "before", fromSelf: false });
    await waitFor(() => seen.includes("before"), 3000, "the first broadcast");
    redis?.kill(); // SIGTERM: redis-server writes its append-only file and exits
    await redis?.exited;
    const during = ["during-1", "during-2", "during-3"];
    // server.broadcast resolves once the cluster's log has the broadcast: not while Redis is down.
    const accepted = during.map((text) => sender.call(BROADCAST, { topic: "outage", text, fromSelf: false }));
    await startRedisHere();
    await Promise.all(accepted);
    await sender.call(BROADCAST, { topic: "outage", text: "after", fromSelf: false });
    await waitFor(() => seen.includes("after"), 15_000, "the broadcasts to cross once Redis is back", 20);
    expect(seen).toEqual(["before", ...during, "after"]);
    const stats = await sender.call(STATS);
    expect(stats.lost).toBe(0);
  }, 25_000);

  test("a client whose instance dies resumes its session on another: same session, data and topics, missed broadcasts, calls in flight DISCONNECTED", async () => {
    const balancer = await tcpProxy(port(1));
    try {
      const seen: string[] = [];
      const c = await client(1, seen, balancer.url, "dora");
      let resets = 0;
      c.onReset(() => void resets++);
      await c.call(SUBSCRIBE, "after-death");
      const me = await c.call(WHO_AM_I);
      const before = c.sessionId;
      const inFlight = c.call(SLOW, 60_000).then(
        () => "answered",
        (err: { code: string }) => err.code,
      );
      await c.call(WHO_AM_I); // answered after the slow call started: frames are handled in order
      const other = await client(0);
      // Its record (topics included) is in Redis a moment after each change; a session whose home dies before that resets.
      await recorded(c.sessionId, "after-death");
      balancer.retarget(port(0));
      instances[1]?.proc.kill("SIGKILL");
      await waitFor(() => !c.isConnected, 5000, "the drop");
      // Sent while the client is away: it must get it on resume, from the cluster log.
      await other.call(BROADCAST, { topic: "after-death", text: "while-away", fromSelf: false });
      // The dead instance's presence has to expire (heartbeat 200 ms, three beats) before its sessions are taken.
      await waitFor(() => c.isConnected, 10_000, "the resume on another instance");
      expect(await inFlight).toBe("DISCONNECTED");
      expect(c.resumed).toBe(true);
      expect(c.sessionId).toBe(before);
      expect(resets).toBe(0);
      const now = await c.call(WHO_AM_I);
      expect(now).toEqual({ ...me, instance: expect.any(String) });
      expect(me.data).toEqual({ name: "dora" });
      expect(now.instance).not.toBe(me.instance);
      await waitFor(() => seen.includes("while-away"), 3000, "the broadcast missed while away");
      await other.call(BROADCAST, { topic: "after-death", text: "later", fromSelf: false });
      await waitFor(() => seen.includes("later"), 3000, "a later broadcast, so the topic carried over");
      expect(seen).toEqual(["while-away", "later"]);
    } finally {
      balancer.stop();
    }
  }, 30_000);
});
