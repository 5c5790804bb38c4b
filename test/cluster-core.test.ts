/**
 * The cluster core (src/server/cluster-core.ts and cluster-log.ts) over the in-memory backend
 * (memory-backend.ts), on fake time where time is the subject: what Redis cannot show quickly (a call with
 * timeout 0 outlives any timer, a holder's presence expiring). The memory backend is also the proof that a
 * second backend is a page. The real thing, over redis-server, is cluster.test.ts and cluster-chaos.test.ts.
 */
import { expect, jest, test } from "bun:test";
import { type ClusterBroadcast, type ClusterMember, type ClusterNode, type ClusterStats, emptyStats } from "../src/server/cluster.ts";
import { Cluster } from "../src/server/cluster-core.ts";
import { ClusterLog, type LogHost } from "../src/server/cluster-log.ts";
import { withFakeTimers } from "./helpers.ts";
import { memoryHub } from "./memory-backend.ts";

/** A local server holding the clients in `held`: their calls never answer, and record their abort signals. */
function node(instanceId: string, held: string[] = [], topics: Record<string, number> = {}, members: ClusterMember[] = []) {
  const signals: AbortSignal[] = [];
  let interruptions = 0;
  const self: ClusterNode = {
    instanceId,
    deliver: () => {},
    members: () => members,
    relay: () => {},
    interrupted: () => {
      interruptions++;
    },
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
  return { self, signals, interruptions: () => interruptions };
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
  expect(await here.presenceOf("room")).toBe(5);
  expect(hub.presence.has("dead")).toBe(false);
  await Promise.all([here.close(), other.close()]);
});

test("members lists every instance's subscribers; an instance that does not answer makes it TIMEOUT, not a short list", async () => {
  const hub = memoryHub();
  const alice: ClusterMember = { clientId: "alice", sessionId: "s1", data: { name: "Alice" }, instance: "a" };
  const bob: ClusterMember = { clientId: "bob", sessionId: "s2", data: { name: "Bob" }, instance: "b" };
  const here = new Cluster(hub.backend(), node("a", [], {}, [alice]).self);
  const other = new Cluster(hub.backend(), node("b", [], {}, [bob]).self);
  await Promise.all([here.listening, other.listening]);
  const list = await here.members("room");
  expect(list.sort((x, y) => x.clientId.localeCompare(y.clientId))).toEqual([alice, bob]);
  // A listener that never answers (a wedged instance): the query times out rather than leaving it out.
  await hub.backend().subscribe(
    ["call"],
    () => {},
    () => {},
  );
  await withFakeTimers(async () => {
    const query = here.members("room");
    await turn();
    jest.advanceTimersByTime(5000);
    expect(await settled(query)).toMatchObject({
      code: "TIMEOUT",
      message: 'members of "room": 2 of 3 instance(s) answered within 5000 ms',
    });
  });
  await Promise.all([here.close(), other.close()]);
});

test("a call waiting for ever fails with DISCONNECTED once the instance holding its client stops beating", async () => {
  await withFakeTimers(async () => {
    const hub = memoryHub();
    const here = new Cluster(hub.backend(), node("a").self);
    const holderBackend = hub.backend();
    const there = new Cluster(holderBackend, node("b", ["client-1"]).self);
    await turn();
    const forever = here.call("client-1", "hold", null, 0);
    for (let i = 0; i < 5; i++) await turn();
    jest.advanceTimersByTime(2000);
    expect(await settled(forever)).toBe("pending"); // b is alive and holds it
    // b dies without leaving: no more heartbeats, and its listeners are gone.
    await holderBackend.close();
    jest.advanceTimersByTime(6000 + 2000);
    for (let i = 0; i < 5; i++) await turn();
    expect(await settled(forever)).toMatchObject({
      code: "DISCONNECTED",
      message: expect.stringContaining("the instance holding the client stopped"),
    });
    await here.close();
    void there;
  });
});

test("an interrupted bus fails the calls waiting on it (their answer may be lost) and tells the node", async () => {
  const hub = memoryHub();
  const mine = node("a");
  const here = new Cluster(hub.backend(), mine.self);
  const other = new Cluster(hub.backend(), node("b", ["client-1"]).self);
  await Promise.all([here.listening, other.listening]);
  const call = here.call("client-1", "hold", null, 0);
  await turn();
  hub.outage(true);
  expect(await settled(call)).toMatchObject({ code: "DISCONNECTED", message: expect.stringContaining("the cluster bus was interrupted") });
  expect(mine.interruptions()).toBe(1);
  hub.outage(false);
  await Promise.all([here.close(), other.close()]);
});

/** A log reader for one instance, recording what it delivers and what it was told it lost. */
function logOf(hub: ReturnType<typeof memoryHub>, instanceId: string) {
  const got: [number, unknown][] = [];
  const lost: [string, boolean][] = [];
  const reports: unknown[] = [];
  const stats: ClusterStats = emptyStats();
  const host: LogHost = {
    instanceId,
    deliver: (b, seq) => got.push([seq, b.input]),
    lost: (why, all) => lost.push([why, all]),
    report: (err) => reports.push(err),
    log: undefined,
  };
  const backend = hub.backend();
  const log = new ClusterLog(backend, host, stats, 60_000);
  return { log, got, lost, reports, stats, backend };
}

const bcast = (origin: string, input: unknown): ClusterBroadcast => ({ origin, topics: ["t"], name: "note", input, excludeSessions: [] });

/** Waits (real time, bounded) until `check` holds. */
async function until(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 2));
  }
}

test("the log gives every instance, the sender too, the same broadcasts in the same order, numbered alike", async () => {
  const hub = memoryHub();
  const a = logOf(hub, "a");
  const b = logOf(hub, "b");
  await Promise.all([a.log.whenReading, b.log.whenReading]);
  for (let i = 0; i < 50; i++) {
    a.log.append(bcast("a", `a${i}`));
    b.log.append(bcast("b", `b${i}`));
  }
  await until(() => a.got.length === 100 && b.got.length === 100);
  expect(a.got).toEqual(b.got);
  expect(a.got.map(([seq]) => seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  // Each sender's own order is kept inside the one order.
  const mine = a.got.map(([, input]) => input).filter((x) => String(x).startsWith("a"));
  expect(mine).toEqual(Array.from({ length: 50 }, (_, i) => `a${i}`));
  a.log.close();
  b.log.close();
  await Promise.all([a.backend.close(), b.backend.close()]);
});

test("broadcasts made during an outage wait and go out once it is over, in order, each once; the reader goes on where it was", async () => {
  const hub = memoryHub();
  const a = logOf(hub, "a");
  const b = logOf(hub, "b");
  await Promise.all([a.log.whenReading, b.log.whenReading]);
  a.log.append(bcast("a", 0));
  await until(() => b.got.length === 1);
  hub.outage(true);
  const accepted = Array.from({ length: 20 }, (_, i) => a.log.append(bcast("a", i + 1)));
  await until(() => a.stats.queued === 20);
  expect(await settled(Promise.all(accepted))).toBe("pending"); // not in the log yet
  expect(a.reports).toHaveLength(1); // the outage, reported once
  hub.outage(false);
  await until(() => a.got.length === 21 && b.got.length === 21, 5000);
  expect(b.got.map(([, input]) => input)).toEqual(Array.from({ length: 21 }, (_, i) => i));
  expect(a.stats).toMatchObject({ queued: 0, lost: 0 });
  await Promise.all(accepted); // each promise resolved once the log had its broadcast
  a.log.close();
  await expect(a.log.append(bcast("a", "too late"))).rejects.toMatchObject({ code: "DISCONNECTED" });
  expect(a.stats.lost).toBe(1);
  b.log.close();
});

test("a store that lost its log is a new epoch: the reader is told (all), and numbering starts again; a trimmed gap is told too", async () => {
  const hub = memoryHub({ maxLogEntries: 5 });
  const a = logOf(hub, "a");
  await a.log.whenReading;
  a.log.append(bcast("a", "before"));
  await until(() => a.got.length === 1);
  hub.restart({ keepData: false });
  a.log.append(bcast("a", "after"));
  await until(() => a.lost.length === 1 && a.got.length === 2, 5000);
  expect(a.lost[0]?.[1]).toBe(true);
  expect(a.got[1]).toEqual([1, "after"]);
  a.log.close();
  // A session resuming from before the trimmed part cannot be replayed to: since() says so, never a short list.
  const b = logOf(hub, "b");
  await b.log.whenReading;
  expect((await b.log.since(0, b.log.epoch as string))?.map((e) => e.broadcast.input)).toEqual(["after"]);
  for (let i = 0; i < 10; i++) b.log.append(bcast("b", i));
  await until(() => b.log.seq === 11);
  expect(await b.log.since(1, b.log.epoch as string)).toBeNull();
  expect((await b.log.since(7, b.log.epoch as string))?.map((e) => e.seq)).toEqual([8, 9, 10, 11]);
  expect(await b.log.since(7, "another epoch")).toBeNull();
  b.log.close();
});
