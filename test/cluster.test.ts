/**
 * Several Chatter servers acting as one through Redis: a real redis-server on
 * a free port, three instance processes, clients spread over them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { type ChatterClient, createClient } from "../src/index.ts";
import { type CallFrame, FrameType } from "../src/wire/frames.ts";
import { ABORT_HELD, BROADCAST, CALL_CLIENT, CALL_HELD, ECHO, HOLD, NOTE, PRESENCE, STATS, SUBSCRIBE } from "./cluster/procs.ts";
import { rawSocket, waitFor } from "./helpers.ts";
import { freePort, readUntil, startRedis } from "./processes.ts";
import { tcpProxy } from "./proxy.ts";

const REDIS = "/usr/bin/redis-server";
let redis: ReturnType<typeof Bun.spawn> | undefined;
let redisPort = 0;
const instances: { proc: ReturnType<typeof Bun.spawn>; url: string }[] = [];
const clients: ChatterClient[] = [];
const prefix = `test-${Date.now()}`;

async function startRedisHere() {
  redis = await startRedis(redisPort);
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
    stderr: "pipe",
  });
  const port = Number(/READY (\d+)/.exec(await readUntil(proc.stdout as ReadableStream<Uint8Array>, /READY \d+/))?.[1]);
  instances.push({ proc, url: `ws://127.0.0.1:${port}` });
}

async function client(instance: number, seen?: string[], url = instances[instance]?.url as string) {
  const c = createClient({ url, reconnect: { minDelay: 20, maxDelay: 200 } });
  clients.push(c);
  if (seen) c.on(NOTE, (text) => void seen.push(text));
  await waitFor(() => c.isConnected, 5000, "client to connect");
  return c;
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

  test("after redis-server restarts, the backend reconnects by itself; broadcasts lost meanwhile are counted", async () => {
    const seen: string[] = [];
    const sender = await client(0);
    const receiver = await client(1, seen);
    await receiver.call(SUBSCRIBE, "outage");
    redis?.kill();
    await redis?.exited;
    const lost = async () => (await sender.call(STATS)).lost;
    // Probes on a topic nobody is in, until one is lost: from then on the instance knows Redis is gone.
    await waitFor(
      async () => {
        await sender.call(BROADCAST, { topic: "nobody", text: "probe", fromSelf: false });
        return (await lost()) > 0;
      },
      5000,
      "the instance to notice Redis is gone",
      25,
    );
    const lostBefore = await lost();
    await sender.call(BROADCAST, { topic: "outage", text: "during", fromSelf: false });
    await waitFor(async () => (await lost()) > lostBefore, 3000, "the broadcast during the outage to be counted lost", 25);
    await startRedisHere();
    // Both the publisher and the subscriber have to be back; try until a broadcast crosses.
    await waitFor(
      async () => {
        await sender.call(BROADCAST, { topic: "outage", text: "after", fromSelf: false });
        return seen.includes("after");
      },
      10_000,
      "a broadcast to cross once Redis is back",
      100,
    );
    expect(seen).not.toContain("during");
  }, 20_000);

  test("a client whose instance dies reconnects to another and gets a fresh session with the reset signal", async () => {
    const port = (i: number) => Number(new URL(instances[i]?.url as string).port);
    const balancer = await tcpProxy(port(1));
    try {
      const c = await client(1, undefined, balancer.url);
      let resets = 0;
      c.onReset(() => void resets++);
      const before = c.sessionId;
      balancer.retarget(port(0));
      instances[1]?.proc.kill("SIGKILL");
      await waitFor(() => resets === 1, 5000, "the reset");
      await waitFor(() => c.isConnected, 5000, "reconnect");
      expect(c.resumed).toBe(false);
      expect(c.sessionId).not.toBe(before);
      expect(await c.call(PRESENCE, "nothing-here")).toBe(0);
    } finally {
      balancer.stop();
    }
  });
});
