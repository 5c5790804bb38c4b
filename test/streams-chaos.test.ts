/**
 * Streams under chaos: a TCP proxy between a client and a Bun server cuts
 * every connection at random points in the traffic while 20 streams of 1,000
 * numbered items flow from server to client and 20 more from client to server
 * (the server reading with `connection.stream`), and a few more each way are
 * left early by their readers. Afterwards every item has arrived exactly once
 * and in order, every generator ran exactly once (to its end, or stopped with
 * its `finally` run when its reader left), and neither end holds a call or a
 * handler.
 */
import { afterAll, expect, test } from "bun:test";
import { z } from "zod";
import { peerOfClient } from "../src/client/internal.ts";
import { type ChatterStream, createProc, type ServerConnection } from "../src/index.ts";
import { FrameType } from "../src/wire/frames.ts";
import { cutAtRandom, nextTurn, rawSocket, startServer, waitFor } from "./helpers.ts";
import { peerOf } from "./internals.ts";
import { tcpProxy } from "./proxy.ts";

const STREAMS = 20;
const ITEMS = 1000;
/** Streams each way whose reader leaves the loop part way through, at a different item each. */
const LEAVERS = 5;
/** Item `i` of stream `key` is "key#i", so an item that strays into another stream, or repeats, shows. */
const NUMBERED = createProc({ name: "numbered", takes: z.object({ key: z.string(), n: z.number() }), yields: z.string(), timeout: 60_000 });
/** An endless stream, for the one test that speaks frames by hand. */
const ENDLESS = createProc({ name: "endless", yields: z.number() });
/** Windows from one item (a CREDIT for every item) to the default, so cuts fall between grants of every size. */
const WINDOWS = [1, 2, 7, 16, undefined];

const srv = startServer({ rateLimit: false });
const proxy = await tcpProxy(srv.bun.port as number);
afterAll(() => {
  proxy.stop();
  srv.stop();
});

/** A generator of numbered items that counts, per key, how often it started, reached its end, and ran its `finally`. */
function generators() {
  const count = (m: Map<string, number>, key: string) => m.set(key, (m.get(key) ?? 0) + 1);
  const runs = new Map<string, number>();
  const ended = new Map<string, number>();
  const closed = new Map<string, number>();
  async function* handler({ key, n }: { key: string; n: number }) {
    count(runs, key);
    try {
      for (let i = 0; i < n; i++) yield `${key}#${i}`;
      count(ended, key);
    } finally {
      count(closed, key);
    }
  }
  return { runs, ended, closed, handler };
}

/** Reads a stream in the background, to its end or until `leaveAt` items, keeping what came and how it ended. */
function reader(key: string, items: ChatterStream<string>, leaveAt = Number.POSITIVE_INFINITY) {
  const state = { key, leaveAt, got: [] as string[], done: false, error: undefined as unknown };
  (async () => {
    try {
      for await (const item of items) {
        state.got.push(item);
        if (state.got.length >= leaveAt) break;
      }
    } catch (err) {
      state.error = err;
    } finally {
      state.done = true;
    }
  })();
  return state;
}

/**
 * The run: STREAMS streams each way read to the end, and `leavers` more each way left part way through, while
 * the proxy cuts. Every check is made here.
 */
async function chaos(leavers: number): Promise<void> {
  const onServer = generators();
  srv.chatter.on(NUMBERED, onServer.handler);
  const client = await srv.client({ url: proxy.url, reconnect: { minDelay: 2, maxDelay: 30 } });
  const onClient = generators();
  client.on(NUMBERED, onClient.handler);
  let resets = 0;
  client.onReset(() => void resets++);
  const conn = srv.chatter.find((c) => c.clientId === client.clientId) as ServerConnection<unknown>;

  // Every 2 to 32 reads of traffic: often enough that cuts land in handshakes, CREDITs and ENDs too.
  const stopCutting = cutAtRandom(proxy, 2, 30);
  // Streams start one pair at a time, each once the last pair is under way, so some start between sockets
  // (their CALLs wait in the offline queue) and cuts find streams at every stage. The last few pairs are left
  // by their readers part way through.
  const readers: ReturnType<typeof reader>[] = [];
  let startedOffline = 0;
  for (let i = 0; i < STREAMS + leavers; i++) {
    const window = WINDOWS[i % WINDOWS.length];
    const leaveAt = i < STREAMS ? undefined : 50 + (i - STREAMS) * 150;
    const name = i < STREAMS ? `${i}` : `${i}-left`;
    if (!client.isConnected) startedOffline++;
    const pair = [
      reader(`down${name}`, client.stream(NUMBERED, { key: `down${name}`, n: ITEMS }, { window }), leaveAt),
      reader(`up${name}`, conn.stream(NUMBERED, { key: `up${name}`, n: ITEMS }, { window }), leaveAt),
    ];
    readers.push(...pair);
    await waitFor(() => pair.every((r) => r.done || r.got.length >= ITEMS / 10), 10_000, `stream pair ${name} under way`, 1);
  }
  const where = () =>
    readers
      .filter((r) => !r.done)
      .map((r) => `${r.key} at ${r.got.length}`)
      .join(", ");
  await waitFor(() => readers.every((r) => r.done), 10_000, "every stream to end", 10).catch((err) => {
    throw new Error(`${err.message}; still open: ${where()}; ${proxy.cuts} cuts`);
  });
  // The generators of streams that were left stop once the reader's CANCEL arrives, which may take a resume.
  const everyFinally = () => onServer.closed.size + onClient.closed.size === readers.length;
  await waitFor(everyFinally, 5000, "every generator's finally").catch(() => {});
  await stopCutting();

  expect(proxy.cuts).toBeGreaterThan(10);
  expect(resets).toBe(0);
  expect(srv.chatter.find((c) => c.clientId === client.clientId)).toBe(conn); // one session throughout
  expect(readers.filter((r) => r.error !== undefined).map((r) => `${r.key}: ${r.error}`)).toEqual([]);
  for (const r of readers) expect(r.got).toEqual(Array.from({ length: Math.min(r.leaveAt, ITEMS) }, (_, i) => `${r.key}#${i}`));
  // Each generator started once, and ran its finally once: a resume goes on with it, never starts it again.
  // Those read to the end reached it once; those left never did.
  const once = (keys: ReturnType<typeof reader>[]) => Object.fromEntries(keys.map((r) => [r.key, 1]));
  const down = readers.filter((r) => r.key.startsWith("down"));
  const up = readers.filter((r) => r.key.startsWith("up"));
  const whole = (rs: ReturnType<typeof reader>[]) => rs.filter((r) => r.leaveAt === Number.POSITIVE_INFINITY);
  expect(Object.fromEntries(onServer.runs)).toEqual(once(down));
  expect(Object.fromEntries(onServer.closed)).toEqual(once(down));
  expect(Object.fromEntries(onServer.ended)).toEqual(once(whole(down)));
  expect(Object.fromEntries(onClient.runs)).toEqual(once(up));
  expect(Object.fromEntries(onClient.closed)).toEqual(once(up));
  expect(Object.fromEntries(onClient.ended)).toEqual(once(whole(up)));
  // Nothing left behind: no stream is still a pending call or a running handler on either end.
  const ends = () => [peerOfClient(client), peerOf(conn)].map((p) => ({ pending: p.pendingCount, running: p.runningCount }));
  const idle = () => ends().every((e) => e.pending === 0 && e.running === 0);
  await waitFor(idle, 3000, "both ends to hold nothing").catch(() => {});
  expect(ends()).toEqual([
    { pending: 0, running: 0 },
    { pending: 0, running: 0 },
  ]);
  console.log(
    `streams chaos: ${proxy.cuts} cuts, ${readers.length} streams, ${2 * leavers} left early, ${startedOffline} pairs started offline`,
  );
}

test(`${STREAMS} streams each way of ${ITEMS} items survive cuts at random points: every item once, in order; every generator once`, async () => {
  await chaos(0);
}, 20_000);

test(`and with ${LEAVERS} streams each way left early by their readers: each generator stops once, its finally run`, async () => {
  await chaos(LEAVERS);
}, 20_000);

// A writer cancelled while its send is scheduled (a later turn, src/engine/stream-writer.ts) must send nothing:
// this once sent an emptied slot, a TypeError thrown from a timer that ended the server process. It takes a
// CREDIT that lets the writer make an item, then a CANCEL in a later message before the next turn.
test("a reader that leaves while the writer's send is scheduled: nothing is sent, nothing throws", async () => {
  const srv2 = startServer();
  let closed = 0;
  srv2.chatter.on(ENDLESS, async function* () {
    try {
      for (let i = 0; ; i++) yield i;
    } finally {
      closed++;
    }
  });
  try {
    const raw = await rawSocket(srv2.url);
    raw.send([FrameType.Call, 1, "endless", null, 0, 0, 1]);
    expect((await raw.next(FrameType.Item))[2]).toBe(0);
    // Two messages: the CREDIT makes item 1 and schedules its send; the CANCEL comes before that send runs.
    raw.send([FrameType.Credit, 1, 1, 10]);
    raw.send([FrameType.Cancel, 1]);
    await waitFor(() => closed === 1, 2000, "the generator's finally");
    // The scheduled send runs before this turn ends (setImmediate callbacks run in order), throwing if it will.
    await nextTurn();
    // The server carries on: another stream on the same socket works.
    raw.send([FrameType.Call, 2, "endless", null, 0, 0, 1]);
    expect(await raw.next(FrameType.Item)).toEqual([FrameType.Item, 2, 0, 0]);
  } finally {
    srv2.stop();
  }
});
