/**
 * `npm run bench:engine`: the engine's own cost per call, with no socket in
 * the way. Two Peers in one process are wired back to back (frames are
 * encoded, joined and decoded as on a socket), so the figure is both ends'
 * JavaScript per call: framing, codec, dispatch, validation, the answer cache
 * and deadlines. The variants alternate within each round; medians of 7
 * rounds of 100,000 calls each (10,000 for the 64 KiB payload).
 */
import { z } from "zod";
import { Peer } from "../src/engine/peer.ts";
import type { HandlerEntry } from "../src/engine/types.ts";
import { createProc, type Proc } from "../src/index.ts";
import { decodeFrames } from "../src/wire/frames.ts";
import { PAYLOAD } from "./procs.ts";

const CALLS = 100_000;
const ROUNDS = 7;
const Payload = z.object({ id: z.number(), name: z.string(), value: z.number() });

/** A Standard Schema that accepts anything as it is: the payload travels, and validation costs next to nothing. */
const anything = {
  "~standard": { version: 1, vendor: "bench", validate: (value: unknown) => ({ value }) },
} as const;
const BLOB = new Uint8Array(64 * 1024);
const variants: { label: string; proc: Proc; input: unknown; calls?: number }[] = [
  {
    label: "40-byte object, pass-through schema, no timeout",
    proc: createProc({ name: "echo", takes: anything, returns: anything, timeout: 0 }),
    input: PAYLOAD,
  },
  {
    label: "40-byte object, pass-through schema, default 30 s timeout",
    proc: createProc({ name: "echo", takes: anything, returns: anything }),
    input: PAYLOAD,
  },
  {
    label: "40-byte object, Zod takes + returns, default timeout",
    proc: createProc({ name: "echo", takes: Payload, returns: Payload }),
    input: PAYLOAD,
  },
  {
    label: "64 KiB Uint8Array, pass-through schema, default timeout",
    proc: createProc({ name: "echo", takes: anything, returns: anything }),
    input: BLOB,
    calls: CALLS / 10,
  },
];

/** Two peers wired back to back, one implementing `proc` as an echo. @returns a timed run of `calls` calls */
function pair(proc: Proc, input: unknown) {
  const handlers = new Map<string, HandlerEntry>([["echo", { proc, handler: (value: unknown) => value } as HandlerEntry]]);
  const caller = new Peer({ handlers: new Map(), side: "client" }, null);
  const callee = new Peer({ handlers, side: "server" }, null);
  const wire = (to: Peer) => ({
    send(bytes: Uint8Array) {
      for (const frame of decodeFrames(bytes)) to.receive(frame);
    },
  });
  caller.attach(wire(callee), false);
  callee.attach(wire(caller), false);
  /** @returns µs per round trip over `calls` calls, `window` in flight */
  return async (calls: number, window: number): Promise<number> => {
    let started = 0;
    const worker = async () => {
      while (started < calls) {
        started++;
        await caller.call(proc, input);
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: window }, worker));
    return ((performance.now() - t0) * 1000) / calls;
  };
}

const runs = variants.map((v) => ({ ...v, run: pair(v.proc, v.input), times: { 1: [] as number[], 1000: [] as number[] } }));
// A warm-up for each, then rounds in which the variants alternate, so drift falls on all of them.
for (const r of runs) await r.run((r.calls ?? CALLS) / 4, 100);
for (let round = 0; round < ROUNDS; round++) {
  for (const r of runs) for (const window of [1, 1000] as const) r.times[window].push(await r.run(r.calls ?? CALLS, window));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

console.log(`Engine cost per round trip (both ends), Bun ${Bun.version}, medians of ${ROUNDS} rounds of ${CALLS} calls\n`);
console.log("| payload and procedure | 1 in flight, µs | 1,000 in flight, µs |\n|---|--:|--:|");
for (const r of runs) console.log(`| ${r.label} | ${median(r.times[1]).toFixed(2)} | ${median(r.times[1000]).toFixed(2)} |`);
