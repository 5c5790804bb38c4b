/**
 * The cluster backend contract (src/server/cluster.ts), one suite run against chatter/redis over a real
 * redis-server (with an append-only file, so a restart may keep or lose the data) and against the in-memory
 * backend the core's tests use (test/memory-backend.ts). Then what only Redis can show: no unhandled
 * error events across outages, the sizes quoted in src/cluster/redis.ts, and a process that exits after close.
 */
import { afterAll, afterEach, beforeAll, describe, expect, jest, spyOn, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { redisCluster } from "../src/redis.ts";
import type { ClusterBackend } from "../src/server/cluster.ts";
import { waitFor, withFakeTimers } from "./helpers.ts";
import { memoryHub } from "./memory-backend.ts";
import { freePort, readUntil } from "./processes.ts";

/** A fresh store for one test, and the controls the suite needs. */
interface World {
  backend(options?: { maxLogEntries?: number }): ClusterBackend;
  /** Takes the store down (calls fail, listeners hear once) or brings it back with its data. */
  outage(down: boolean): Promise<void>;
  /** Stops and starts the store; with `keepData` its log, records and presence survive. */
  restart(options: { keepData: boolean }): Promise<void>;
  /** Runs `fn` with `pass(ms)`, which lets ms go by as the store sees it. */
  timed(fn: (pass: (ms: number) => Promise<void>) => Promise<void>): Promise<void>;
}

const bytes = (...values: number[]) => new Uint8Array(values);
const opened: ClusterBackend[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((b) => b.close()));
});

function contract(name: string, world: () => World) {
  describe(name, () => {
    test("appends are numbered 1, 2, 3; a repeated counter is null; a skipped one is OUT_OF_ORDER", async () => {
      const b = world().backend();
      const first = await b.append("a", 1, bytes(1), 60_000);
      expect(first?.seq).toBe(1);
      expect(await b.append("b", 1, bytes(2), 60_000)).toEqual({ epoch: first?.epoch as string, seq: 2 });
      expect((await b.append("a", 2, bytes(3), 60_000))?.seq).toBe(3);
      expect(await b.append("a", 2, bytes(3), 60_000)).toBeNull();
      expect(await b.append("a", 1, bytes(1), 60_000)).toBeNull();
      await expect(b.append("a", 4, bytes(4), 60_000)).rejects.toThrow(/^OUT_OF_ORDER/);
      expect((await b.append("a", 3, bytes(4), 60_000))?.seq).toBe(4);
    });

    test("read(null) gives the epoch and last; a read after n gives what follows, up to limit", async () => {
      const b = world().backend();
      const empty = await b.read(null, 10, 0);
      expect(empty).toEqual({ epoch: expect.any(String), last: 0, entries: [] });
      for (let i = 1; i <= 5; i++) await b.append("a", i, bytes(i, i), 60_000);
      expect(await b.read(null, 10, 0)).toEqual({ epoch: empty.epoch, last: 5, entries: [] });
      const after2 = await b.read(2, 10, 0);
      expect(after2.entries.map((e) => [e.seq, [...e.entry]])).toEqual([
        [3, [3, 3]],
        [4, [4, 4]],
        [5, [5, 5]],
      ]);
      expect((await b.read(0, 2, 0)).entries.map((e) => e.seq)).toEqual([1, 2]);
      expect(await b.read(5, 10, 0)).toEqual({ epoch: empty.epoch, last: 5, entries: [] });
    });

    test("a waiting read wakes on an append, returns empty when its time is up, and fails on close", async () => {
      const w = world();
      const reader = w.backend();
      const writer = w.backend();
      await writer.append("a", 1, bytes(1), 60_000);
      const waiting = reader.read(1, 10, 10_000);
      await Bun.sleep(20); // let the read reach its wait; an append before it would be found at once anyway
      const started = performance.now();
      await writer.append("a", 2, bytes(2), 60_000);
      const woke = await waiting;
      expect(performance.now() - started).toBeLessThan(1000);
      expect(woke.entries.map((e) => e.seq)).toEqual([2]);
      expect(woke.last).toBe(2);
      expect(await reader.read(2, 10, 30)).toMatchObject({ last: 2, entries: [] });
      // Other calls go on while a read waits.
      const ending = reader.read(2, 10, 10_000);
      await Bun.sleep(20);
      expect(await reader.get("nothing")).toBeUndefined();
      await reader.close();
      await expect(ending).rejects.toThrow();
    });

    test("entries trimmed past maxLogEntries leave a gap a reader can see", async () => {
      const b = world().backend({ maxLogEntries: 10 });
      for (let i = 1; i <= 300; i++) await b.append("a", i, bytes(i % 256), 60_000);
      const { last, entries } = await b.read(0, 1000, 0);
      expect(last).toBe(300);
      expect(entries[0]?.seq).toBeGreaterThan(1);
      expect(entries.length).toBeGreaterThanOrEqual(10);
      expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => 301 - entries.length + i));
    });

    test("a restart that keeps the data keeps the epoch and numbering; one that loses it makes a new epoch", async () => {
      const w = world();
      const b = w.backend();
      const { epoch } = await b.read(null, 10, 0);
      for (let i = 1; i <= 3; i++) await b.append("a", i, bytes(i), 60_000);
      await w.restart({ keepData: true });
      const kept = await retry(() => b.read(0, 10, 0));
      expect(kept.epoch).toBe(epoch);
      expect(kept.entries.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(await b.append("a", 4, bytes(4), 60_000)).toEqual({ epoch, seq: 4 });
      await w.restart({ keepData: false });
      const lost = await retry(() => b.read(null, 10, 0));
      expect(lost.epoch).not.toBe(epoch);
      expect(lost.last).toBe(0);
      expect(await b.read(4, 10, 0)).toEqual({ epoch: lost.epoch, last: 0, entries: [] }); // past the new log's end
      expect(await b.append("a", 9, bytes(9), 60_000)).toEqual({ epoch: lost.epoch, seq: 1 }); // its counters went too
    });

    test("the key-value store puts, gets, touches, deletes and expires", async () => {
      const w = world();
      const b = w.backend();
      await b.put("s1", bytes(1, 2, 3), 1000);
      await b.put("s2", bytes(4), 1000);
      expect([...((await b.get("s1")) ?? [])]).toEqual([1, 2, 3]);
      await b.delete(["s2", "never"]);
      expect(await b.get("s2")).toBeUndefined();
      await w.timed(async (pass) => {
        await b.put("short", bytes(5), 150);
        await b.put("touched", bytes(6), 150);
        await b.touch(["touched", "missing"], 60_000);
        await pass(300);
        expect(await b.get("short")).toBeUndefined();
        expect([...((await b.get("touched")) ?? [])]).toEqual([6]);
        expect(await b.get("missing")).toBeUndefined();
      });
    });

    test("presence is stored, read with expired entries as undefined, and forgotten", async () => {
      const w = world();
      const b = w.backend();
      await w.timed(async (pass) => {
        await b.putPresence("i1", bytes(1), 60_000);
        await b.putPresence("i2", bytes(2), 100);
        await pass(250);
        const read = await b.readPresence();
        expect([...(read.get("i1") ?? [])]).toEqual([1]);
        expect(read.has("i2") && read.get("i2")).toBeUndefined();
      });
      await b.forgetPresence(["i1", "i2"]);
      expect((await b.readPresence()).size).toBe(0);
    });

    test("an outage fails calls at once and interrupts a listener once; listening resumes after it", async () => {
      const w = world();
      const b = w.backend();
      const heard: number[] = [];
      let interruptions = 0;
      await b.subscribe(
        ["c"],
        (_, m) => heard.push(m[0] as number),
        () => interruptions++,
      );
      expect(await b.publish("c", bytes(1))).toBe(1);
      await waitFor(() => heard.length === 1);
      await w.outage(true);
      await waitFor(() => interruptions === 1);
      const started = performance.now();
      const calls = [b.publish("c", bytes(2)), b.append("a", 1, bytes(1), 1000), b.read(0, 10, 0), b.get("k"), b.readPresence()];
      const outcomes = await Promise.allSettled(calls);
      expect(outcomes.map((o) => o.status)).toEqual(calls.map(() => "rejected"));
      expect(performance.now() - started).toBeLessThan(500);
      await Bun.sleep(300); // ioredis tries to reconnect meanwhile (after 50, 100, 150 ms): still one interruption
      expect(interruptions).toBe(1);
      await w.outage(false);
      await waitFor(async () => (await b.publish("c", bytes(3)).catch(() => 0)) > 0 && heard.includes(3), 5000, "listening", 20);
      expect(interruptions).toBe(1); // not called when listening resumes
      await w.restart({ keepData: true });
      await waitFor(() => interruptions === 2);
    });
  });
}

/** @returns what `call` resolves with, asked again while the store is coming back (for up to 3 s) */
async function retry<T>(call: () => Promise<T>): Promise<T> {
  for (let tries = 0; ; tries++) {
    try {
      return await call();
    } catch (err) {
      if (tries > 150) throw err;
      await Bun.sleep(20);
    }
  }
}

contract("memory backend", () => {
  let hub: ReturnType<typeof memoryHub> | undefined;
  return {
    backend(options = {}) {
      hub ??= memoryHub(options); // the first backend of a test sizes the log
      const b = hub.backend();
      opened.push(b);
      return b;
    },
    outage: async (down) => hub?.outage(down),
    restart: async (options) => hub?.restart(options),
    timed: (fn) => withFakeTimers(() => fn(async (ms) => void jest.advanceTimersByTime(ms))),
  };
});

// One redis-server for the file, with an append-only file in a directory of its own.
const redis = { port: freePort(), dir: mkdtempSync(join(tmpdir(), "chatter-redis-")), proc: undefined as Bun.Subprocess | undefined };
const url = () => `redis://127.0.0.1:${redis.port}`;
async function redisUp() {
  const args = ["--port", String(redis.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--dir", redis.dir];
  const proc = Bun.spawn(["redis-server", ...args], { stdout: "pipe" });
  await readUntil(proc.stdout as ReadableStream<Uint8Array>, /Ready to accept connections/);
  redis.proc = proc;
}
async function redisDown() {
  redis.proc?.kill("SIGTERM"); // a clean shutdown writes the append-only file out
  await redis.proc?.exited;
}
beforeAll(redisUp);
afterAll(async () => {
  await redisDown();
  rmSync(redis.dir, { recursive: true, force: true });
});

let prefixes = 0;
contract("redis backend", () => {
  const prefix = `test${++prefixes}`;
  return {
    backend(options = {}) {
      const b = redisCluster({ url: url(), prefix, ...options });
      opened.push(b);
      return b;
    },
    outage: async (down) => (down ? redisDown() : redisUp()),
    async restart({ keepData }) {
      await redisDown();
      if (!keepData) rmSync(join(redis.dir, "appendonlydir"), { recursive: true, force: true });
      await redisUp();
    },
    timed: (fn) => fn(Bun.sleep),
  };
});

describe("redis only", () => {
  test("outages and restarts print nothing and leave no unhandled rejection; the log option gets a line per outage", async () => {
    const errors = spyOn(console, "error");
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const lines: string[] = [];
      const b = redisCluster({ url: url(), prefix: "quiet", log: (line) => lines.push(line) });
      opened.push(b);
      let interruptions = 0;
      await b.subscribe(
        ["c"],
        () => {},
        () => interruptions++,
      );
      const waiting = b.read(0, 10, 10_000).catch((err: Error) => err);
      await Bun.sleep(20);
      await redisDown();
      await Bun.sleep(400); // several failed reconnects of each connection
      await redisUp();
      await waitFor(async () => (await b.publish("c", bytes(1)).catch(() => 0)) > 0, 5000, "listening", 20);
      expect(await waiting).toBeInstanceOf(Error);
      expect(interruptions).toBe(1);
      expect(errors).not.toHaveBeenCalled();
      expect(unhandled).toEqual([]);
      expect(lines.length).toBeGreaterThanOrEqual(1);
      expect(lines.length).toBeLessThanOrEqual(3); // command, subscriber, reader: one each
      expect(lines[0]).toStartWith("chatter/redis: the ");
    } finally {
      process.off("unhandledRejection", onUnhandled);
      errors.mockRestore();
    }
  });

  test("sizes in Redis: bytes per log entry beyond its own, and per session record", async () => {
    const raw = new Redis(url());
    raw.on("error", () => {});
    const b = redisCluster({ url: url(), prefix: "sizes" });
    opened.push(b);
    const usage = async (key: string) => Number(await raw.call("MEMORY", "USAGE", key, "SAMPLES", "0"));
    const used = async () => Number(/used_memory:(\d+)/.exec(await raw.info("memory"))?.[1]);
    const n = 1000;
    await b.append("o", 1, new Uint8Array(100), 60_000);
    const before = await usage("sizes:log");
    for (let i = 2; i <= n + 1; i++) await b.append("o", i, new Uint8Array(100).fill(i % 256), 60_000);
    const perEntry = ((await usage("sizes:log")) - before) / n - 100;
    const heapBefore = await used();
    for (let i = 0; i < n; i++) await b.put(`session-${i}`, new Uint8Array(200).fill(i % 256), 60_000);
    const perRecord = ((await used()) - heapBefore) / n;
    const record = await usage("sizes:kv:session-1");
    console.log(
      `redis sizes: log entry = its bytes + ${perEntry.toFixed(1)}; 200-byte record = ${record} (MEMORY USAGE), ${perRecord.toFixed(0)} (used_memory)`,
    );
    expect(perEntry).toBeLessThan(40);
    expect(record).toBeLessThan(400);
    raw.disconnect();
  });

  test("a process that used every method, a waiting read among them, exits at once after close (Redis up or down)", async () => {
    const script = `
      import { redisCluster } from ${JSON.stringify(join(import.meta.dir, "../src/redis.ts"))};
      const b = redisCluster({ url: process.env.URL, prefix: "exit" });
      const up = process.env.UP === "1";
      const ok = (p) => p.then(() => "ok", () => "failed");
      const results = [];
      if (up) results.push(await ok(b.subscribe(["c"], () => {}, () => {})));
      results.push(await ok(b.publish("c", new Uint8Array([1]))));
      results.push(await ok(b.append("o", 1, new Uint8Array([1]), 60000)));
      results.push(await ok(b.read(0, 10, 0)));
      const waiting = b.read(1, 10, 60000).then(() => "answered", () => "ended");
      for (const call of [b.put("k", new Uint8Array([1]), 60000), b.get("k"), b.touch(["k"], 60000), b.delete(["k"]),
        b.putPresence("i", new Uint8Array([1]), 60000), b.readPresence(), b.forgetPresence(["i"])]) results.push(await ok(call));
      await Bun.sleep(50);
      await b.close();
      console.log(results.join(","), await waiting);
    `;
    const run = async (up: boolean) => {
      const env = { ...process.env, URL: up ? url() : `redis://127.0.0.1:${freePort()}`, UP: up ? "1" : "0" };
      const child = Bun.spawn([process.execPath, "-e", script], { env, stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => child.kill(), 5000);
      const err = new Response(child.stderr).text();
      const out = await readUntil(child.stdout as ReadableStream<Uint8Array>, /ended|answered/);
      const closed = performance.now();
      const code = await child.exited;
      clearTimeout(timer);
      return { code, out: out.trim(), err: await err, exitMs: performance.now() - closed };
    };
    const [up, down] = await Promise.all([run(true), run(false)]);
    expect(up).toMatchObject({ code: 0, out: `${Array(11).fill("ok").join(",")} ended`, err: "" });
    expect(down).toMatchObject({ code: 0, out: `${Array(10).fill("failed").join(",")} ended`, err: "" });
    // ioredis's own disconnect timer would hold a process whose Redis is down for 2 s.
    expect(Math.max(up.exitMs, down.exitMs)).toBeLessThan(1000);
  });
});
