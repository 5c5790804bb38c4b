/** What a settled call leaves behind in its peer: nothing the size of its input. */

import { heapStats } from "bun:jsc";
import { expect, test } from "bun:test";
import { z } from "zod";
import { Peer } from "../src/engine/peer.ts";
import type { HandlerEntry } from "../src/engine/types.ts";
import { createProc } from "../src/index.ts";
import { decodeFrames, FrameType } from "../src/wire/frames.ts";

const PEERS = 300;
/** Encodes to a frame of about 30 KB, a view into a codec buffer of about 36 KB. */
const INPUT = "x".repeat(30_000);
const SAVE = createProc({ name: "save", takes: z.string(), timeout: 5000 });

/** A peer whose link answers every CALL on a microtask with a RESULT: a minimal other end. */
function answeredPeer(): Peer {
  const peer = new Peer({ handlers: new Map<string, HandlerEntry>(), side: "client" }, null);
  const link = {
    send(bytes: Uint8Array) {
      for (const frame of decodeFrames(bytes)) {
        if (frame[0] === FrameType.Call) queueMicrotask(() => peer.receive([FrameType.Result, frame[1], null]));
      }
    },
  };
  peer.attach(link, false);
  return peer;
}

/** Each peer makes one timed call, and it settles. */
async function oneTimedCallEach(peers: Peer[], withSignal: boolean): Promise<void> {
  await Promise.all(peers.map((p) => p.call(SAVE, INPUT, withSignal ? { signal: new AbortController().signal } : undefined)));
}

function heapAfterGC(): number {
  Bun.gc(true);
  return heapStats().heapSize;
}

test.each([false, true])("a settled timed call does not keep its encoded input alive (with an abort signal: %p)", async (withSignal) => {
  // A first round pays the one-time costs (compiled code, the codec's buffers), which are no peer's own.
  await oneTimedCallEach(Array.from({ length: PEERS }, answeredPeer), withSignal);
  const peers = Array.from({ length: PEERS }, answeredPeer);
  const before = heapAfterGC();
  await oneTimedCallEach(peers, withSignal);
  const perPeer = (heapAfterGC() - before) / PEERS;
  // The clock, its queue and its timer stay (about 1.5 KB); the 30 KB frame must not.
  expect(perPeer).toBeLessThan(4096);
  expect(peers.every((p) => p.pendingCount === 0)).toBe(true); // also keeps the peers alive through the measurement
});
