/**
 * A slow reader of an endless stream keeps the server's memory flat: the
 * writer pulls the generator only within the reader's window and within its
 * own byte bound, so however long the reader dawdles, the server holds about
 * one window of items. The server runs in its own Bun process
 * (test/fixtures/stream-memory-server.ts), so the resident memory it reports
 * after a full collection is its own.
 *
 * Why the bound has teeth: the control pulls the same generator as a writer
 * that ignored credit would, keeping each item's frame, and it passes the
 * bound in a fraction of the time the slow reader reads. Unbounded, the slow
 * phase would hold that many KiB times the items the generator could make in
 * it: hundreds of MiB.
 */
import { afterEach, expect, test } from "bun:test";
import { MAX_WINDOW, STREAM_KEPT_BYTES } from "../src/engine/stream-writer.ts";
import { type ChatterClient, ConnectionState, createClient } from "../src/index.ts";
import { spawnReady } from "./conformance/servers.ts";
import { ENDLESS, HOARD, STATS } from "./fixtures/stream-memory-server.ts";
import { waitFor, waitForState } from "./helpers.ts";

const ITEM_BYTES = 1024;
/** How long the reader reads slowly, and how often it takes an item meanwhile: its pace, not a wait for anything. */
const SLOW_MS = 2500;
const PACE_MS = 5;
/** Items read at full speed before the baseline, so one-time costs are not counted as growth. */
const WARM = 256;
/** What the server's resident memory may grow by while the reader is slow. */
const BOUND = 16 * 1024 * 1024;
const MiB = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

let stop: (() => void) | undefined;
afterEach(() => stop?.());

/** Starts the server in its own process and connects a client to it. */
async function serverAndClient(): Promise<ChatterClient> {
  const { proc, port } = await spawnReady([process.execPath, `${import.meta.dir}/fixtures/stream-memory-server.ts`]);
  const client = createClient({ url: `ws://127.0.0.1:${port}` });
  stop = () => {
    client.close();
    proc.kill();
  };
  await waitForState(client, ConnectionState.Connected);
  return client;
}

/** Takes the next item, which must be item `i`, whole. */
async function take(items: AsyncIterator<{ i: number; text: string }>, i: number): Promise<void> {
  const next = await items.next();
  if (next.done || next.value.i !== i || next.value.text.length !== ITEM_BYTES)
    throw new Error(`expected item ${i}, got ${JSON.stringify(next).slice(0, 80)}`);
}

/**
 * Reads an endless stream at one item per PACE_MS for SLOW_MS, asking the server for its memory every 100 items.
 * @param ahead - how far the generator may run ahead of the items taken
 * @returns the server's growth in resident memory at each sample, from a baseline after the warm-up
 */
async function readSlowly(client: ChatterClient, window: number, ahead: number): Promise<number[]> {
  const items = client.stream(ENDLESS, ITEM_BYTES, { window });
  let taken = 0;
  while (taken < WARM) await take(items, taken++);
  await client.call(STATS);
  const baseline = await client.call(STATS);
  const growth: number[] = [];
  const until = performance.now() + SLOW_MS;
  while (performance.now() < until) {
    await Bun.sleep(PACE_MS);
    await take(items, taken++);
    if (taken % 100 !== 0) continue;
    const now = await client.call(STATS);
    growth.push(now.rss - baseline.rss);
    // Credit and the byte bound, not luck, hold the generator back.
    expect(now.pulled - taken).toBeLessThanOrEqual(ahead);
    expect(now.held).toBeLessThanOrEqual(STREAM_KEPT_BYTES + 2 * ITEM_BYTES);
  }
  const last = await client.call(STATS);
  growth.push(last.rss - baseline.rss);
  console.log(
    `window ${window}: ${taken} items taken, ${last.pulled} pulled, ${MiB(last.held)} MiB held; rss growth ${growth.map(MiB).join(" ")} MiB; heap ${MiB(last.heap - baseline.heap)} MiB`,
  );
  // Leaving the loop stops the generator.
  await items.return();
  await waitFor(async () => (await client.call(STATS)).open === 0, 3000, "the generator to stop", 20);
  return growth;
}

test(`a reader far slower than an endless generator keeps the server's memory flat (growth under ${MiB(BOUND)} MiB)`, async () => {
  const client = await serverAndClient();
  const growth = await readSlowly(client, 64, 64 + 1);
  expect(growth.length).toBeGreaterThan(3);
  expect(Math.max(...growth)).toBeLessThan(BOUND);
}, 10_000);

test("a slow reader that grants a huge window keeps it flat too: the writer holds at most about 1 MiB", async () => {
  const client = await serverAndClient();
  // The writer holds at most MAX_WINDOW items past those acknowledged; the reader may have as many queued.
  const growth = await readSlowly(client, 1e9, 2 * MAX_WINDOW + 1);
  expect(growth.length).toBeGreaterThan(3);
  expect(Math.max(...growth)).toBeLessThan(BOUND);
}, 10_000);

test("control: a writer that ignored credit would pass the same bound in a fraction of the slow phase", async () => {
  const client = await serverAndClient();
  await client.call(STATS);
  const baseline = await client.call(STATS);
  // Twice the bound's worth of items, pulled and kept as a writer without credit would keep them.
  const count = (2 * BOUND) / ITEM_BYTES;
  const ms = await client.call(HOARD, { bytes: ITEM_BYTES, count });
  const grown = (await client.call(STATS)).rss - baseline.rss;
  console.log(`control: ${count} items pulled and kept in ${ms.toFixed(0)} ms; rss growth ${MiB(grown)} MiB`);
  expect(grown).toBeGreaterThan(BOUND);
  expect(ms).toBeLessThan(SLOW_MS);
}, 10_000);
