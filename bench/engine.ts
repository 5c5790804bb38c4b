/**
 * `npm run bench:engine`: the engine's own cost per call, with no socket in
 * the way. Two Peers in one process are wired back to back (frames are
 * encoded, joined and decoded as on a socket), and each row times 200,000
 * round trips, so the figure is both ends' JavaScript per call: framing,
 * codec, dispatch, validation, the answer cache and deadlines. Medians of 7
 * rounds.
 */
import { z } from "zod";
import { type HandlerEntry, Peer } from "../src/engine/peer.ts";
import { createProc, type Proc } from "../src/index.ts";
import { decodeFrames } from "../src/wire/frames.ts";
import { PAYLOAD } from "./procs.ts";

const CALLS = 200_000;
const ROUNDS = 7;
const Payload = z.object({ id: z.number(), name: z.string(), value: z.number() });

const variants: { label: string; proc: Proc }[] = [
  { label: "no schemas, no timeout", proc: createProc({ name: "echo", timeout: 0 }) },
  { label: "no schemas, default 30 s timeout", proc: createProc({ name: "echo" }) },
  { label: "Zod takes + returns, default timeout", proc: createProc({ name: "echo", takes: Payload, returns: Payload }) },
];

/** @returns µs per round trip with `window` calls in flight, median of the rounds */
async function measure(proc: Proc, window: number): Promise<number> {
  const handlers = new Map<string, HandlerEntry>([["echo", { proc, handler: (input: unknown) => input } as HandlerEntry]]);
  const caller = new Peer({ handlers: new Map(), side: "client" }, null);
  const callee = new Peer({ handlers, side: "server" }, null);
  const wire = (to: Peer) => ({
    send(bytes: Uint8Array) {
      for (const frame of decodeFrames(bytes)) to.receive(frame);
    },
  });
  caller.attach(wire(callee), false);
  callee.attach(wire(caller), false);
  const times: number[] = [];
  for (let round = 0; round <= ROUNDS; round++) {
    let started = 0;
    const worker = async () => {
      while (started < CALLS) {
        started++;
        await caller.call(proc, PAYLOAD);
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: window }, worker));
    if (round > 0) times.push(((performance.now() - t0) * 1000) / CALLS); // round 0 is the warm-up
  }
  caller.close("done");
  callee.close("done");
  return times.sort((a, b) => a - b)[ROUNDS >> 1] as number;
}

console.log(`Engine cost per round trip (both ends), Bun ${Bun.version}, medians of ${ROUNDS} rounds of ${CALLS} calls\n`);
console.log("| procedure | 1 in flight, µs | 1,000 in flight, µs |\n|---|--:|--:|");
for (const { label, proc } of variants) {
  console.log(`| ${label} | ${(await measure(proc, 1)).toFixed(2)} | ${(await measure(proc, 1000)).toFixed(2)} |`);
}
