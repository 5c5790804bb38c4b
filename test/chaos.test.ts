/**
 * Chaos: a TCP proxy between a client and a Bun server cuts every connection
 * at random points in the traffic, while calls flow both ways and the server
 * broadcasts. Afterwards every call has settled, every handler ran exactly
 * once per call, every caller got its own answer once, and every broadcast
 * arrived once and in order.
 */
import { afterAll, expect, test } from "bun:test";
import { z } from "zod";
import { peerOfClient } from "../src/client/internal.ts";
import { ConnectionState, createProc, type ServerConnection } from "../src/index.ts";
import { FrameType } from "../src/wire/frames.ts";
import { startServer, waitFor } from "./helpers.ts";
import { tcpProxy } from "./proxy.ts";

const WORK = createProc({ name: "work", takes: z.object({ key: z.string(), slow: z.boolean() }), returns: z.string(), timeout: 60_000 });
const TICK = createProc({ name: "tick", takes: z.number() });

const ROUNDS = 500;
const srv = startServer({ rateLimit: false, onOpen: (c) => c.subscribe("ticks") });
const proxy = await tcpProxy(srv.bun.port as number);
afterAll(() => {
  proxy.stop();
  srv.stop();
});

/** Cuts every connection through the proxy after a random 10 to 60 reads of traffic, until stopped. */
function cutter() {
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      const at = proxy.chunks + 10 + Math.floor(Math.random() * 50);
      await waitFor(() => stopped || proxy.chunks >= at, 20_000, "traffic to cut", 1);
      if (!stopped) proxy.cutAll();
    }
  })();
  return async () => {
    stopped = true;
    await done;
  };
}

/** The next time something happens: `wait()` resolves at the next `fire()`, and at once after `end()`. */
function moment() {
  let next = Promise.withResolvers<void>();
  let ended = false;
  return {
    wait: () => next.promise,
    fire() {
      next.resolve();
      if (!ended) next = Promise.withResolvers<void>();
    },
    end() {
      ended = true;
      next.resolve();
    },
  };
}

/** Counts how often each key's handler ran; a slow call waits for `later` before it answers. */
function runCounter(later: () => Promise<void>) {
  const runs = new Map<string, number>();
  const handler = async ({ key, slow }: { key: string; slow: boolean }) => {
    runs.set(key, (runs.get(key) ?? 0) + 1);
    if (slow) await later();
    return `done ${key}`;
  };
  return { runs, handler };
}

test(`calls both ways and broadcasts survive ${ROUNDS} rounds cut at random points, exactly once`, async () => {
  // Slow calls are held until the client's next connection, so they are in flight at a cut and answer as it
  // resumes, when their answers can cross the repeats of their calls.
  const reconnect = moment();
  const onServer = runCounter(reconnect.wait);
  srv.chatter.on(WORK, onServer.handler);
  const client = await srv.client({ url: proxy.url, reconnect: { minDelay: 2, maxDelay: 30 } });
  client.onStateChange((state) => state === ConnectionState.Connected && reconnect.fire());
  const onClient = runCounter(reconnect.wait);
  client.on(WORK, onClient.handler);
  const ticks: number[] = [];
  client.on(TICK, (n) => void ticks.push(n));
  let resets = 0;
  client.onReset(() => void resets++);
  // Count answers as they come off the wire. An answer can cross a repeat of its call after a resume, so a
  // second copy may arrive; the engine must drop it, and each caller must still settle exactly once.
  const answerFrames = new Map<number, number>();
  const peer = peerOfClient(client);
  const receive = peer.receive.bind(peer);
  peer.receive = (f) => {
    if (f[0] === FrameType.Result || f[0] === FrameType.Error)
      answerFrames.set(f[1] as number, (answerFrames.get(f[1] as number) ?? 0) + 1);
    receive(f);
  };
  const conn = srv.chatter.find(() => true) as ServerConnection<unknown>;

  const results: Promise<string>[] = [];
  const expected: string[] = [];
  let settlements = 0;
  const track = (p: Promise<string>, key: string) => {
    expected.push(`done ${key}`);
    results.push(p.finally(() => void settlements++));
  };
  const fromClient: string[] = [];
  const fromServer: string[] = [];
  let sentTicks = 0;
  const stopCutting = cutter();
  for (let i = 0; i < ROUNDS; i++) {
    // A call each way, some held until the next reconnection, and a broadcast.
    const key = `c${i}`;
    fromClient.push(key);
    track(client.call(WORK, { key, slow: i % 3 === 0 }), key);
    const back = `s${i}`;
    fromServer.push(back);
    track(conn.call(WORK, { key: back, slow: i % 4 === 0 }), back);
    srv.chatter.broadcast("ticks", TICK, sentTicks++);
    // The next round starts once this one's broadcast has arrived, or a cut came first: rounds follow the traffic.
    const cutsBefore = proxy.cuts;
    await waitFor(() => ticks.length === sentTicks || proxy.cuts > cutsBefore, 10_000, `round ${i}`, 1);
  }
  await stopCutting();
  reconnect.end();
  const settled = await Promise.allSettled(results);
  await waitFor(() => ticks.length >= sentTicks, 10_000, "the last broadcasts");

  expect(proxy.cuts).toBeGreaterThan(15);
  expect(resets).toBe(0);
  expect(srv.chatter.find(() => true)).toBe(conn); // one session throughout
  // Every call settled, successfully, once, with its own answer.
  expect(settled.filter((r) => r.status === "rejected")).toEqual([]);
  expect(settled.map((r) => (r as PromiseFulfilledResult<string>).value)).toEqual(expected);
  expect(settlements).toBe(expected.length);
  // Every handler ran exactly once per call.
  expect([...onServer.runs.keys()].sort()).toEqual([...fromClient].sort());
  expect([...onServer.runs.values()].every((n) => n === 1)).toBe(true);
  expect([...onClient.runs.keys()].sort()).toEqual([...fromServer].sort());
  expect([...onClient.runs.values()].every((n) => n === 1)).toBe(true);
  // Every call of the client's got an answer frame; copies beyond the first were dropped by the engine.
  expect(answerFrames.size).toBe(fromClient.length);
  const copies = [...answerFrames.values()].filter((n) => n > 1).length;
  // Every broadcast arrived once, in order.
  expect(ticks).toEqual(Array.from({ length: sentTicks }, (_, n) => n));
  console.log(`chaos: ${proxy.cuts} cuts, ${fromClient.length} calls each way, ${sentTicks} broadcasts, ${copies} answer copies dropped`);
}, 30_000);
