/**
 * The cluster core (src/server/cluster-core.ts) over an in-memory bus, on fake time: what Redis cannot
 * show quickly (a call with timeout 0 outlives any timer). The bus is also the proof that a second
 * backend is a page. The real thing, over redis-server, is cluster.test.ts.
 */
import { expect, jest, test } from "bun:test";
import type { ClusterBackend, ClusterListener, ClusterNode } from "../src/server/cluster.ts";
import { Cluster } from "../src/server/cluster-core.ts";
import { withFakeTimers } from "./helpers.ts";

/** One process's shared store: who listens where, and each instance's presence with its expiry. */
function memoryHub() {
  const listeners = new Map<string, Set<ClusterListener>>();
  const presence = new Map<string, { value: Uint8Array; until: number }>();
  const backend = (): ClusterBackend => {
    const mine: [string, ClusterListener][] = [];
    return {
      async publish(channel, message) {
        const to = [...(listeners.get(channel) ?? [])];
        const copy = new Uint8Array(message);
        queueMicrotask(() => {
          for (const listener of to) listener(channel, copy);
        });
        return to.length;
      },
      async subscribe(channels, listener) {
        for (const c of channels) {
          listeners.set(c, (listeners.get(c) ?? new Set()).add(listener));
          mine.push([c, listener]);
        }
      },
      async putPresence(id, value, ttlMs) {
        presence.set(id, { value: new Uint8Array(value), until: Date.now() + ttlMs });
      },
      async readPresence() {
        return new Map([...presence].map(([id, p]) => [id, p.until > Date.now() ? p.value : undefined]));
      },
      async forgetPresence(ids) {
        for (const id of ids) presence.delete(id);
      },
      async close() {
        for (const [c, listener] of mine) listeners.get(c)?.delete(listener);
      },
    };
  };
  return { backend, presence };
}

/** A local server holding the clients in `held`: their calls never answer, and record their abort signals. */
function node(instanceId: string, held: string[] = [], topics: Record<string, number> = {}) {
  const signals: AbortSignal[] = [];
  const self: ClusterNode = {
    instanceId,
    deliver: () => {},
    callLocal(clientId, _name, _input, options) {
      if (!held.includes(clientId)) return undefined;
      signals.push(options.signal);
      return new Promise(() => {});
    },
    topicCounts: () => topics,
    report: (err) => {
      throw err;
    },
    log: undefined,
  };
  return { self, signals };
}

/** Lets every queued message and callback run (setImmediate is not faked). */
const turn = () => new Promise((resolve) => setImmediate(resolve));
/** @returns what the promise settled with, or "pending" */
const settled = (p: Promise<unknown>) => Promise.race([p.catch((err: unknown) => err), turn().then(() => "pending")]);

test("timeout 0 waits for ever, a timeout fails with TIMEOUT on time, and close fails and cancels what waits", async () => {
  await withFakeTimers(async () => {
    const hub = memoryHub();
    const here = new Cluster(hub.backend(), node("a").self);
    const there = node("b", ["client-1"]);
    const other = new Cluster(hub.backend(), there.self);
    const forever = here.call("client-1", "hold", null, 0);
    const timed = here.call("client-1", "hold", null, 500);
    jest.advanceTimersByTime(499);
    expect(await settled(timed)).toBe("pending");
    jest.advanceTimersByTime(1);
    expect(await settled(timed)).toMatchObject({ code: "TIMEOUT", message: 'call to "hold" on client client-1 timed out after 500 ms' });
    jest.advanceTimersByTime(24 * 3600_000);
    expect(await settled(forever)).toBe("pending");
    await here.close();
    expect(await settled(forever)).toMatchObject({ code: "DISCONNECTED" });
    expect(there.signals.map((s) => s.aborted)).toEqual([true, false]); // cancelled; the timed one timed out there too
    await other.close();
  });
});

test("an aborted signal fails the call with ABORTED and cancels it where it runs; nobody holding the client is NOT_FOUND", async () => {
  const hub = memoryHub();
  const here = new Cluster(hub.backend(), node("a").self);
  const there = node("b", ["client-1"]);
  const other = new Cluster(hub.backend(), there.self);
  const abort = new AbortController();
  const call = here.call("client-1", "hold", null, 0, abort.signal);
  await turn();
  abort.abort(new Error("user left"));
  expect(await settled(call)).toMatchObject({ code: "ABORTED", message: 'call to "hold" was aborted: user left' });
  await turn();
  expect(there.signals[0]?.aborted).toBe(true);
  await expect(here.call("nobody", "hold", null, 0)).rejects.toMatchObject({ code: "NOT_FOUND" });
  await Promise.all([here.close(), other.close()]);
});

test("presence sums every live instance, and forgets one whose entry expired", async () => {
  const hub = memoryHub();
  const here = new Cluster(hub.backend(), node("a", [], { room: 2 }).self);
  const other = new Cluster(hub.backend(), node("b", [], { room: 3 }).self);
  hub.presence.set("dead", { value: new Uint8Array([0x81, 0xa4, 0x72, 0x6f, 0x6f, 0x6d, 0x07]), until: 0 }); // { room: 7 }, expired
  expect(await here.presence("room")).toBe(5);
  expect(hub.presence.has("dead")).toBe(false);
  await Promise.all([here.close(), other.close()]);
});
